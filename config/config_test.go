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

	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
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
	t.Setenv("RLE_TEST_UNSET", "") // set, to the empty string
	unsetenv(t, "RLE_TEST_TYPO")
	t.Setenv("RLE_TEST_SAME_KEY", "sk-from-file-0001") // testdata/key.txt's key
	cases := map[string]string{
		"both-key-sources.yml":      "testdata/bad/both-key-sources.yml:2: keys[0]: set exactly one of api_key and api_key_file, not both",
		"no-key-source.yml":         "testdata/bad/no-key-source.yml:2: keys[0]: set exactly one of api_key and api_key_file",
		"duplicate-name.yml":        `testdata/bad/duplicate-name.yml:4: keys[1].name: duplicate key name "a" (first used at line 2)`,
		"duplicate-secret.yml":      `testdata/bad/duplicate-secret.yml:6: keys[1].api_key: key "b" has the same secret as key "a" (line 3): a secret is one credential, so configure it once`,
		"empty-after-expansion.yml": "testdata/bad/empty-after-expansion.yml:3: keys[0].api_key: the key is empty after expanding ${RLE_TEST_UNSET} (is the variable set?)",
		"key-with-space.yml":        "testdata/bad/key-with-space.yml:3: keys[0].api_key: the key contains whitespace or control characters",
		"missing-key-file.yml":      "testdata/bad/missing-key-file.yml:3: keys[0].api_key_file: reading api_key_file: open testdata/bad/missing.txt: no such file or directory",
		"bad-duration.yml":          `testdata/bad/bad-duration.yml:2: probe.interval: invalid duration "ten minutes": use a number and a unit, such as 500ms, 30s, 1m or 1h`,
		"zero-timeout.yml":          "testdata/bad/zero-timeout.yml:2: probe.timeout: must be greater than zero, got 0s",
		"negative-interval.yml":     "testdata/bad/negative-interval.yml:2: probe.interval: must be greater than zero, got -1m0s",
		"key-probe-interval.yml": "testdata/bad/key-probe-interval.yml:5: keys[0].probe_interval: must be greater than zero in interval mode, got 0s\n" +
			"testdata/bad/key-probe-interval.yml:7: keys[1].probe_interval: must be at most 24h0m0s, got 48h0m0s",
		"unknown-mode.yml":                `testdata/bad/unknown-mode.yml:2: probe.mode: unknown mode "sometimes": use "interval" or "scrape"`,
		"unknown-provider.yml":            `testdata/bad/unknown-provider.yml:3: keys[0].provider: unknown provider "openia": supported: anthropic, azure_openai, cerebras, deepseek, fireworks, gemini, groq, mistral, openai, openai_compatible, openrouter, sambanova, together, xai`,
		"bad-name.yml":                    `testdata/bad/bad-name.yml:2: keys[0].name: "my key" may only contain letters, digits and _ . : -`,
		"missing-name.yml":                "testdata/bad/missing-name.yml:2: keys[0]: name is required",
		"fingerprint-name.yml":            `testdata/bad/fingerprint-name.yml:2: keys[0].name: "sha256:0123456789ab" must not start with "sha256:", which names the keys the proxy does not know`,
		"relative-base-url.yml":           `testdata/bad/relative-base-url.yml:4: keys[0].base_url: is not an absolute http(s) URL: write http:// or https:// and a host, such as https://api.example.com/v1`,
		"ftp-base-url.yml":                `testdata/bad/ftp-base-url.yml:4: keys[0].base_url: is not an absolute http(s) URL: write http:// or https:// and a host, such as https://api.example.com/v1`,
		"empty-models.yml":                "testdata/bad/empty-models.yml:4: keys[0].models: is empty: list at least one model, or leave it out for the provider's default",
		"compatible-without-base-url.yml": "testdata/bad/compatible-without-base-url.yml:2: keys[0]: base_url is required with provider openai_compatible: it has no default",
		"compatible-without-models.yml":   "testdata/bad/compatible-without-models.yml:2: keys[0]: models is required with provider openai_compatible: it has no default model",
		"proxy-bad-route.yml":             `testdata/bad/proxy-bad-route.yml:5: proxy.routes[0].path_prefix: "cerebras" must start and end with / and name something, such as /cerebras/`,
		"proxy-unknown-keys.yml": "testdata/bad/proxy-unknown-keys.yml:4: proxy.unknown_keys: unknown value \"drop\": use forward, fingerprint or reject\n" +
			`testdata/bad/proxy-unknown-keys.yml:6: proxy.routes[0].upstream: is not an absolute http(s) URL: write http:// or https:// and a host, such as https://api.example.com/v1`,
		"proxy-bounds.yml": "testdata/bad/proxy-bounds.yml:5: proxy.max_inflight_request_bytes: must be at least max_request_bytes (10MiB), got 1MiB\n" +
			"testdata/bad/proxy-bounds.yml:6: proxy.body_read_timeout: must be greater than zero, got 0s\n" +
			"testdata/bad/proxy-bounds.yml:7: proxy.max_connections: must be at least 1, got 0",
		"proxy-basic-auth.yml":       `testdata/bad/proxy-basic-auth.yml:4: proxy.basic_auth_users: unknown field "basic_auth_users" (see the configuration reference in README.md)`,
		"anthropic-v1.yml":           `testdata/bad/anthropic-v1.yml:5: keys[0].base_url: "https://api.anthropic.com/v1" ends in /v1, which the probe adds itself (it would send https://api.anthropic.com/v1/v1/messages): leave it out`,
		"chat-path-in-base-url.yml":  `testdata/bad/chat-path-in-base-url.yml:4: keys[0].base_url: "https://api.cerebras.ai/v1/chat/completions" ends in /chat/completions, which the probe adds itself (it would send https://api.cerebras.ai/v1/chat/completions/chat/completions): leave it out`,
		"openrouter-with-models.yml": "testdata/bad/openrouter-with-models.yml:5: keys[0].models: provider openrouter's probe is one per key, whatever the model: leave models out",
		"duplicate-model.yml":        `testdata/bad/duplicate-model.yml:4: keys[0].models[1]: duplicate model "m"`,
		"reserved-label.yml":         `testdata/bad/reserved-label.yml:5: keys[0].labels.reason: "reason" clashes with the exporter's own labels (key, provider, model, resource, window, result, reason, source, cause, status, currency)`,
		"invalid-label.yml":          `testdata/bad/invalid-label.yml:5: keys[0].labels.team-name: "team-name" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)`,
		// Prometheus 3 takes UTF-8 names; the exporter keeps to names no scrape format escapes.
		"utf8-label.yml":              `testdata/bad/utf8-label.yml:5: keys[0].labels.service.name: "service.name" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)`,
		"unknown-field.yml":           `testdata/bad/unknown-field.yml:4: keys[0].api_keys: unknown field "api_keys" (see the configuration reference in README.md)`,
		"unknown-field-flow-list.yml": `testdata/bad/unknown-field-flow-list.yml:4: keys[0].modles: unknown field "modles" (see the configuration reference in README.md)`,
		"wrong-type.yml":              "testdata/bad/wrong-type.yml:2: probe.concurrency: expected an integer, got a string",
		"zero-concurrency.yml":        "testdata/bad/zero-concurrency.yml:2: probe.concurrency: must be at least 1, got 0",
		"quota-share.yml":             "testdata/bad/quota-share.yml:2: probe.max_quota_share: must be greater than 0 and at most 1 (1 turns the guard off), got 1.5",
		"no-keys.yml":                 "testdata/bad/no-keys.yml:1: keys: no keys configured: add at least one entry under keys",
		"indentation.yml":             "testdata/bad/indentation.yml:1: did not find expected '-' indicator",
		"missing-ca-file.yml": "testdata/bad/missing-ca-file.yml:5: keys[0].http_client.tls_config: unable to read CA cert: " +
			"unable to read file testdata/bad/no-such-ca.pem: open testdata/bad/no-such-ca.pem: no such file or directory",
		"bad-proxy-scheme.yml":           `testdata/bad/bad-proxy-scheme.yml:5: keys[0].http_client.proxy_url: "ftp://proxy.example:21" is not a proxy URL: use http://, https:// or socks5:// and a host`,
		"unparsable-proxy-url.yml":       `testdata/bad/unparsable-proxy-url.yml:5: keys[0].http_client.proxy_url: parse "http://[::1": missing ']' in host`,
		"proxy-url-and-environment.yml":  "testdata/bad/proxy-url-and-environment.yml:4: keys[0].http_client: if proxy_from_environment is configured, proxy_url must not be configured",
		"http-client-unknown-field.yml":  `testdata/bad/http-client-unknown-field.yml:7: keys[0].http_client.tls_config.ca_fil: unknown field "ca_fil" (see the configuration reference in README.md)`,
		"bad-tls-version.yml":            "testdata/bad/bad-tls-version.yml:5: keys[0].http_client.tls_config: unknown TLS version: TLS99",
		"cert-without-key.yml":           "testdata/bad/cert-without-key.yml:5: keys[0].http_client.tls_config: exactly one of key or key_file must be configured when a client certificate is configured",
		"no-proxy-without-proxy.yml":     "testdata/bad/no-proxy-without-proxy.yml:4: keys[0].http_client: if no_proxy is configured, proxy_url must also be configured",
		"unset-variable.yml":             "testdata/bad/unset-variable.yml:3: keys[0].api_key: environment variable RLE_TEST_TYPO is not set",
		"model-with-space.yml":           `testdata/bad/model-with-space.yml:4: keys[0].models[1]: model name "llama 3.3 70b" contains whitespace or control characters`,
		"model-with-newline.yml":         `testdata/bad/model-with-newline.yml:5: keys[0].models[0]: model name "llama3.1-8b\nlevel=error msg=\"forged line\"" contains whitespace or control characters`,
		"model-with-control.yml":         `testdata/bad/model-with-control.yml:4: keys[0].models[0]: model name "llama3.1-8b\x1b[2K" contains whitespace or control characters`,
		"interval-too-long.yml":          "testdata/bad/interval-too-long.yml:2: probe.interval: must be at most 24h0m0s, got 8760h0m0s",
		"min-interval-too-long.yml":      "testdata/bad/min-interval-too-long.yml:3: probe.min_interval: must be at most 24h0m0s, got 25h0m0s",
		"timeout-too-long.yml":           "testdata/bad/timeout-too-long.yml:2: probe.timeout: must be at most 5m0s, got 6m0s",
		"two-documents.yml":              "testdata/bad/two-documents.yml:4: a second YAML document starts here; a config file holds one document",
		"api-version-other-provider.yml": "testdata/bad/api-version-other-provider.yml:5: keys[0].api_version: provider openai takes no api_version (api_version is for azure_openai): leave it out",
		"bad-api-version.yml":            `testdata/bad/bad-api-version.yml:7: keys[0].api_version: is not an api-version: use "v1" for the v1 API, or a release date such as 2024-10-21 or 2025-04-01-preview`,
		"api-version-latest.yml":         `testdata/bad/api-version-latest.yml:7: keys[0].api_version: is not an api-version: use "v1" for the v1 API, or a release date such as 2024-10-21 or 2025-04-01-preview`,
		"bearer-token-other-provider.yml": "testdata/bad/bearer-token-other-provider.yml:4: keys[0].bearer_token_file: provider openai takes an API key, not a bearer token: " +
			"use api_key or api_key_file (bearer_token_file is for azure_openai)",
		"bearer-token-and-key.yml": "testdata/bad/bearer-token-and-key.yml:2: keys[0]: set exactly one of api_key, api_key_file and bearer_token_file, not several",
		"missing-token-file.yml":   "testdata/bad/missing-token-file.yml:4: keys[0].bearer_token_file: reading bearer_token_file: open testdata/bad/no-such-token.txt: no such file or directory",
		"empty-token-file.yml":     "testdata/bad/empty-token-file.yml:4: keys[0].bearer_token_file: bearer_token_file testdata/empty-token.txt: the token is empty",
		"azure-without-key.yml":    "testdata/bad/azure-without-key.yml:2: keys[0]: set exactly one of api_key, api_key_file and bearer_token_file",
		"azure-without-base-url.yml": "testdata/bad/azure-without-base-url.yml:2: keys[0]: base_url is required with provider azure_openai: it has no default\n" +
			"testdata/bad/azure-without-base-url.yml:2: keys[0]: models is required with provider azure_openai: it has no default model",
		"azure-deployment-in-base-url.yml": `testdata/bad/azure-deployment-in-base-url.yml:5: keys[0].base_url: "https://contoso.openai.azure.com/openai/deployments/gpt-4o-mini" ` +
			"ends in /openai/deployments/gpt-4o-mini, which the probe adds itself (it would send " +
			"https://contoso.openai.azure.com/openai/deployments/gpt-4o-mini/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21): leave it out",
		"azure-same-token.yml": `testdata/bad/azure-same-token.yml:9: keys[1].bearer_token_file: key "b" has the same secret as key "a" (line 4): a secret is one credential, so configure it once`,
		"admin-unknown-source.yml": `testdata/bad/admin-unknown-source.yml:9: keys[0].admin: unknown admin source "openai-orgs": the admin section names openai-org` + "\n" +
			`testdata/bad/admin-unknown-source.yml:2: admin[0]: admin source "openai-org" reads nothing: no key names it (keys[].admin) and it has no budgets`,
		"admin-key-is-api-key.yml": `testdata/bad/admin-key-is-api-key.yml:9: admin[0].admin_key: admin "claude-org" has the same secret as key "prod" (line 4): ` +
			"an admin key must be a credential of its own, as an API key is sent with every probe",
		"admin-bounds.yml": "testdata/bad/admin-bounds.yml:11: keys[0]: project is required with admin for an openai key: the project id (proj_...) whose rate limits apply to the key\n" +
			"testdata/bad/admin-bounds.yml:2: admin[0]: set exactly one of admin_key and admin_key_file, not both\n" +
			"testdata/bad/admin-bounds.yml:6: admin[0].interval: must be at least 5m0s, got 1m0s: the limits an admin API lists change only when someone changes them\n" +
			"testdata/bad/admin-bounds.yml:8: admin[0].budgets[0].monthly: must be a number greater than zero, got 0\n" +
			`testdata/bad/admin-bounds.yml:8: admin[0].budgets[0].currency: "usd" is not an ISO 4217 currency code: three upper-case letters, such as USD` + "\n" +
			"testdata/bad/admin-bounds.yml:9: admin[0].budgets[1]: a second budget for project proj_abc in usd: give each project and currency one budget\n" +
			`testdata/bad/admin-bounds.yml:9: admin[0].budgets[1].currency: "usd" is not an ISO 4217 currency code: three upper-case letters, such as USD`,
		"limits-bad-fields.yml": `testdata/bad/limits-bad-fields.yml:6: keys[0].limits[0].resource: unknown resource "request": use requests, tokens, input_tokens, output_tokens` + "\n" +
			`testdata/bad/limits-bad-fields.yml:7: keys[0].limits[1].window: unknown window "fortnight": use second, minute, hour, day, or a number and a unit, such as 10s, 5m, 6h or 7d` + "\n" +
			"testdata/bad/limits-bad-fields.yml:8: keys[0].limits[2].limit: must be greater than zero, got 0\n" +
			"testdata/bad/limits-bad-fields.yml:9: keys[0].limits[3].limit: must be greater than zero, got -5\n" +
			`testdata/bad/limits-bad-fields.yml:10: keys[0].limits[4].model: model name "deepseek chat" contains whitespace or control characters` + "\n" +
			"testdata/bad/limits-bad-fields.yml:11: keys[0].limits[5]: window is required: second, minute, hour, day, or a number and a unit, such as 10s, 5m, 6h or 7d\n" +
			"testdata/bad/limits-bad-fields.yml:12: keys[0].limits[6].limit: must be a number greater than zero",
		"limits-window-bounds.yml": `testdata/bad/limits-window-bounds.yml:6: keys[0].limits[0].window: "32d" must be at least 1s and at most 31d` + "\n" +
			`testdata/bad/limits-window-bounds.yml:7: keys[0].limits[1].window: unknown window "0s": use second, minute, hour, day, or a number and a unit, such as 10s, 5m, 6h or 7d` + "\n" +
			`testdata/bad/limits-window-bounds.yml:8: keys[0].limits[2].window: unknown window "500ms": use second, minute, hour, day, or a number and a unit, such as 10s, 5m, 6h or 7d`,
		"limits-declared-twice.yml": "testdata/bad/limits-declared-twice.yml:9: keys[0].limits[2]: requests per minute is declared twice (first at line 7)\n" +
			`testdata/bad/limits-declared-twice.yml:11: keys[0].limits[4]: input_tokens per day for "gemini-2.0-flash" is declared twice (first at line 10)` + "\n" +
			`testdata/bad/limits-declared-twice.yml:12: keys[0].limits[5].model: model name "models/gemini-2.5-pro" cannot be read back from the request's path: give the model's name as gemini's paths do`,
		"limits-without-route.yml": "testdata/bad/limits-without-route.yml:9: keys[1].limits: declared limits are counted from the proxy's traffic, and no proxy route has provider openai: add one, or leave limits out",
		"limits-unknown-field.yml": `testdata/bad/limits-unknown-field.yml:6: keys[0].limits[0].per: unknown field "per" (see the configuration reference in README.md)`,
	}
	for file, want := range cases {
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
	for _, e := range entries {
		if _, ok := cases[e.Name()]; !ok {
			t.Errorf("testdata/bad/%s has no expected message here", e.Name())
		}
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

// unsetenv unsets the variable for the test and restores it after.
func unsetenv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value, if any, when the test ends
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func TestAPIKeyVariables(t *testing.T) {
	const part = "sk-test-canary-part-93f1"
	t.Setenv("RLE_TEST_PART", part)
	t.Setenv("RLE_TEST_EMPTY", "")
	unsetenv(t, "RLE_TEST_TYPO")
	unsetenv(t, "RLE_TEST_TYPO2")
	parse := func(apiKey string) (*Config, error) {
		return Parse([]byte("keys:\n  - name: a\n    api_key: "+apiKey+"\n"), "f.yml")
	}

	// Set to the empty string is set: it expands to nothing.
	cfg, err := parse("sk-${RLE_TEST_EMPTY}x")
	if err != nil {
		t.Fatalf("empty but set variable: %v", err)
	}
	if got := cfg.Keys[0].APIKey.Reveal(); got != "sk-x" {
		t.Errorf("empty but set variable: key %q, want sk-x", got)
	}
	cfg, err = parse("${RLE_TEST_PART}")
	if err != nil || cfg.Keys[0].APIKey.Reveal() != part {
		t.Errorf("set variable: %v", err)
	}

	for apiKey, want := range map[string]string{
		// Empty after expansion keeps its message, variable set or not.
		"${RLE_TEST_EMPTY}":                  "f.yml:3: keys[0].api_key: the key is empty after expanding ${RLE_TEST_EMPTY} (is the variable set?)",
		"${RLE_TEST_EMPTY}${RLE_TEST_EMPTY}": "f.yml:3: keys[0].api_key: the key is empty after expanding ${RLE_TEST_EMPTY}, ${RLE_TEST_EMPTY} (is the variable set?)",
		// Unset: named, and neither the key around it nor a set variable's value shows.
		"${RLE_TEST_TYPO}":                    "f.yml:3: keys[0].api_key: environment variable RLE_TEST_TYPO is not set",
		"sk-test-canary-lit-${RLE_TEST_TYPO}": "f.yml:3: keys[0].api_key: environment variable RLE_TEST_TYPO is not set",
		"${RLE_TEST_PART}${RLE_TEST_TYPO}":    "f.yml:3: keys[0].api_key: environment variable RLE_TEST_TYPO is not set",
		"${RLE_TEST_TYPO2}-${RLE_TEST_TYPO}-${RLE_TEST_TYPO2}-${RLE_TEST_PART}": "f.yml:3: keys[0].api_key: environment variables RLE_TEST_TYPO2, RLE_TEST_TYPO are not set",
	} {
		_, err := parse(apiKey)
		if err == nil || err.Error() != want {
			t.Errorf("api_key %s:\n got  %v\n want %s", apiKey, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), part) || strings.Contains(err.Error(), "canary-lit")) {
			t.Errorf("api_key %s: the error shows the key: %v", apiKey, err)
		}
	}
}

func TestModelNames(t *testing.T) {
	for _, name := range []string{"llama3.1-8b", "llama-3.3-70b", "meta-llama/Llama-3.3-70B-Instruct", "qwen-3:235b@2507", "模型-1"} {
		if _, err := Parse([]byte(fmt.Sprintf("keys:\n  - name: a\n    api_key: x\n    models: [%q]\n", name)), "f.yml"); err != nil {
			t.Errorf("model %q refused: %v", name, err)
		}
	}
	for _, name := range []string{
		"llama 3", " llama", "llama ", "llama\t3", "llama\n3", "llama\r", "a\u00a0b", "a\u2028b", "a\u200bb", "a\u202eb",
		"a\x00b", "a\x1bb", "a\x7fb", "a\u0085b", "a\ufeffb",
	} {
		_, err := Parse([]byte(fmt.Sprintf("keys:\n  - name: a\n    api_key: x\n    models: [%q]\n", name)), "f.yml")
		want := fmt.Sprintf("f.yml:4: keys[0].models[0]: model name %q contains whitespace or control characters", name)
		if err == nil || err.Error() != want {
			t.Errorf("model %q:\n got  %v\n want %s", name, err, want)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\n\r\t\x00\x1b\x7f\u0085\u2028\u200b\u202e\ufeff") {
			t.Errorf("model %q: the error carries the raw character: %q", name, err)
		}
	}
	if Printable("a\xffb") {
		t.Error("invalid UTF-8 counts as printable")
	}
}

// A model that an API names in its path (a Gemini model, an Azure
// deployment) must come back from that path as it is: "models/gemini-2.5-flash",
// as Gemini's own model list and SDKs write it, would be probed at
// .../models/models%2Fgemini-2.5-flash:generateContent, and the proxy would
// record the same model's traffic under "gemini-2.5-flash".
func TestModelsNamedInThePath(t *testing.T) {
	long := strings.Repeat("d", 65)
	for doc, want := range map[string]string{
		"keys:\n  - {name: g, provider: gemini, api_key: k1, models: [gemini-2.5-flash, models/gemini-2.5-flash]}\n":                 `f.yml:2: keys[0].models[1]: model name "models/gemini-2.5-flash" cannot be read back from the probe's path: give the model's name alone, without "/"`,
		"keys:\n  - {name: a, provider: azure_openai, api_key: k1, base_url: https://x.openai.azure.com, models: [my/deployment]}\n": `f.yml:2: keys[0].models[0]: model name "my/deployment" cannot be read back from the probe's path: give the model's name alone, without "/"`,
		"keys:\n  - {name: a, provider: azure_openai, api_key: k1, base_url: https://x.openai.azure.com, models: [" + long + "]}\n":  `f.yml:2: keys[0].models[0]: model name "` + long + `" cannot be read back from the probe's path: azure_openai takes no such name there`,
		// The v1 API names the deployment in the body, not the path.
		"keys:\n  - {name: a, provider: azure_openai, api_key: k1, api_version: v1, base_url: https://x.openai.azure.com, models: [my/deployment]}\n": "",
		"keys:\n  - {name: g, provider: gemini, api_key: k1, models: [gemini-2.5-flash, learnlm-2.0-flash-experimental]}\n":                           "",
		"keys:\n  - {name: o, provider: openai_compatible, api_key: k1, base_url: https://x.example/v1, models: [meta-llama/Llama-3.3-70B]}\n":        "",
	} {
		_, err := Parse([]byte(doc), "f.yml")
		if got := fmt.Sprint(err); want == "" && err != nil || want != "" && got != want {
			t.Errorf("%q:\n got  %v\n want %s", doc, err, want)
		}
	}
}

func TestDurationBounds(t *testing.T) {
	cfg, err := Parse([]byte("probe:\n  interval: 24h\n  min_interval: 1d\n  timeout: 5m\nkeys:\n  - name: a\n    api_key: x\n"), "f.yml")
	if err != nil {
		t.Fatalf("the bounds themselves are refused: %v", err)
	}
	if cfg.Probe.Interval != MaxInterval || cfg.Probe.MinInterval != MaxInterval || cfg.Probe.Timeout != MaxTimeout {
		t.Errorf("probe = %+v", cfg.Probe)
	}
	_, err = Parse([]byte("probe:\n  interval: 24h1ms\n  min_interval: 2d\n  timeout: 5m1s\nkeys:\n  - name: a\n    api_key: x\n"), "f.yml")
	want := "f.yml:2: probe.interval: must be at most 24h0m0s, got 24h0m0.001s\n" +
		"f.yml:4: probe.timeout: must be at most 5m0s, got 5m1s\n" +
		"f.yml:3: probe.min_interval: must be at most 24h0m0s, got 48h0m0s"
	if err == nil || err.Error() != want {
		t.Errorf("just past the bounds:\n got  %v\n want %s", err, want)
	}
}

// A key's probe_interval is optional; set, it may be as long as
// probe.interval, and 0 in scrape mode: probe at every scrape.
func TestKeyProbeInterval(t *testing.T) {
	cfg, err := Parse([]byte(`probe: {mode: scrape}
keys:
  - {name: a, api_key: k1, probe_interval: 0s}
  - {name: b, api_key: k2, probe_interval: 1d}
  - {name: c, api_key: k3}
`), "f.yml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []*Duration{new(Duration(0)), new(MaxInterval), nil} {
		got := cfg.Keys[i].ProbeInterval
		if (got == nil) != (want == nil) || got != nil && *got != *want {
			t.Errorf("key %s: probe_interval %v, want %v", cfg.Keys[i].Name, got, want)
		}
	}
}

func TestOneDocument(t *testing.T) {
	const body = "keys:\n  - name: a\n    api_key: x\n"
	for name, data := range map[string]string{
		"one document":                 body,
		"leading ---":                  "---\n" + body,
		"comment, then ---":            "# the exporter's config\n---\n" + body,
		"directive and ---":            "%YAML 1.1\n---\n" + body,
		"end marker":                   body + "...\n",
		"trailing --- (nothing after)": body + "---\n",
		"trailing --- and a comment":   body + "---\n# keys:\n#   - name: b\n",
		"trailing --- twice":           body + "---\n---\n",
	} {
		cfg, err := Parse([]byte(data), "f.yml")
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if len(cfg.Keys) != 1 || cfg.Keys[0].Name != "a" {
			t.Errorf("%s: keys %+v", name, cfg.Keys)
		}
	}
	const second = "a second YAML document starts here; a config file holds one document"
	for name, c := range map[string]struct{ data, want string }{
		"second document":          {body + "---\nkeys:\n  - name: b\n    api_key: y\n", "f.yml:4: " + second},
		"leading --- and a second": {"---\n" + body + "---\nprobe: {mode: scrape}\n", "f.yml:5: " + second},
		"after an end marker":      {body + "...\n---\nprobe: {}\n", "f.yml:5: " + second},
		"after an empty one":       {body + "---\n---\nprobe: {}\n", "f.yml:5: " + second},
		"empty first":              {"---\n---\n" + body, "f.yml:2: " + second},
		"explicit null second":     {body + "--- ~\n", "f.yml:4: " + second},
		"scalar second":            {body + "--- x\n", "f.yml:4: " + second},
		"bad syntax in the second": {body + "---\n[\n", "f.yml:5: did not find expected node content"},
	} {
		_, err := Parse([]byte(c.data), "f.yml")
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got  %v\n want %s", name, err, c.want)
		}
	}
}

