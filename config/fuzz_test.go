package config

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
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
	f.Add("keys:\n  - {name: a, api_key: k}\n  - {name: b, api_key: k}\n") // one secret, two names
	f.Add("admin:\n  - {name: o, provider: openai, admin_key: k2, budgets: [{monthly: 1}]}\nkeys:\n  - {name: a, provider: openai, api_key: k, admin: o, project: p}\n")
	const canary = "sk-fuzz-canary-1c2d"
	f.Fuzz(func(t *testing.T, data string) {
		cfg, err := Parse([]byte(data), "fuzz.yml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		p := cfg.Probe
		if len(cfg.Keys) == 0 || p.Interval <= 0 || p.Interval > MaxInterval || p.Timeout <= 0 || p.Timeout > MaxTimeout ||
			p.MinInterval < 0 || p.MinInterval > MaxInterval || p.Concurrency < 1 {
			t.Fatalf("accepted an invalid config: probe %+v, %d keys", cfg.Probe, len(cfg.Keys))
		}
		seen, seenSecret := map[string]bool{}, map[Secret]bool{}
		for _, k := range cfg.Keys {
			if seen[k.Name] || !keyNamePattern.MatchString(k.Name) || len(k.Models) == 0 {
				t.Fatalf("accepted an invalid key: name %q, models %q", k.Name, k.Models)
			}
			seen[k.Name] = true
			if secret, err := k.Secret(); err != nil || seenSecret[secret] {
				t.Fatalf("accepted key %q, whose secret is unreadable (%v) or an earlier key's", k.Name, err)
			} else {
				seenSecret[secret] = true
			}
			for _, l := range k.Limits {
				if !slices.Contains(LimitResources, l.Resource) || l.Length() < MinLimitWindow || l.Length() > MaxLimitWindow || !(l.Limit > 0) || math.IsInf(l.Limit, 1) {
					t.Fatalf("accepted the limit %+v", l)
				}
			}
			for _, m := range k.Models {
				if !utf8.ValidString(m) || strings.ContainsFunc(m, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
					t.Fatalf("accepted the model name %q", m)
				}
			}
		}
		for _, a := range cfg.Admin {
			if a.Interval < MinAdminInterval || a.Interval > MaxInterval || !adminNamePattern.MatchString(a.Name) {
				t.Fatalf("accepted an invalid admin source: %q, interval %s", a.Name, a.Interval)
			}
			if secret, err := a.Secret(); err != nil || seenSecret[secret] {
				t.Fatalf("accepted admin source %q, whose key is unreadable (%v) or a key's", a.Name, err)
			} else {
				seenSecret[secret] = true
			}
		}
		// A valid config with its keys swapped for a canary and broken
		// elsewhere never echoes the canary.
		swapped := strings.NewReplacer("api_key:", "api_key: "+canary+" #", "admin_key:", "admin_key: "+canary+" #").Replace(data)
		_, err = Parse([]byte(swapped+"\nbogus: 1\n"), "fuzz.yml")
		if err != nil && strings.Contains(err.Error(), canary) {
			t.Fatalf("the key shows in an error: %v", err)
		}
	})
}
