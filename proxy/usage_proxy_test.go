package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/tally"
)

// Through the proxy, a key counts what its 2xx answers for a model it
// declares limits of spent: the request as the answer starts, the tokens
// of its usage as its body ends. Other keys, models and statuses are not
// counted, nor are their bodies read; what the client gets is the
// upstream's.
func TestUsageThroughTheProxy(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Query().Get("answer") {
		case "stream":
			h.Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, openAIStreamWithUsage)
		case "gzip":
			h.Set("Content-Type", "application/json")
			h.Set("Content-Encoding", "gzip")
			_, _ = io.WriteString(w, gzipText(openAIChatBody))
		case "brotli":
			h.Set("Content-Type", "application/json")
			h.Set("Content-Encoding", "br")
			_, _ = io.WriteString(w, openAIChatBody) // what the proxy cannot read
		case "audio":
			h.Set("Content-Type", "audio/mpeg")
			_, _ = io.WriteString(w, openAIChatBody)
		case "refused":
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"type":"requests"},"usage":{"total_tokens":5}}`)
		case "bad request":
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, openAIChatBody)
		default:
			h.Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, openAIChatBody)
		}
	})
	cfg, err := config.Parse([]byte(fmt.Sprintf(`keys:
  - name: counted
    provider: openai
    api_key: %s
    models: [m]
    limits: [{resource: tokens, window: minute, limit: 1000}, {model: extra, resource: requests, window: day, limit: 10}]
  - {name: uncounted, provider: openai, api_key: %s}
proxy:
  listen_address: 127.0.0.1:0
  unknown_keys: fingerprint
  routes: [{path_prefix: /openai/, upstream: %q, provider: openai}]
`, openAIKey, anthropicKey, up.URL)), "usage.yml")
	if err != nil {
		t.Fatal(err)
	}
	e := startConfig(t, cfg)
	served := tally.Spent{Requests: 1}
	tokens := tally.Spent{InputTokens: 19, OutputTokens: 10, Tokens: 29}
	for _, tc := range []struct {
		name, key, model, answer, method string
		want                             []tally.Spent
	}{
		{"json", openAIKey, "m", "", "", []tally.Spent{served, tokens}},
		{"a model declared alone", openAIKey, "extra", "", "", []tally.Spent{served, tokens}},
		{"stream", openAIKey, "m", "stream", "", []tally.Spent{served, {InputTokens: 9, OutputTokens: 2, Tokens: 11}}},
		{"gzip", openAIKey, "m", "gzip", "", []tally.Spent{served, tokens}},
		{"another encoding", openAIKey, "m", "brotli", "", []tally.Spent{served}},
		{"not JSON", openAIKey, "m", "audio", "", []tally.Spent{served}},
		{"HEAD", openAIKey, "m", "", http.MethodHead, []tally.Spent{served}},
		{"refused", openAIKey, "m", "refused", "", nil},
		{"bad request", openAIKey, "m", "bad request", "", nil},
		{"a model not declared", openAIKey, "other", "", "", nil},
		{"a key that declares nothing", anthropicKey, "m", "", "", nil},
		{"an unknown key", unknownKey, "m", "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.rec.usages())
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := newRequest(t, method, e.url+"/openai/v1/chat/completions?answer="+strings.ReplaceAll(tc.answer, " ", "+"),
				`{"model":"`+tc.model+`"}`, "Authorization", "Bearer "+tc.key)
			got := do(t, e.client, req)
			_, body := up.lastRequest()
			if method != http.MethodHead && len(got.body) == 0 || string(body) != `{"model":"`+tc.model+`"}` {
				t.Errorf("the client got %q, the upstream %q", got.body, body)
			}
			var spent []tally.Spent
			for _, u := range e.rec.usages()[before:] {
				if u.Key != "counted" || u.Provider != "openai" || u.Model != tc.model {
					t.Errorf("counted under %s %s %s", u.Key, u.Provider, u.Model)
				}
				spent = append(spent, u.Spent)
			}
			if fmt.Sprint(spent) != fmt.Sprint(tc.want) {
				t.Errorf("spent %v, want %v", spent, tc.want)
			}
		})
	}
	// A request's body is returned once its handler is done, which may be
	// just after its client has read the answer.
	waitFor(t, "the body budget to be returned", func() bool { return e.proxy.bodies.used.Load() == 0 })
	// The brotli answer's tokens went uncounted, and the count says so.
	if got := testutil.ToFloat64(e.proxy.usageUnread.WithLabelValues(UnreadEncoding)); got != 1 {
		t.Errorf("%v answers unread for their encoding, want 1", got)
	}
}
