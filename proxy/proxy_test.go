package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

func TestRouting(t *testing.T) {
	short := newUpstream(t, okHandler)
	long := newUpstream(t, okHandler)
	based := newUpstream(t, okHandler)
	e := startProxy(t, setup{routes: []config.Route{
		{PathPrefix: "/openai/", Upstream: short.URL, Provider: "openai"},
		{PathPrefix: "/openai/v2/", Upstream: long.URL + "/", Provider: "openai"},
		{PathPrefix: "/groq/", Upstream: based.URL + "/openai", Provider: "groq"},
	}})
	for _, tc := range []struct {
		path    string
		want    *upstream
		wantURI string
	}{
		{"/openai/v1/chat/completions", short, "/v1/chat/completions"},
		{"/openai/v1/models?limit=2&after=a%2Fb", short, "/v1/models?limit=2&after=a%2Fb"},
		{"/openai/", short, "/"},
		{"/openai/v1/files/a%2Fb", short, "/v1/files/a%2Fb"},
		{"/openai/v2/models", long, "/models"},
		{"/groq/v1/chat/completions?", based, "/openai/v1/chat/completions?"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			before := tc.want.hits.Load()
			got := do(t, e.client, newRequest(t, http.MethodGet, e.url+tc.path, ""))
			if got.status != http.StatusOK || tc.want.hits.Load() != before+1 {
				t.Fatalf("status %d, %d requests to the route's upstream", got.status, tc.want.hits.Load()-before)
			}
			if r, _ := tc.want.lastRequest(); r.RequestURI != tc.wantURI {
				t.Errorf("the upstream got %q, want %q", r.RequestURI, tc.wantURI)
			}
		})
	}
}

