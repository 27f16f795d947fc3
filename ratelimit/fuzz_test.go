package ratelimit

import (
	"math"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseHeaders feeds the parser a header name and a raw value, which
// may hold several lines and comma lists, as an upstream could send.
func FuzzParseHeaders(f *testing.F) {
	for _, seed := range [][2]string{
		{"x-ratelimit-limit-requests-day", "14400"},
		{"x-ratelimit-reset-tokens-minute", "11.382867097854614"},
		{"x-ratelimit-reset-requests", "6m0s"},
		{"X-RateLimit-Remaining-Tokens-Hour", "5, 5"},
		{"x-ratelimit-limit-requests-day", "1e400"},
		{"x-ratelimit-limit-input-tokens-minute", "٣"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		h := http.Header{name: strings.Split(value, "\n")}
		obs, dropped := ParseHeaders(h)
		if len(obs)+dropped > len(h) || len(obs) > MaxObservations || dropped < 0 {
			t.Fatalf("%d observations and %d dropped from %d headers", len(obs), dropped, len(h))
		}
		for _, o := range obs {
			if math.IsNaN(o.Value) || math.IsInf(o.Value, 0) || o.Value < 0 {
				t.Fatalf("invalid value kept: %+v", o)
			}
			if o.Resource == "" || strings.ContainsAny(o.Resource+o.Window, "\"\n\\{}= ") {
				t.Fatalf("resource or window unfit for a label value: %+v", o)
			}
			if o.Kind != Limit && o.Kind != Remaining && o.Kind != Reset {
				t.Fatalf("unknown kind: %+v", o)
			}
		}
	})
}
