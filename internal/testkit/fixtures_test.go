package testkit

import (
	"io/fs"
	"strings"
	"testing"
)

// Every sample says where it comes from in README.md, and every header
// sample reads.
func TestSamplesHaveProvenance(t *testing.T) {
	readme := string(Fixture(t, "README.md"))
	entries, err := fs.ReadDir(samples, "testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "README.md" {
			continue
		}
		if !strings.Contains(readme, "`"+name+"`") {
			t.Errorf("README.md does not say where %s comes from", name)
		}
		if strings.HasSuffix(name, ".headers") && len(Headers(t, name)) == 0 {
			t.Errorf("%s has no headers", name)
		}
	}
}