// The upstream gets what the application sent but for the hop-by-hop
// headers and Host, and nothing added.
func TestRequestUnchanged(t *testing.T) {
	up := newUpstream(t, okHandler)
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}`
	req := newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions?a=1&b=%20", body,
		"Authorization", "Bearer "+openAIKey,
		"Content-Type", "application/json",
		"X-Custom", "one", "X-Custom", "two",
		"User-Agent", "app/1.0",
		"Connection", "X-Hop",
		"X-Hop", "dropped",
		"Keep-Alive", "timeout=5",
		"Accept-Encoding", "identity")
	if got := do(t, e.client, req); got.status != http.StatusOK {
		t.Fatalf("status %d", got.status)
	}
	r, gotBody := up.lastRequest()
	if r.Method != http.MethodPost || r.RequestURI != "/v1/chat/completions?a=1&b=%20" || string(gotBody) != body {
		t.Errorf("the upstream got %s %s %q", r.Method, r.RequestURI, gotBody)
	}
	if r.Host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("Host %q, want the upstream's", r.Host)
	}
	want := http.Header{
		"Authorization":   {"Bearer " + openAIKey},
		"Content-Type":    {"application/json"},
		"X-Custom":        {"one", "two"},
		"User-Agent":      {"app/1.0"},
		"Accept-Encoding": {"identity"},
		"Content-Length":  {fmt.Sprint(len(body))},
	}
	for _, name := range sortedUnion(want, r.Header) {
		if !slices.Equal(r.Header[name], want[name]) {
			t.Errorf("the upstream got %s: %q, want %q", name, r.Header[name], want[name])
		}
	}

	// Without Accept-Encoding or User-Agent, the proxy adds neither.
	req = newRequest(t, http.MethodGet, e.url+"/openai/v1/models", "")
	req.Header["User-Agent"] = nil
	do(t, e.client, req)
	if r, _ := up.lastRequest(); len(r.Header) != 0 {
		t.Errorf("the upstream got headers %v, the application sent none", r.Header)
	}
}

// Responses reach the application as the upstream sent them, a redirect
// too: not followed.
func TestResponsesPassThrough(t *testing.T) {
	other := newUpstream(t, okHandler)
	answers := map[string]http.HandlerFunc{
		"/429": func(w http.ResponseWriter, _ *http.Request) {
			maps.Copy(w.Header(), http.Header{
				"Content-Type":                   {"application/json; charset=utf-8"},
				"Retry-After":                    {"7"},
				"X-Ratelimit-Limit-Requests":     {"60"},
				"X-Ratelimit-Remaining-Requests": {"0"},
				"X-Ratelimit-Reset-Requests":     {"6.5s"},
				"X-Request-Id":                   {"a", "b"},
				"Date":                           {"Sun, 06 Nov 1994 08:49:37 GMT"},
			})
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
		},
		"/500": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("X-Upstream", "yes")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "upstream broke\n")
		},
		"/302": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/elsewhere", http.StatusFound)
		},
		"/untyped": func(w http.ResponseWriter, _ *http.Request) {
			w.Header()["Content-Type"] = nil // sent without one
			_, _ = io.WriteString(w, "<html>sniffable</html>")
		},
		"/chunked": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			for i := range 3 {
				fmt.Fprintf(w, "{\"n\":%d}\n", i)
				http.NewResponseController(w).Flush()
			}
		},
		"/undated": func(w http.ResponseWriter, _ *http.Request) {
			w.Header()["Date"] = nil // sent without one
			okHandler(w, nil)
		},
		"/head": okHandler,
	}
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { answers[r.URL.Path](w, r) })
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	for _, path := range []string{"/429", "/500", "/302", "/untyped", "/undated", "/chunked", "/head"} {
		t.Run(path, func(t *testing.T) {
			method := http.MethodPost
			if path == "/head" {
				method = http.MethodHead
			}
			direct := do(t, e.client, newRequest(t, method, up.URL+path, "{}", "Authorization", "Bearer "+openAIKey))
			proxied := do(t, e.client, newRequest(t, method, e.url+"/openai"+path, "{}", "Authorization", "Bearer "+openAIKey))
			for _, diff := range differences(direct, proxied) {
				t.Error(diff)
			}
		})
	}
	other.untouched(t, "the redirect's target")

	// The 429's Date, the upstream's own, reached the application too.
	got := do(t, e.client, newRequest(t, http.MethodPost, e.url+"/openai/429", "{}", "Authorization", "Bearer "+openAIKey))
	if d := got.header.Get("Date"); d != "Sun, 06 Nov 1994 08:49:37 GMT" {
		t.Errorf("Date %q, want the upstream's", d)
	}
	// A 429 is recorded like a 2xx.
	o := e.rec.last(t)
	want := []ratelimit.Observation{
		{Kind: ratelimit.Limit, Resource: "requests", Value: 60},
		{Kind: ratelimit.Remaining, Resource: "requests", Value: 0},
		{Kind: ratelimit.Reset, Resource: "requests", Value: 6.5},
	}
	if o.StatusCode != 429 || o.Key != "team-openai" || !slices.Equal(o.Observations, want) {
		t.Errorf("recorded %+v", o)
	}
}

// Only the routes' upstreams are reachable, whatever the request says.
func TestNotAnOpenProxy(t *testing.T) {
	other := newUpstream(t, okHandler)
	up := newUpstream(t, okHandler)
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	otherHost := strings.TrimPrefix(other.URL, "http://")

	// Sent as raw bytes: Go's client would not send most of them.
	for _, tc := range []struct {
		name, request string
		status        int
		code          string
	}{
		{"absolute-form", "GET http://" + otherHost + "/openai/v1/models HTTP/1.1\r\nHost: " + otherHost + "\r\n\r\n", 403, "forward_proxy_refused"},
		{"absolute-form to the route's own upstream", "GET " + up.URL + "/v1/models HTTP/1.1\r\nHost: x\r\n\r\n", 403, "forward_proxy_refused"},
		{"CONNECT", "CONNECT " + otherHost + " HTTP/1.1\r\nHost: " + otherHost + "\r\n\r\n", 403, "forward_proxy_refused"},
		{"CONNECT in origin form", "CONNECT /openai/v1/models HTTP/1.1\r\nHost: " + otherHost + "\r\n\r\n", 403, "forward_proxy_refused"},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 403, "forward_proxy_refused"},
		{"outside every prefix", "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no_route"},
		{"the prefix without its slash", "GET /openai HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no_route"},
		{"dot segments", "GET /openai/../" + otherHost + "/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_path"},
		{"escaped dot segments", "GET /openai/%2e%2e/admin HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxyError(t, rawRequest(t, e.addr, tc.request), tc.status, tc.code)
		})
	}
	other.untouched(t, "the other server")
	up.untouched(t, "the route's upstream")

	// Host, Forwarded and X-Forwarded-Host naming another server are ignored.
	req := newRequest(t, http.MethodGet, e.url+"/openai/v1/models", "",
		"Forwarded", "host="+otherHost, "X-Forwarded-Host", otherHost, "X-Forwarded-Proto", "http")
	req.Host = otherHost
	if got := do(t, e.client, req); got.status != http.StatusOK || up.hits.Load() != 1 {
		t.Errorf("status %d, %d requests to the route's upstream", got.status, up.hits.Load())
	}
	other.untouched(t, "the server the headers named")
	if r, _ := up.lastRequest(); r.Host != strings.TrimPrefix(up.URL, "http://") || r.Header.Get("X-Forwarded-Host") != "" || r.Header.Get("Forwarded") != "" {
		t.Errorf("the upstream got Host %q and %v", r.Host, r.Header)
	}
}

// rawRequest writes a request as is on a new connection and reads the answer.
func rawRequest(t *testing.T, addr, request string) reply {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(guard))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, body}
}

func TestRequestTooLarge(t *testing.T) {
	up := newUpstream(t, okHandler)
	e := startProxy(t, setup{maxRequestBytes: "1KiB", routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"at the limit", 1024, false, 200},
		{"at the limit, chunked", 1024, true, 200},
		{"one byte over", 1025, false, 413},
		{"one byte over, chunked", 1025, true, 413},
		{"far over, chunked", 1 << 20, true, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			body := strings.Repeat("x", tc.size)
			req := newRequest(t, http.MethodPost, e.url+"/openai/v1/files", body, "Authorization", "Bearer "+openAIKey)
			if tc.chunked {
				req.Body, req.ContentLength = io.NopCloser(strings.NewReader(body)), -1
			}
			got := do(t, e.client, req)
			if tc.status == 413 {
				proxyError(t, got, 413, "request_too_large")
				if up.hits.Load() != before {
					t.Error("the upstream was contacted")
				}
				return
			}
			if _, b := up.lastRequest(); got.status != 200 || string(b) != body {
				t.Errorf("status %d, the upstream got %d bytes", got.status, len(b))
			}
		})
	}
	// A Content-Length over the limit is refused before the body is sent.
	before := up.hits.Load()
	proxyError(t, rawRequest(t, e.addr, "POST /openai/v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"), 413, "request_too_large")
	if up.hits.Load() != before {
		t.Error("the upstream was contacted")
	}
}

// A response is recorded when it holds a rate-limit value and its status
// carries limits (ratelimit.Parser.Read), is a 429, or asks to retry later.
func TestWhatIsRecorded(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/429":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		case "/invalid":
			w.Header().Set("X-Ratelimit-Remaining-Requests", "many")
		case "/mixed":
			w.Header().Set("X-Ratelimit-Remaining-Requests", "many")
			w.Header().Set("X-Ratelimit-Limit-Requests", "60")
		case "/500-with-limits":
			w.Header().Set("X-Ratelimit-Limit-Requests", "60")
			w.WriteHeader(http.StatusInternalServerError)
		case "/503-retry-after":
			w.Header().Set("Retry-After", "600")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	for _, tc := range []struct {
		path    string
		want    bool
		status  int
		obs     int
		dropped int
	}{
		{"/429", true, 429, 0, 0},
		{"/500", false, 0, 0, 0},
		{"/ok", false, 0, 0, 0},
		{"/invalid", false, 0, 0, 0},
		{"/mixed", true, 200, 1, 1},
		{"/500-with-limits", false, 0, 0, 0},
		{"/503-retry-after", true, 503, 0, 0},
	} {
		before := len(e.rec.all())
		do(t, e.client, newRequest(t, http.MethodGet, e.url+"/openai"+tc.path, "", "Authorization", "Bearer "+openAIKey))
		all := e.rec.all()
		if got := len(all) > before; got != tc.want {
			t.Errorf("%s: recorded %v, want %v", tc.path, got, tc.want)
			continue
		}
		if o := all[len(all)-1]; tc.want && (o.StatusCode != tc.status || len(o.Observations) != tc.obs || o.Dropped != tc.dropped) {
			t.Errorf("%s: recorded %+v", tc.path, o)
		}
	}
}

// A client that leaves before the upstream answers is counted as 499, and
// logged at debug level only.
func TestClientGoneBeforeAnswer(t *testing.T) {
	arrived, left := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, func(_ http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
		close(left)
	})
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	ctx, cancel := context.WithCancel(context.Background())
	failed := make(chan error, 1)
	go func() {
		resp, err := e.client.Do(newRequest(t, http.MethodGet, e.url+"/openai/v1/slow", "").WithContext(ctx))
		if err == nil {
			resp.Body.Close()
		}
		failed <- err
	}()
	<-arrived
	cancel()
	<-left
	if err := <-failed; err == nil {
		t.Error("the request was answered")
	}
	if err := e.stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if got := testutil.ToFloat64(e.proxy.requests.WithLabelValues("/openai/", "499")); got != 1 {
		t.Errorf("ratelimit_proxy_requests_total{code=\"499\"} = %g", got)
	}
	if loud := regexp.MustCompile(`(?m)^.*level=(info|warn|error).*$`).FindAllString(e.logs.String(), -1); len(loud) != 0 {
		t.Errorf("logged above debug:\n%s", strings.Join(loud, "\n"))
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	closed := "http://" + testkit.FreeAddr(t)
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: closed, Provider: "openai"}}})
	got := do(t, e.client, newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions?key="+openAIKey, "{}", "Authorization", "Bearer "+openAIKey))
	proxyError(t, got, http.StatusBadGateway, "upstream_unreachable")
	if !strings.Contains(e.logs.String(), `msg="Cannot reach the upstream" route=/openai/`) {
		t.Errorf("no warning of the unreachable upstream in:\n%s", e.logs)
	}
	if len(e.rec.all()) != 0 {
		t.Errorf("recorded %v", e.rec.all())
	}
}

func TestUnknownKeys(t *testing.T) {
	sum := sha256.Sum256([]byte(unknownKey))
	fingerprint := fmt.Sprintf("sha256:%x", sum[:6])
	for _, tc := range []struct {
		mode, key string
		status    int
		recorded  string // "": nothing
	}{
		{"forward", openAIKey, 200, "team-openai"},
		{"forward", unknownKey, 200, ""},
		{"forward", "", 200, ""},
		{"forward", anthropicKey, 200, ""}, // another provider's key
		{"fingerprint", openAIKey, 200, "team-openai"},
		{"fingerprint", unknownKey, 200, fingerprint},
		{"fingerprint", "", 200, ""},
		{"reject", openAIKey, 200, "team-openai"},
		{"reject", unknownKey, 403, ""},
		{"reject", "", 403, ""},
		{"reject", anthropicKey, 403, ""},
	} {
		t.Run(tc.mode+"/"+tc.key, func(t *testing.T) {
			up := newUpstream(t, okHandler)
			e := startProxy(t, setup{unknownKeys: tc.mode, routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
			req := newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions", `{"model":"gpt-4o-mini"}`)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			got := do(t, e.client, req)
			if tc.status == 403 {
				proxyError(t, got, 403, "unknown_key")
				up.untouched(t, "the upstream")
			} else if got.status != tc.status {
				t.Errorf("status %d", got.status)
			}
			recorded := e.rec.all()
			switch {
			case tc.recorded == "" && len(recorded) != 0:
				t.Errorf("recorded %+v", recorded)
			case tc.recorded == "":
			case len(recorded) != 1:
				t.Errorf("recorded %+v, want one observation of %s", recorded, tc.recorded)
			case recorded[0].Key != tc.recorded || recorded[0].Model != "gpt-4o-mini" || recorded[0].Provider != "openai" ||
				recorded[0].StatusCode != 200 || len(recorded[0].Observations) != 3:
				t.Errorf("recorded %+v, want %s", recorded[0], tc.recorded)
			}
		})
	}
}

// The key is read where the provider reads it, and in the other header
// too; the Bearer scheme in any case.
func TestKeyHeaders(t *testing.T) {
	up := newUpstream(t, okHandler)
	e := startProxy(t, setup{unknownKeys: "reject", routes: []config.Route{
		{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"},
		{PathPrefix: "/anthropic/", Upstream: up.URL, Provider: "anthropic"},
	}})
	for _, tc := range []struct {
		path   string
		header []string
		want   string
	}{
		{"/openai/", []string{"Authorization", "Bearer " + openAIKey}, "team-openai"},
		{"/openai/", []string{"Authorization", "bearer " + openAIKey}, "team-openai"},
		{"/openai/", []string{"X-Api-Key", openAIKey}, "team-openai"},
		{"/anthropic/", []string{"X-Api-Key", anthropicKey}, "team-anthropic"},
		{"/anthropic/", []string{"Authorization", "Bearer " + anthropicKey}, "team-anthropic"},
		{"/anthropic/", []string{"X-Api-Key", anthropicKey, "Authorization", "Bearer " + anthropicKey}, "team-anthropic"},
		// Every key the upstream receives must be configured: it might read any.
		{"/anthropic/", []string{"X-Api-Key", anthropicKey, "Authorization", "Bearer " + unknownKey}, ""},
		{"/anthropic/", []string{"X-Api-Key", unknownKey, "Authorization", "Bearer " + anthropicKey}, ""},
		{"/openai/", []string{"Authorization", "Bearer " + openAIKey, "Authorization", "Bearer " + unknownKey}, ""},
		{"/openai/", []string{"Authorization", "Bearer " + openAIKey, "X-Api-Key", unknownKey}, ""},
		{"/openai/", []string{"Authorization", "Basic " + openAIKey}, ""},
		{"/openai/", []string{"Authorization", "Bearer" + openAIKey}, ""},
	} {
		got := do(t, e.client, newRequest(t, http.MethodGet, e.url+tc.path+"v1/x", "", tc.header...))
		if tc.want == "" {
			if got.status != 403 {
				t.Errorf("%s %q: status %d, want 403", tc.path, tc.header, got.status)
			}
			continue
		}
		if o := e.rec.last(t); got.status != 200 || o.Key != tc.want {
			t.Errorf("%s %q: status %d, recorded under %q, want %q", tc.path, tc.header, got.status, o.Key, tc.want)
		}
	}
}

// A key whose file cannot be read is left out with a warning that names
// the file; the other keys still match.
func TestUnreadableKeyFile(t *testing.T) {
	up := newUpstream(t, okHandler)
	file := t.TempDir() + "/key"
	const fileKey = "sk-sim-proxy-file-0123456789abcdef"
	if err := os.WriteFile(file, []byte(fileKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, setup{
		unknownKeys: "reject",
		keys:        fmt.Sprintf("  - {name: from-file, provider: openai, api_key_file: %s}\n", file),
		routes:      []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}},
	})
	e := startConfig(t, cfg)
	if got := do(t, e.client, newRequest(t, http.MethodGet, e.url+"/openai/v1/x", "", "Authorization", "Bearer "+fileKey)); got.status != 200 {
		t.Fatalf("the file's key: status %d", got.status)
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := e.proxy.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if got := do(t, e.client, newRequest(t, http.MethodGet, e.url+"/openai/v1/x", "", "Authorization", "Bearer "+fileKey)); got.status != 403 {
		t.Errorf("the unreadable file's key: status %d, want 403", got.status)
	}
	if got := do(t, e.client, newRequest(t, http.MethodGet, e.url+"/openai/v1/x", "", "Authorization", "Bearer "+openAIKey)); got.status != 200 {
		t.Errorf("another key: status %d, want 200", got.status)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "level=warn") || !strings.Contains(logs, "key=from-file file="+file) {
		t.Errorf("no warning naming the file in:\n%s", logs)
	}
}

// A reload's routes, keys and settings are those of the next request.
func TestApply(t *testing.T) {
	a := newUpstream(t, okHandler)
	b := newUpstream(t, okHandler)
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/a/", Upstream: a.URL, Provider: "openai"}}})
	if got := do(t, e.client, newRequest(t, http.MethodGet, e.url+"/a/v1/x", "")); got.status != 200 || a.hits.Load() != 1 {
		t.Fatalf("before: status %d", got.status)
	}

	err := e.proxy.Apply(parseConfig(t, setup{unknownKeys: "reject", routes: []config.Route{
		{PathPrefix: "/b/", Upstream: b.URL, Provider: "openai"},
		{PathPrefix: "/a/", Upstream: b.URL + "/moved", Provider: "openai"},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := do(t, e.client, newRequest(t, http.MethodGet, e.url+"/b/v1/x", "", "Authorization", "Bearer "+openAIKey)); got.status != 200 {
		t.Errorf("new route: status %d", got.status)
	}
	if got := do(t, e.client, newRequest(t, http.MethodGet, e.url+"/a/v1/x", "", "Authorization", "Bearer "+openAIKey)); got.status != 200 {
		t.Errorf("moved route: status %d", got.status)
	}
	if r, _ := b.lastRequest(); r.URL.Path != "/moved/v1/x" || a.hits.Load() != 1 {
		t.Errorf("moved route reached %s, old upstream had %d requests", r.URL.Path, a.hits.Load())
	}
	if got := do(t, e.client, newRequest(t, http.MethodGet, e.url+"/b/v1/x", "", "Authorization", "Bearer "+unknownKey)); got.status != 403 {
		t.Errorf("unknown_keys: reject not applied: status %d", got.status)
	}

	if err := e.proxy.Apply(&config.Config{}); err == nil {
		t.Error("a config without a proxy block was applied")
	}
	if got := do(t, e.client, newRequest(t, http.MethodGet, e.url+"/b/v1/x", "", "Authorization", "Bearer "+openAIKey)); got.status != 200 {
		t.Errorf("after a refused Apply: status %d", got.status)
	}
}

func TestRequestsTotal(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/missing" {
			http.NotFound(w, r)
			return
		}
		okHandler(w, r)
	})
	closed := "http://" + testkit.FreeAddr(t)
	e := startProxy(t, setup{unknownKeys: "reject", maxRequestBytes: "16B", routes: []config.Route{
		{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"},
		{PathPrefix: "/down/", Upstream: closed, Provider: "openai"},
	}})
	auth := []string{"Authorization", "Bearer " + openAIKey}
	for range 2 {
		do(t, e.client, newRequest(t, http.MethodGet, e.url+"/openai/v1/models", "", auth...))
	}
	do(t, e.client, newRequest(t, http.MethodGet, e.url+"/openai/v1/missing", "", auth...))
	do(t, e.client, newRequest(t, http.MethodGet, e.url+"/openai/v1/models", "", "Authorization", "Bearer "+unknownKey))
	do(t, e.client, newRequest(t, http.MethodPost, e.url+"/openai/v1/files", strings.Repeat("x", 17), auth...))
	do(t, e.client, newRequest(t, http.MethodGet, e.url+"/down/v1/models", "", auth...))
	do(t, e.client, newRequest(t, http.MethodGet, e.url+"/nowhere", "", auth...))
	rawRequest(t, e.addr, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")

	want := `