// A key written in the wrong shape, or after a '*', never reaches an error.
func TestMisshapenKeyStaysOutOfErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"keys:\n  - name: a\n    api_key: *sk-test-shape-1\n":     "f.yml: unknown anchor referenced",
		"keys:\n  - name: a\n    api_key: {sk-test-shape-2: 1}\n": "f.yml:3: keys[0].api_key: expected a string, got a mapping",
		"keys:\n  - name: a\n    api_key: [sk-test-shape-3]\n":    "f.yml:3: keys[0].api_key: expected a string, got a list",
	} {
		_, err := Parse([]byte(doc), "f.yml")
		if err == nil || err.Error() != want || strings.Contains(err.Error(), "sk-test-shape") {
			t.Errorf("%q: got %v, want %s", doc, err, want)
		}
	}
}

// A key pasted into base_url or a route's upstream, or a password in a
// URL's user info, never reaches an error: the file, line and field say
// where the value is.
func TestKeyInURLStaysOutOfErrors(t *testing.T) {
	for _, doc := range []string{
		"keys:\n  - {name: a, api_key: k1, base_url: sk-test-url-canary-1}\n",
		"keys:\n  - {name: a, provider: gemini, api_key: k1, base_url: AIzaSy-test-url-canary-2}\n",
		"keys:\n  - {name: a, api_key: k1, base_url: 'https://user:sk-test-url-canary-3@api.example.com/v1/chat'}\n",
		"keys:\n  - {name: a, provider: azure_openai, api_key: k1, models: [d], base_url: 'https://u:sk-test-url-canary-4@x.openai.azure.com/openai'}\n",
		"keys:\n  - {name: a, api_key: k1, base_url: 'ftp://u:sk-test-url-canary-5@api.example.com/v1'}\n",
		"keys:\n  - {name: a, api_key: k1}\nproxy:\n  routes:\n    - {path_prefix: /c/, upstream: sk-test-url-canary-6, provider: cerebras}\n",
	} {
		_, err := Parse([]byte(doc), "f.yml")
		if err == nil || strings.Contains(err.Error(), "test-url-canary") {
			t.Errorf("%q: got %v", doc, err)
		}
	}
}

