package prober

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkProbe is one probe of a loopback server that answers with
// OpenAI's rate-limit headers: what each probe costs in CPU, the server's
// share included.
func BenchmarkProbe(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Ratelimit-Limit-Requests", "10000")
		h.Set("X-Ratelimit-Remaining-Requests", "9999")
		h.Set("X-Ratelimit-Reset-Requests", "6ms")
		h.Set("X-Ratelimit-Limit-Tokens", "2000000")
		h.Set("X-Ratelimit-Remaining-Tokens", "1999990")
		h.Set("X-Ratelimit-Reset-Tokens", "0s")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"usage":{"total_tokens":10}}`))
	}))
	defer srv.Close()
	p := New("ratelimit_exporter/bench")
	tg := target(srv.URL, canary)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if r := p.Probe(context.Background(), tg); r.Outcome != Success {
			b.Fatalf("outcome %s: %v", r.Outcome, r.Err)
		}
	}
}