# HELP ratelimit_proxy_requests_total Requests through the proxy, by route (its path_prefix; "" for requests that match none) and the status code answered to the client, the proxy's own refusals and 502s included; 499: the client left before the upstream answered.
# TYPE ratelimit_proxy_requests_total counter
ratelimit_proxy_requests_total{code="200",route="/openai/"} 2
ratelimit_proxy_requests_total{code="403",route=""} 1
ratelimit_proxy_requests_total{code="403",route="/openai/"} 1
ratelimit_proxy_requests_total{code="404",route=""} 1
ratelimit_proxy_requests_total{code="404",route="/openai/"} 1
ratelimit_proxy_requests_total{code="413",route="/openai/"} 1
ratelimit_proxy_requests_total{code="502",route="/down/"} 1
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), "ratelimit_proxy_requests_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(e.reg); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// What the upstream left out of its headers, net/http would add when the
// proxy writes the response: modifyResponse keeps it out. (Whether net/http
// adds a Content-Type depends on whether the first body bytes come before
// the first flush, so this is checked on the hook itself.)
func TestHeadersLeftOut(t *testing.T) {
	up := newUpstream(t, okHandler)
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	client := httptest.NewRecorder()
	ex := &exchange{route: e.proxy.state.Load().routes[0], client: client}
	req := httptest.NewRequest(http.MethodGet, "/v1/models", nil)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"X-Other": {"1"}}, Request: req.WithContext(context.WithValue(req.Context(), exchangeKey{}, ex))}
	if err := e.proxy.modifyResponse(resp); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Content-Type", "Date"} {
		if v, set := client.Header()[name]; !set || v != nil {
			t.Errorf("%s: %q, set %v; want it set to nil, which keeps net/http from adding one", name, v, set)
		}
	}
	if _, set := client.Header()["X-Other"]; set {
		t.Error("modifyResponse copied headers itself")
	}
}

