package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds the loader arbitrary YAML. It must not panic; what it
// accepts must be valid; what it refuses must say where; and a key must
// never show in an error.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata", filepath.Join("testdata", "bad")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(data))
		}
	}
	const canary = "sk-fuzz-canary-1c2d"
	f.Fuzz(func(t *testing.T, data string) {
		cfg, err := Parse([]byte(data), "fuzz.yml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(cfg.Keys) == 0 || cfg.Probe.Interval <= 0 || cfg.Probe.Timeout <= 0 || cfg.Probe.Concurrency < 1 {
			t.Fatalf("accepted an invalid config: %+v", cfg)
		}
		seen := map[string]bool{}
		for _, k := range cfg.Keys {
			if seen[k.Name] || !keyNamePattern.MatchString(k.Name) || len(k.Models) == 0 {
				t.Fatalf("accepted an invalid key: %+v", k)
			}
			seen[k.Name] = true
		}
		// A valid config with its key swapped for a canary and broken
		// elsewhere never echoes the canary.
		_, err = Parse([]byte(strings.ReplaceAll(data, "api_key:", "api_key: "+canary+" #")+"\nbogus: 1\n"), "fuzz.yml")
		if err != nil && strings.Contains(err.Error(), canary) {
			t.Fatalf("the key shows in an error: %v", err)
		}
	})
}
