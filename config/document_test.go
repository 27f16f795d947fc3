package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// yaml.v3 makes each message shape that document.go and decodeStrict
// rewrite, and the rewrite takes it. Should an upgrade word one otherwise,
// raw says how, and the message would pass through with what it quotes.
func TestYAMLErrorShapes(t *testing.T) {
	cases := []struct {
		shape    string
		input    string
		fragment string // decoded alone as decodeStrict does; "": input, as Parse does
		raw      string // yaml.v3's message
		want     string // Parse's
	}{
		{
			shape: "yaml: line N: (syntax)",
			input: "keys:\n  - name: a\n b\n",
			raw:   "yaml: line 2: did not find expected key",
			want:  "f.yml:2: did not find expected key",
		},
		{
			shape: "yaml: (syntax, no line)",
			input: "keys: \x01\n",
			raw:   "yaml: control characters are not allowed",
			want:  "f.yml: control characters are not allowed",
		},
		{
			shape: "unknown anchor '...' referenced",
			input: "keys:\n  - name: a\n    api_key: *sk-test-anchor\n",
			raw:   "yaml: unknown anchor 'sk-test-anchor' referenced",
			want:  "f.yml: unknown anchor referenced",
		},
		{
			shape: "line N: (type)",
			input: "keys:\n  - name: a\n    name: b\n",
			raw:   `line 3: mapping key "name" already defined at line 2`,
			want:  `f.yml:3: keys[0].name: mapping key "name" already defined at line 2`,
		},
		{
			shape: "field X not found in type Y",
			input: "keys:\n  - name: a\n    api_keys: x\n",
			raw:   "line 3: field api_keys not found in type config.plain",
			want:  `f.yml:3: keys[0].api_keys: unknown field "api_keys" (see the configuration reference in README.md)`,
		},
		{
			shape: "cannot unmarshal !!tag `value` into T",
			input: "probe: {concurrency: ten}\n",
			raw:   "line 1: cannot unmarshal !!str `ten` into int",
			want:  "f.yml:1: probe.concurrency: expected an integer, got a string",
		},
		{
			shape: "cannot unmarshal !!tag `value...` into T (cut short)",
			input: "probe: {concurrency: sk-test-long-value}\n",
			raw:   "line 1: cannot unmarshal !!str `sk-test...` into int",
			want:  "f.yml:1: probe.concurrency: expected an integer, got a string",
		},
		{
			shape: "cannot unmarshal !!tag `value` into T (a line break in the value)",
			input: "probe: {concurrency: \"sk\\nte\"}\n",
			raw:   "line 1: cannot unmarshal !!str `sk\nte` into int",
			want:  "f.yml:1: probe.concurrency: expected an integer, got a string",
		},
		{
			shape: "cannot unmarshal !!tag into T (no value)",
			input: "keys:\n  - name: a\n    api_key: {sk-test-map: 1}\n",
			raw:   "line 3: cannot unmarshal !!map into config.Secret",
			want:  "f.yml:3: keys[0].api_key: expected a string, got a mapping",
		},
		{
			shape:    "line N: relative to a block (decodeStrict)",
			input:    "keys:\n  - name: a\n    api_key: x\n    http_client:\n      tls_config:\n        ca_fil: x\n",
			fragment: "tls_config:\n  ca_fil: x\n",
			raw:      "line 2: field ca_fil not found in type config.plain",
			want:     `f.yml:6: keys[0].http_client.tls_config.ca_fil: unknown field "ca_fil" (see the configuration reference in README.md)`,
		},
	}
	for _, c := range cases {
		t.Run(c.shape, func(t *testing.T) {
			if raw := yamlMessage(t, c.input, c.fragment); raw != c.raw {
				t.Errorf("yaml.v3's message has changed:\n got  %q\n want %q", raw, c.raw)
			}
			_, err := Parse([]byte(c.input), "f.yml")
			if err == nil || err.Error() != c.want {
				t.Errorf("rewritten:\n got  %q\n want %q", err, c.want)
			}
		})
	}
}

// yamlMessage decodes data as Parse does, or fragment alone as decodeStrict
// does, and returns yaml.v3's one error message.
func yamlMessage(t *testing.T, data, fragment string) string {
	t.Helper()
	var err error
	if fragment != "" {
		type plain HTTPClient
		dec := yaml.NewDecoder(strings.NewReader(fragment))
		dec.KnownFields(true)
		err = dec.Decode(new(plain))
	} else if err = yaml.Unmarshal([]byte(data), new(yaml.Node)); err == nil {
		dec := yaml.NewDecoder(bytes.NewReader([]byte(data)))
		dec.KnownFields(true)
		err = dec.Decode(&Config{Probe: DefaultProbe})
	}
	var typeErr *yaml.TypeError
	switch {
	case err == nil:
		t.Fatal("yaml.v3 took it without an error")
	case errors.As(err, &typeErr) && len(typeErr.Errors) == 1:
		return typeErr.Errors[0]
	case errors.As(err, &typeErr):
		t.Fatalf("yaml.v3 gave %d messages, want 1: %q", len(typeErr.Errors), typeErr.Errors)
	}
	return err.Error()
}