// Each provider fills in its own base_url and model; OpenRouter's key has
// one target whatever the model.
func TestProviderDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`keys:
  - {name: c, api_key: k1}
  - {name: o, provider: openai, api_key: k2}
  - {name: g, provider: groq, api_key: k3, models: [llama-3.3-70b-versatile]}
  - {name: a, provider: anthropic, api_key: k4}
  - {name: r, provider: openrouter, api_key: k5}
  - {name: l, provider: openai_compatible, api_key: k6, base_url: "http://127.0.0.1:8000/v1/", models: [qwen]}
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ provider, baseURL, models string }{
		{"cerebras", "https://api.cerebras.ai/v1", "[llama3.1-8b]"},
		{"openai", "https://api.openai.com/v1", "[gpt-4o-mini]"},
		{"groq", "https://api.groq.com/openai/v1", "[llama-3.3-70b-versatile]"},
		{"anthropic", "https://api.anthropic.com", "[claude-haiku-4-5]"},
		{"openrouter", "https://openrouter.ai/api/v1", "[]"},
		{"openai_compatible", "http://127.0.0.1:8000/v1", "[qwen]"},
	}
	for i, w := range want {
		k := cfg.Keys[i]
		if got := fmt.Sprintf("%v", k.Models); k.Provider != w.provider || k.BaseURL != w.baseURL || got != w.models {
			t.Errorf("key %s: got %s %s %s, want %s %s %s", k.Name, k.Provider, k.BaseURL, got, w.provider, w.baseURL, w.models)
		}
	}
	if n := len(cfg.Targets()); n != 6 {
		t.Errorf("%d targets, want 6 (one for the OpenRouter key)", n)
	}
}

// A proxy block takes its defaults; without one there is no proxy.
func TestProxyDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`keys: [{name: a, api_key: k}]
proxy:
  max_request_bytes: 512KiB
  routes:
    - {path_prefix: /cerebras/, upstream: "https://api.cerebras.ai/", provider: cerebras}
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Proxy
	if p.ListenAddress != ":10430" || p.UnknownKeys != "forward" || p.MaxRequestBytes != 512<<10 || p.Routes[0].Upstream != "https://api.cerebras.ai" ||
		p.MaxInflightRequestBytes != 64<<20 || p.BodyReadTimeout != Duration(time.Minute) || p.MaxConnections != 1024 {
		t.Errorf("proxy: %+v", p)
	}
	if cfg, err := Parse([]byte(`keys: [{name: a, api_key: k}]`), "test.yml"); err != nil || cfg.Proxy != nil {
		t.Errorf("no proxy block: %v, %+v", err, cfg.Proxy)
	}
}

