package config

import (
	"reflect"
	"testing"
)

// Declared windows take the names the headers give their lengths; a limit
// without a model is each of the key's models', unless the model declares
// its own of that resource and window; a key probed once for all its
// models has its unnamed limits under "".
func TestDeclaredLimits(t *testing.T) {
	cfg, err := Parse([]byte(`
keys:
  - name: g
    provider: gemini
    api_key: sk-test-declared-g
    models: [a, b]
    limits:
      - {resource: requests, window: 1m, limit: 15}
      - {model: b, resource: requests, window: 60s, limit: 5}
      - {model: c, resource: input_tokens, window: 24h, limit: 1e6}
      - {resource: tokens, window: 5h, limit: 100}
      - {resource: output_tokens, window: 3600s, limit: 7}
  - name: d
    provider: deepseek
    api_key: sk-test-declared-d
    limits: [{resource: requests, window: second, limit: 2}]
  - name: none
    provider: deepseek
    api_key: sk-test-declared-none
proxy:
  routes:
    - {path_prefix: /gemini/, upstream: "https://generativelanguage.googleapis.com", provider: gemini}
    - {path_prefix: /deepseek/, upstream: "https://api.deepseek.com", provider: deepseek}
`), "limits.yml")
	if err != nil {
		t.Fatal(err)
	}
	windows := []string{}
	for _, l := range cfg.Keys[0].Limits {
		windows = append(windows, l.Window)
	}
	if want := []string{"minute", "minute", "day", "5h", "hour"}; !reflect.DeepEqual(windows, want) {
		t.Errorf("windows %q, want %q", windows, want)
	}
	perMinute := Limit{Resource: "requests", Window: "minute", Limit: 15}
	tokens := Limit{Resource: "tokens", Window: "5h", Limit: 100}
	output := Limit{Resource: "output_tokens", Window: "hour", Limit: 7}
	want := map[string][]Limit{
		"a": {perMinute, tokens, output},
		"b": {{Model: "b", Resource: "requests", Window: "minute", Limit: 5}, tokens, output},
		"c": {{Model: "c", Resource: "input_tokens", Window: "day", Limit: 1e6}},
	}
	if got := cfg.Keys[0].DeclaredLimits(); !reflect.DeepEqual(got, want) {
		t.Errorf("gemini key: got  %v\nwant %v", got, want)
	}
	if got, want := cfg.Keys[1].DeclaredLimits(), map[string][]Limit{"": {{Resource: "requests", Window: "second", Limit: 2}}}; !reflect.DeepEqual(got, want) {
		t.Errorf("per-key provider: got %v, want %v", got, want)
	}
	if got := cfg.Keys[2].DeclaredLimits(); got != nil {
		t.Errorf("a key without limits: %v, want nil", got)
	}
}
