package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseGood(t *testing.T) {
	t.Setenv("RLE_TEST_KEY", "sk-test-canary-good")
	cfg, err := Source{Path: "testdata/good.yml", Explicit: true}.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Probe: Probe{
			Mode:          ModeScrape,
			Interval:      Duration(2 * time.Minute),
			Timeout:       Duration(5 * time.Second),
			MinInterval:   Duration(30 * time.Second),
			Concurrency:   4,
			MaxQuotaShare: 0.2,
		},
		Keys: []Key{
			{
				Name:     "prod",
				Provider: "cerebras",
				APIKey:   "sk-test-canary-good",
				BaseURL:  "http://127.0.0.1:8080/v1",
				Models:   []string{"llama3.1-8b", "llama-3.3-70b"},
				Labels:   map[string]string{"team": "search", "env": "prod"},
			},
			{
				Name:       "batch.jobs:eu-1",
				Provider:   "cerebras",
				APIKeyFile: "testdata/key.txt",
				BaseURL:    "https://api.cerebras.ai/v1",
				Models:     []string{"llama3.1-8b"},
			},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %#v\nwant %#v", cfg, want)
	}
	if got := len(cfg.Targets()); got != 3 {
		t.Errorf("targets = %d, want 3", got)
	}
	if got, err := cfg.Keys[1].Secret(); err != nil || got.Reveal() != "sk-from-file-0001" {
		t.Errorf("key file secret = %q, %v; want the file's first line", got.Reveal(), err)
	}
	if got := cfg.Keys[0].LabelNames(); !reflect.DeepEqual(got, []string{"env", "team"}) {
		t.Errorf("label names = %v", got)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte("keys:\n  - name: k\n    api_key: x\n"), "mini.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Probe != DefaultProbe {
		t.Errorf("probe = %+v, want %+v", cfg.Probe, DefaultProbe)
	}
	k := cfg.Keys[0]
	if k.Provider != "cerebras" || k.BaseURL != "https://api.cerebras.ai/v1" || !reflect.DeepEqual(k.Models, []string{"llama3.1-8b"}) {
		t.Errorf("key defaults = %+v", k)
	}
}

