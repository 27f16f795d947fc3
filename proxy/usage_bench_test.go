package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/tally"
)

// longStream is a chat stream of 500 chunks and its usage, some 60 KB.
var longStream = strings.Repeat("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1795000000,\"model\":\"gpt-4o-mini\","+
	"\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\"},\"finish_reason\":null}],\"usage\":null}\n\n", 500) +
	"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":500,\"total_tokens\":509}}\n\ndata: [DONE]\n\n"

// What reading a body through usageBody costs beside reading it plain, in
// the proxy's 32 KiB copies.
func BenchmarkUsageBody(b *testing.B) {
	for _, tc := range []struct {
		name   string
		body   []byte
		kind   usageKind
		coding contentCoding
	}{
		{"json", []byte(openAIChatBody), jsonUsage, plain},
		{"json-gzip", []byte(gzipText(openAIChatBody)), jsonUsage, gzipped},
		{"stream", []byte(longStream), eventUsage, plain},
		{"stream-gzip", []byte(gzipText(longStream)), eventUsage, gzipped},
	} {
		for _, counted := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/counted=%v", tc.name, counted), func(b *testing.B) {
				var budget bodyBudget
				buf := make([]byte, 32<<10)
				b.SetBytes(int64(len(tc.body)))
				b.ReportAllocs()
				for b.Loop() {
					var body io.ReadCloser = io.NopCloser(bytes.NewReader(tc.body))
					if counted {
						body = newUsageBody(body, int64(len(tc.body)), tc.kind, tc.coding, &budget, 1<<30, func(tally.Spent) {})
					}
					if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{body}, buf); err != nil {
						b.Fatal(err)
					}
					body.Close()
				}
			})
		}
	}
}

type nopRecorder struct{}

func (nopRecorder) Observe(Observation) {}
func (nopRecorder) Spend(Usage)         {}

// A request through the proxy, from the client's request to the last byte
// of the answer, for a key that declares limits and for one that does not.
func BenchmarkProxyUsage(b *testing.B) {
	for _, answer := range []struct {
		name, contentType, body string
	}{
		{"json", "application/json", openAIChatBody},
		{"stream", "text/event-stream", longStream},
	} {
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", answer.contentType)
			w.Header().Set("X-Ratelimit-Remaining-Requests", "59")
			_, _ = io.WriteString(w, answer.body)
		}))
		for _, declared := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/declared=%v", answer.name, declared), func(b *testing.B) {
				limits := ""
				if declared {
					limits = ", limits: [{resource: tokens, window: minute, limit: 1000000}]"
				}
				cfg, err := config.Parse([]byte(fmt.Sprintf(`keys:
  - {name: k, provider: openai, api_key: %s, models: [gpt-4o-mini]%s}
proxy:
  routes: [{path_prefix: /openai/, upstream: %q, provider: openai}]
`, openAIKey, limits, upstream.URL)), "bench.yml")
				if err != nil {
					b.Fatal(err)
				}
				p, err := New(cfg, nopRecorder{}, nil)
				if err != nil {
					b.Fatal(err)
				}
				const request = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}`
				b.ReportAllocs()
				for b.Loop() {
					r := httptest.NewRequest(http.MethodPost, "/openai/v1/chat/completions", strings.NewReader(request))
					r.Header.Set("Authorization", "Bearer "+openAIKey)
					w := httptest.NewRecorder()
					p.ServeHTTP(w, r)
					if w.Code != 200 || w.Body.Len() != len(answer.body) {
						b.Fatalf("%d, %d bytes", w.Code, w.Body.Len())
					}
				}
			})
		}
		upstream.Close()
	}
}
