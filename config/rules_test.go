package config

import (
	"errors"
	"testing"
)

func TestCheckHTTPURL(t *testing.T) {
	for raw, want := range map[string]error{
		"https://api.cerebras.ai/v1":  nil,
		"http://127.0.0.1:8080":       nil,
		"http://[::1]:8080/v1/":       nil,
		"api.cerebras.ai/v1":          ErrNotHTTPURL,
		"ftp://api.cerebras.ai":       ErrNotHTTPURL,
		"https://":                    ErrNotHTTPURL,
		"https:///v1":                 ErrNotHTTPURL,
		"http://[::1":                 ErrNotHTTPURL,
		"":                            ErrNotHTTPURL,
		"https://user:pw@example.com": ErrURLExtras,
		"https://example.com/v1?a=b":  ErrURLExtras,
		"https://example.com/v1#top":  ErrURLExtras,
	} {
		u, err := CheckHTTPURL(raw)
		if !errors.Is(err, want) || (err == nil) != (u != nil) {
			t.Errorf("CheckHTTPURL(%q) = %v, %v; want error %v", raw, u, err, want)
		}
		if err != nil && err.Error() != want.Error() {
			t.Errorf("CheckHTTPURL(%q): %q, want the bare %q, with no URL in it", raw, err, want)
		}
	}
}
