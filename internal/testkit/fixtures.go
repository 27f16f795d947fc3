package testkit

import (
	"embed"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// samples are the provider responses of testdata/, embedded so that a test
// reads them whatever its working directory.
//
//go:embed testdata
var samples embed.FS

// Fixture returns the sample name of testdata/ (README.md there says where
// each comes from).
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := samples.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("sample %s: %v", name, err)
	}
	return data
}

// Headers returns the header sample name of testdata/: one "Name: value" a
// line, lines starting with # saying where the sample comes from.
func Headers(t testing.TB, name string) http.Header {
	t.Helper()
	h, err := parseHeaders(Fixture(t, name))
	if err != nil {
		t.Fatalf("sample %s: %v", name, err)
	}
	return h
}

// parseHeaders reads a header sample.
func parseHeaders(data []byte) (http.Header, error) {
	h := http.Header{}
	for i, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: no colon in %q", i+1, line)
		}
		h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return h, nil
}