// A header named in Connection never reaches the upstream, so it is
// nobody's identity: a configured key sent that way cannot carry another
// key past unknown_keys: reject, nor lend its name to the other key's
// limits. Nor can a configured key sent beside another one.
func TestSmuggledKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"named in Connection", []string{"X-Api-Key", anthropicKey, "Connection", "x-api-key", "Authorization", "Bearer " + unknownKey}},
		{"beside another", []string{"X-Api-Key", anthropicKey, "Authorization", "Bearer " + unknownKey}},
	} {
		for _, mode := range []string{"reject", "forward", "fingerprint"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				up := newUpstream(t, okHandler)
				e := startProxy(t, setup{unknownKeys: mode, routes: []config.Route{{PathPrefix: "/anthropic/", Upstream: up.URL, Provider: "anthropic"}}})
				got := do(t, e.client, newRequest(t, http.MethodPost, e.url+"/anthropic/v1/messages", `{"model":"claude"}`, tc.header...))
				if mode == "reject" {
					proxyError(t, got, 403, "unknown_key")
					up.untouched(t, "the upstream")
				} else if got.status != 200 {
					t.Errorf("status %d, want 200", got.status)
				}
				for _, o := range e.rec.all() {
					if o.Key == "team-anthropic" {
						t.Errorf("recorded under the configured key's name, which the upstream may not have read: %+v", o)
					}
				}
				// The key forwarded, alone, is the one recorded.
				if all := e.rec.all(); tc.name == "named in Connection" && mode == "fingerprint" &&
					(len(all) != 1 || !strings.HasPrefix(all[0].Key, config.FingerprintPrefix)) {
					t.Errorf("recorded %+v, want the forwarded key's fingerprint", all)
				}
			})
		}
	}
}

// A request's trailers are headers the key check never saw: none reaches
// the upstream.
func TestRequestTrailersAreDropped(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if len(r.Trailer) > 0 {
			w.Header().Set("X-Saw-Trailer", "yes")
		}
		okHandler(w, r)
	})
	e := startProxy(t, setup{unknownKeys: "reject", routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	conn := dialSending(t, e.addr, "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+openAIKey+
		"\r\nTransfer-Encoding: chunked\r\nTrailer: X-Api-Key\r\n\r\n2\r\n{}\r\n0\r\nX-Api-Key: "+unknownKey+"\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(patience))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Saw-Trailer") != "" {
		t.Errorf("status %d; the upstream saw a trailer: %q", resp.StatusCode, resp.Header.Get("X-Saw-Trailer"))
	}
}
