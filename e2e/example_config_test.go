package e2e

import (
	"os"
	"strings"
	"testing"
)

const exampleConfig = "../examples/ratelimit_exporter.yml"

// readmeConfigExample returns the first ```yaml block after the README's
// "## Configuration" heading, without its fences.
func readmeConfigExample(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	_, section, ok := strings.Cut(readme, "\n## Configuration\n")
	if !ok {
		t.Fatal(`README.md has no "## Configuration" heading`)
	}
	if next := strings.Index(section, "\n## "); next >= 0 {
		section = section[:next]
	}
	_, block, ok := strings.Cut(section, "\n```yaml\n")
	if !ok {
		t.Fatal("the Configuration section of README.md has no ```yaml block")
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatal("the Configuration section's ```yaml block does not end")
	}
	return block + "\n"
}

// The README's config example is examples/ratelimit_exporter.yml, byte for byte.
func TestReadmeConfigExampleIsTheFile(t *testing.T) {
	file, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	readme := readmeConfigExample(t)
	if string(file) == readme {
		return
	}
	n := 0
	for n < len(file) && n < len(readme) && file[n] == readme[n] {
		n++
	}
	lineStart := strings.LastIndexByte(readme[:n], '\n') + 1
	rest := func(s string) string {
		s = s[lineStart:]
		if end := strings.IndexByte(s, '\n'); end >= 0 {
			return s[:end+1]
		}
		return s + " (end of text)"
	}
	t.Errorf("%s (%d bytes) and the README's Configuration example (%d bytes) differ first on line %d:\n file:   %q\n README: %q",
		exampleConfig, len(file), len(readme), 1+strings.Count(readme[:n], "\n"), rest(string(file)), rest(readme))
}

// The example loads, as the binary loads it, with its variable set.
func TestExampleConfigIsValid(t *testing.T) {
	code, out := runOnce(t, []string{"CEREBRAS_API_KEY=sk-test-example-config-1234"},
		"--config.file="+exampleConfig, "--config.check")
	if code != 0 || !strings.HasPrefix(out, "Config is valid: 1 keys") {
		t.Errorf("--config.check %s: exit %d\n%s", exampleConfig, code, out)
	}
	if strings.Contains(out, "sk-test-example-config-1234") {
		t.Errorf("--config.check printed the key:\n%s", out)
	}
}