// One secret under two names is refused, whichever way each is written and
// at whichever provider, naming both keys and never the secret.
func TestSameSecretTwice(t *testing.T) {
	const canary = "sk-test-canary-same-7d2a"
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RLE_TEST_SAME_1", canary)
	t.Setenv("RLE_TEST_SAME_2", canary)
	t.Setenv("RLE_TEST_SAME_PART", "canary-same-7d2a")
	const same = `key "b" has the same secret as key "a" (line 2): a secret is one credential, so configure it once`
	for keys, want := range map[string]string{
		"{name: a, api_key: " + canary + "}\n  - {name: b, api_key: " + canary + "}":                            "f.yml:3: keys[1].api_key: " + same,
		"{name: a, api_key: \"${RLE_TEST_SAME_1}\"}\n  - {name: b, api_key: \"${RLE_TEST_SAME_2}\"}":            "f.yml:3: keys[1].api_key: " + same,
		"{name: a, api_key: \"${RLE_TEST_SAME_1}\"}\n  - {name: b, api_key: \"sk-test-${RLE_TEST_SAME_PART}\"}": "f.yml:3: keys[1].api_key: " + same,
		"{name: a, api_key: " + canary + "}\n  - {name: b, api_key_file: " + file + "}":                         "f.yml:3: keys[1].api_key_file: " + same,
		"{name: a, api_key_file: " + file + "}\n  - {name: b, api_key_file: " + file + "}":                      "f.yml:3: keys[1].api_key_file: " + same,
		"{name: a, api_key: " + canary + "}\n  - {name: b, provider: anthropic, api_key: " + canary + "}":       "f.yml:3: keys[1].api_key: " + same,
		"{name: a, api_key: " + canary + "}\n  - {name: b, api_key: " + canary + "}\n  - {name: c, api_key: " + canary + "}": "f.yml:3: keys[1].api_key: " + same + "\n" +
			`f.yml:4: keys[2].api_key: key "c" has the same secret as key "a" (line 2): a secret is one credential, so configure it once`,
		// A key that is refused for itself is not compared.
		"{name: a, api_key: \" \"}\n  - {name: b, api_key: \" \"}": "f.yml:2: keys[0].api_key: the key contains whitespace or control characters\n" +
			"f.yml:3: keys[1].api_key: the key contains whitespace or control characters",
	} {
		_, err := Parse([]byte("keys:\n  - "+keys+"\n"), "f.yml")
		if err == nil || err.Error() != want {
			t.Errorf("keys %s:\n got  %v\n want %s", keys, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "canary-same") {
			t.Errorf("keys %s: the error shows the key: %v", keys, err)
		}
	}
	if _, err := Parse([]byte("keys:\n  - {name: a, api_key: "+canary+"}\n  - {name: b, api_key: "+canary+"x}\n"), "f.yml"); err != nil {
		t.Errorf("two secrets refused: %v", err)
	}
}

// An azure_openai key: the api_version it gives, or Azure's GA one; a
// bearer token read from its file at every use, as a secret.
func TestAzureKeys(t *testing.T) {
	cfg, err := Parse([]byte(`keys:
  - {name: ga, provider: azure_openai, api_key: az-k1, base_url: "https://contoso.openai.azure.com/", models: [gpt-4o-mini]}
  - {name: v1, provider: azure_openai, api_key: az-k2, base_url: "https://contoso.openai.azure.com", models: [gpt-4o-mini], api_version: v1}
  - {name: preview, provider: azure_openai, api_key: az-k3, base_url: "https://contoso.openai.azure.com", models: [o3], api_version: 2025-04-01-preview}
  - {name: entra, provider: azure_openai, bearer_token_file: token.txt, base_url: "https://contoso.openai.azure.com", models: [gpt-4o]}
  - {name: other, provider: openai, api_key: sk-k5}
`), "testdata/azure.yml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		apiVersion string
		options    provider.Options
		file       string
	}{
		{"2024-10-21", provider.Options{APIVersion: "2024-10-21"}, ""},
		{"v1", provider.Options{APIVersion: "v1"}, ""},
		{"2025-04-01-preview", provider.Options{APIVersion: "2025-04-01-preview"}, ""},
		{"2024-10-21", provider.Options{APIVersion: "2024-10-21", BearerToken: true}, "testdata/token.txt"},
		{"", provider.Options{}, ""},
	} {
		k := &cfg.Keys[i]
		field, file := k.SecretFile()
		if k.APIVersion != want.apiVersion || k.ProbeOptions() != want.options || file != want.file {
			t.Errorf("key %s: api_version %q, options %+v, secret file %s %q; want %q, %+v, %q",
				k.Name, k.APIVersion, k.ProbeOptions(), field, file, want.apiVersion, want.options, want.file)
		}
	}
	if k := cfg.Keys[0]; k.BaseURL != "https://contoso.openai.azure.com" {
		t.Errorf("base_url %q", k.BaseURL)
	}

	entra := &cfg.Keys[3]
	token, err := entra.Secret()
	if err != nil || !strings.HasSuffix(token.Reveal(), ".test-canary-token") {
		t.Fatalf("the token file's secret: %v", err)
	}
	if out := fmt.Sprintf("%v %+v %#v %s", token, *entra, *entra, token); strings.Contains(out, "test-canary-token") {
		t.Errorf("the token prints: %s", out)
	}

	path := filepath.Join(t.TempDir(), "token")
	entra.BearerTokenFile = path
	for _, content := range []string{"token-one\n", "token-two\r\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := entra.Secret(); err != nil || got.Reveal() != strings.TrimRight(content, "\r\n") {
			t.Errorf("after writing %q: %q, %v", content, got.Reveal(), err)
		}
	}
	if err := os.WriteFile(path, []byte("two tokens\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := entra.Secret(); err == nil || err.Error() != "bearer_token_file "+path+": the token contains whitespace or control characters" ||
		strings.Contains(err.Error(), "two tokens") {
		t.Errorf("a token with a space: %v", err)
	}
}