func TestLoadBadConfigs(t *testing.T) {
	t.Setenv("RLE_TEST_UNSET", "")
	for file, want := range map[string]string{
		"both-key-sources.yml":      "testdata/bad/both-key-sources.yml:2: keys[0]: set exactly one of api_key and api_key_file, not both",
		"no-key-source.yml":         "testdata/bad/no-key-source.yml:2: keys[0]: set exactly one of api_key and api_key_file",
		"duplicate-name.yml":        `testdata/bad/duplicate-name.yml:4: keys[1].name: duplicate key name "a" (first used at line 2)`,
		"empty-after-expansion.yml": "testdata/bad/empty-after-expansion.yml:3: keys[0].api_key: the key is empty after expanding ${RLE_TEST_UNSET} (is the variable set?)",
		"key-with-space.yml":        "testdata/bad/key-with-space.yml:3: keys[0].api_key: the key contains whitespace or control characters",
		"missing-key-file.yml":      "testdata/bad/missing-key-file.yml:3: keys[0].api_key_file: reading api_key_file: open testdata/bad/missing.txt: no such file or directory",
		"bad-duration.yml":          `testdata/bad/bad-duration.yml:2: probe.interval: invalid duration "ten minutes": use a number and a unit, such as 500ms, 30s, 1m or 1h`,
		"zero-timeout.yml":          "testdata/bad/zero-timeout.yml:2: probe.timeout: must be greater than zero, got 0s",
		"negative-interval.yml":     "testdata/bad/negative-interval.yml:2: probe.interval: must be greater than zero, got -1m0s",
		"unknown-mode.yml":          `testdata/bad/unknown-mode.yml:2: probe.mode: unknown mode "sometimes": use "interval" or "scrape"`,
		"unknown-provider.yml":      `testdata/bad/unknown-provider.yml:3: keys[0].provider: unknown provider "openai": supported: cerebras`,
		"bad-name.yml":              `testdata/bad/bad-name.yml:2: keys[0].name: "my key" may only contain letters, digits and _ . : -`,
		"missing-name.yml":          "testdata/bad/missing-name.yml:2: keys[0]: name is required",
		"relative-base-url.yml":     `testdata/bad/relative-base-url.yml:4: keys[0].base_url: "api.cerebras.ai/v1" is not an absolute http(s) URL`,
		"ftp-base-url.yml":          `testdata/bad/ftp-base-url.yml:4: keys[0].base_url: "ftp://api.cerebras.ai/v1" is not an absolute http(s) URL`,
		"empty-models.yml":          "testdata/bad/empty-models.yml:4: keys[0].models: is empty: list at least one model, or leave it out for the default [llama3.1-8b]",
		"duplicate-model.yml":       `testdata/bad/duplicate-model.yml:4: keys[0].models[1]: duplicate model "m"`,
		"reserved-label.yml":        `testdata/bad/reserved-label.yml:5: keys[0].labels.model: "model" clashes with the exporter's own labels (key, provider, model, resource, window, result)`,
		"invalid-label.yml":         `testdata/bad/invalid-label.yml:5: keys[0].labels.team-name: "team-name" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)`,
		"unknown-field.yml":         `testdata/bad/unknown-field.yml:4: keys[0].api_keys: unknown field "api_keys" (see the configuration reference in README.md)`,
		"wrong-type.yml":            "testdata/bad/wrong-type.yml:2: probe.concurrency: expected an integer, got a string",
		"zero-concurrency.yml":      "testdata/bad/zero-concurrency.yml:2: probe.concurrency: must be at least 1, got 0",
		"quota-share.yml":           "testdata/bad/quota-share.yml:2: probe.max_quota_share: must be greater than 0 and at most 1 (1 turns the guard off), got 1.5",
		"no-keys.yml":               "testdata/bad/no-keys.yml:1: keys: no keys configured: add at least one entry under keys",
		"indentation.yml":           "testdata/bad/indentation.yml:1: did not find expected '-' indicator",
		"missing-ca-file.yml": "testdata/bad/missing-ca-file.yml:5: keys[0].http_client.tls_config: unable to read CA cert: " +
			"unable to read file testdata/bad/no-such-ca.pem: open testdata/bad/no-such-ca.pem: no such file or directory",
		"bad-proxy-scheme.yml":          `testdata/bad/bad-proxy-scheme.yml:5: keys[0].http_client.proxy_url: "ftp://proxy.example:21" is not a proxy URL: use http://, https:// or socks5:// and a host`,
		"unparsable-proxy-url.yml":      `testdata/bad/unparsable-proxy-url.yml:5: keys[0].http_client.proxy_url: parse "http://[::1": missing ']' in host`,
		"proxy-url-and-environment.yml": "testdata/bad/proxy-url-and-environment.yml:4: keys[0].http_client: if proxy_from_environment is configured, proxy_url must not be configured",
		"http-client-unknown-field.yml": `testdata/bad/http-client-unknown-field.yml:7: keys[0].http_client.tls_config.ca_fil: unknown field "ca_fil" (see the configuration reference in README.md)`,
		"bad-tls-version.yml":           "testdata/bad/bad-tls-version.yml:5: keys[0].http_client.tls_config: unknown TLS version: TLS99",
		"cert-without-key.yml":          "testdata/bad/cert-without-key.yml:5: keys[0].http_client.tls_config: exactly one of key or key_file must be configured when a client certificate is configured",
		"no-proxy-without-proxy.yml":    "testdata/bad/no-proxy-without-proxy.yml:4: keys[0].http_client: if no_proxy is configured, proxy_url must also be configured",
	} {
		t.Run(file, func(t *testing.T) {
			_, err := Source{Path: filepath.Join("testdata", "bad", file), Explicit: true}.Load()
			if err == nil {
				t.Fatal("loaded without error")
			}
			if err.Error() != want {
				t.Errorf("error:\n got  %s\n want %s", err, want)
			}
		})
	}
	entries, _ := os.ReadDir("testdata/bad")
	if len(entries) != 33 {
		t.Errorf("testdata/bad holds %d fixtures; give each one an expected message here", len(entries))
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte("probe:\n  mode: x\n  timeout: 0s\nkeys:\n  - name: a\n"), "f.yml")
	want := "f.yml:2: probe.mode: unknown mode \"x\": use \"interval\" or \"scrape\"\n" +
		"f.yml:3: probe.timeout: must be greater than zero, got 0s\n" +
		"f.yml:5: keys[0]: set exactly one of api_key and api_key_file"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestSourceDefault(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ratelimit_exporter.yml")

	t.Run("env set", func(t *testing.T) {
		t.Setenv(DefaultKeyEnv, "sk-test-canary-env")
		cfg, err := Source{Path: missing}.Load()
		if err != nil {
			t.Fatal(err)
		}
		k := cfg.Keys[0]
		if k.Name != "default" || k.Provider != "cerebras" || k.APIKey.Reveal() != "sk-test-canary-env" ||
			!reflect.DeepEqual(k.Models, []string{"llama3.1-8b"}) {
			t.Errorf("default key = %+v", k)
		}
	})
	t.Run("neither", func(t *testing.T) {
		t.Setenv(DefaultKeyEnv, "")
		_, err := Source{Path: missing}.Load()
		want := "no configuration: " + missing + " does not exist and CEREBRAS_API_KEY is not set; " +
			"either write a config file (and pass --config.file if it lives elsewhere) or set CEREBRAS_API_KEY " +
			"to use the built-in default (model llama3.1-8b)"
		if err == nil || err.Error() != want {
			t.Errorf("got %v\nwant %s", err, want)
		}
	})
	t.Run("explicit path missing", func(t *testing.T) {
		t.Setenv(DefaultKeyEnv, "sk-test-canary-env")
		_, err := Source{Path: missing, Explicit: true}.Load()
		want := "reading config: open " + missing + ": no such file or directory"
		if err == nil || err.Error() != want {
			t.Errorf("got %v\nwant %s", err, want)
		}
	})
}

func TestSecretNeverPrints(t *testing.T) {
	const canary = "sk-test-canary-print"
	k := Key{Name: "k", APIKey: canary}
	cfg := &Config{Keys: []Key{k}}
	yamlOut, _ := yaml.Marshal(cfg)
	jsonOut, _ := json.Marshal(cfg)
	var slogOut strings.Builder
	slog.New(slog.NewTextHandler(&slogOut, nil)).Info("x", "key", k.APIKey, "cfg", cfg)
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", k), "%#v": fmt.Sprintf("%#v", cfg),
		"%s": fmt.Sprintf("%s", k.APIKey), "%q": fmt.Sprintf("%q", k.APIKey), "%x": fmt.Sprintf("%x", k.APIKey),
		"%d": fmt.Sprintf("%d", k.APIKey), "yaml": string(yamlOut), "json": string(jsonOut), "slog": slogOut.String(),
	} {
		out = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(out)
		if strings.Contains(out, canary) || strings.Contains(out, fmt.Sprintf("%x", canary)) {
			t.Errorf("%s printed the key: %s", name, out)
		}
		if !strings.Contains(out, "<secret>") {
			t.Errorf("%s does not say <secret>: %s", name, out)
		}
	}
}

func TestKeyFileIsReadOnEveryCall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("sk-test-one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := Key{APIKeyFile: path}
	first, _ := k.Secret()
	if err := os.WriteFile(path, []byte("sk-test-two\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	second, _ := k.Secret()
	if first.Reveal() != "sk-test-one" || second.Reveal() != "sk-test-two" {
		t.Errorf("got %q then %q", first.Reveal(), second.Reveal())
	}
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Secret(); err == nil || err.Error() != "api_key_file "+path+": the key is empty" {
		t.Errorf("empty file: %v", err)
	}
}
