package prober

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

const canary = "sk-test-canary-prober-7f3a"

func target(url, key string) config.Target {
	return config.Target{Key: &config.Key{Name: "k", Provider: "cerebras", APIKey: config.Secret(key), BaseURL: url + "/v1"}, Model: "llama3.1-8b"}
}

func newSimulator(t *testing.T) (*simulator.Simulator, string) {
	t.Helper()
	sim := simulator.New("llama3.1-8b")
	sim.AddKey(canary, simulator.FreeTrial())
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// Each provider's probe is the request its API documents: method, path,
// where the key goes, and a body that caps the answer at one token.
func TestRequestShape(t *testing.T) {
	chat := func(capField string) string {
		return `{"` + capField + `":1,"messages":[{"role":"user","content":"Hi"}],"model":"m"}`
	}
	for _, tc := range []struct {
		provider     string
		method, path string
		headers      map[string]string
		body         string
	}{
		{"cerebras", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + canary, "Content-Type": "application/json"}, chat("max_completion_tokens")},
		{"openai", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + canary}, chat("max_completion_tokens")},
		{"groq", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + canary}, chat("max_tokens")},
		{"mistral", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + canary}, chat("max_tokens")},
		{"together", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + canary}, chat("max_tokens")},
		{"fireworks", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + canary}, chat("max_tokens")},
		{"sambanova", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + canary}, chat("max_tokens")},
		{"openai_compatible", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + canary}, chat("max_tokens")},
		{"anthropic", "POST", "/v1/v1/messages", map[string]string{"X-Api-Key": canary, "Anthropic-Version": "2023-06-01", "Authorization": "", "Content-Type": "application/json"},
			`{"max_tokens":1,"messages":[{"role":"user","content":"Hi"}],"model":"m"}`},
		{"openrouter", "GET", "/v1/key", map[string]string{"Authorization": "Bearer " + canary, "Content-Type": ""}, ""},
		{"gemini", "POST", "/v1/models/m:generateContent", map[string]string{"X-Goog-Api-Key": canary, "Authorization": "", "Content-Type": "application/json"},
			`{"contents":[{"parts":[{"text":"Hi"}],"role":"user"}],"generationConfig":{"maxOutputTokens":1}}`},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			var got *http.Request
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r
				body, _ = io.ReadAll(r.Body)
				w.Header().Set("x-ratelimit-limit-requests-day", "10")
			}))
			defer srv.Close()
			tgt := target(srv.URL, canary)
			tgt.Key.Provider, tgt.Model = tc.provider, "m"
			r := New("ratelimit_exporter/1.2.3").Probe(context.Background(), tgt)
			if r.Outcome != Success {
				t.Fatalf("outcome %s: %v", r.Outcome, r.Err)
			}
			tc.headers["User-Agent"] = "ratelimit_exporter/1.2.3"
			for header, want := range tc.headers {
				if v := got.Header.Get(header); v != want {
					t.Errorf("%s = %q, want %q", header, v, want)
				}
			}
			if got.Method != tc.method || got.URL.Path != tc.path {
				t.Errorf("request %s %s, want %s %s", got.Method, got.URL.Path, tc.method, tc.path)
			}
			if string(body) != tc.body {
				t.Errorf("body %s\nwant %s", body, tc.body)
			}
			if r.Free != (tc.provider == "openrouter") {
				t.Errorf("Free = %v: only OpenRouter's probe is free", r.Free)
			}
		})
	}
}

// Two keys of two providers at one base_url, with one model: each is
// probed with its own provider's request.
func TestRequestsArePerProvider(t *testing.T) {
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("x-ratelimit-limit-requests-day", "10")
	}))
	defer srv.Close()
	p := New("test")
	a, b := *target(srv.URL, canary).Key, *target(srv.URL, canary).Key
	a.Name, a.Provider, a.Models = "a", "cerebras", []string{"m"}
	b.Name, b.Provider, b.Models = "b", "groq", []string{"m"}
	cfg := &config.Config{Keys: []config.Key{a, b}}
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	for i, capField := range []string{"max_completion_tokens", "max_tokens"} {
		p.Probe(context.Background(), cfg.Targets()[i])
		if !strings.Contains(string(body), `"`+capField+`":1`) {
			t.Errorf("%s: body %s, want %s", cfg.Keys[i].Provider, body, capField)
		}
	}
}

func TestOutcomes(t *testing.T) {
	sim, url := newSimulator(t)
	p := New("test")
	probe := func(key string) Result {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return p.Probe(ctx, target(url, key))
	}

	r := probe(canary)
	if r.Outcome != Success || r.StatusCode != 200 || len(r.Observations) != 18 || r.Tokens != 10 || r.Err != nil {
		t.Errorf("success: %+v", r)
	}
	var remaining float64 = -1
	for _, o := range r.Observations {
		if o.Kind == ratelimit.Remaining && o.Resource == "requests" && o.Window == "minute" {
			remaining = o.Value
		}
	}
	if remaining != 4 {
		t.Errorf("requests-minute remaining after one probe = %v, want 4 of 5", remaining)
	}

	sim.Exhaust(canary, "llama3.1-8b")
	r = probe(canary)
	if r.Outcome != RateLimited || r.StatusCode != 429 || !r.Success() || r.ErrorCode != "request_quota_exceeded" || r.Tokens != 0 {
		t.Errorf("429 with headers: %+v", r)
	}
	sim.SetFault(canary, simulator.No429Headers)
	if r = probe(canary); r.Outcome != RateLimited || r.Success() {
		t.Errorf("429 without headers: %+v", r)
	}

	for _, tc := range []struct {
		fault   simulator.Fault
		outcome Outcome
		status  int
		errText string
	}{
		{simulator.ServerError, HTTPError, 503, "HTTP 503 (service_unavailable)"},
		{simulator.NoHeaders, NoHeaders, 200, "HTTP 200 without valid rate-limit headers"},
		{simulator.QueueExceeded, RateLimited, 429, "HTTP 429 (queue_exceeded)"},
	} {
		sim.AddKey(canary, simulator.FreeTrial())
		sim.SetFault(canary, tc.fault)
		r = probe(canary)
		if r.Outcome != tc.outcome || r.StatusCode != tc.status || r.Err == nil || r.Err.Error() != tc.errText {
			t.Errorf("fault %d: outcome %s status %d err %v; want %s %d %q", tc.fault, r.Outcome, r.StatusCode, r.Err, tc.outcome, tc.status, tc.errText)
		}
	}

	sim.SetFault(canary, simulator.BadHeaders)
	if r = probe(canary); r.Outcome != NoHeaders || r.Dropped != 6 {
		t.Errorf("bad headers: %+v", r)
	}

	sim.SetFault(canary, simulator.CloseConn)
	if r = probe(canary); r.Outcome != NetworkError || r.StatusCode != 0 {
		t.Errorf("closed connection: %+v", r)
	}

	if r = probe("sk-test-unknown"); r.Outcome != Unauthorized || r.StatusCode != 401 || r.Err.Error() != "HTTP 401 (wrong_api_key)" {
		t.Errorf("unknown key: %+v", r)
	}
}

func TestTimeout(t *testing.T) {
	sim, url := newSimulator(t)
	sim.SetLatency(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := New("test").Probe(ctx, target(url, canary))
	if r.Outcome != Timeout || r.StatusCode != 0 {
		t.Errorf("outcome %s status %d, want timeout 0", r.Outcome, r.StatusCode)
	}
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("probe took %s after a 50ms deadline", elapsed)
	}
}

func TestNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	r := New("test").Probe(context.Background(), target(url, canary))
	if r.Outcome != NetworkError || r.StatusCode != 0 || r.Err == nil {
		t.Errorf("%+v", r)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var leaked bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = r.Header.Get("Authorization") != ""
		mu.Unlock()
	}))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL+"/v1/chat/completions", http.StatusTemporaryRedirect))
	defer srv.Close()
	r := New("test").Probe(context.Background(), target(srv.URL, canary))
	mu.Lock()
	defer mu.Unlock()
	if r.Outcome != HTTPError || r.StatusCode != 307 || leaked {
		t.Errorf("outcome %s status %d, key sent to the redirect target: %v", r.Outcome, r.StatusCode, leaked)
	}
}

func TestBodyIsBoundedAndNeverKept(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ratelimit-limit-requests-day", "10")
		// The usage lies beyond the first MiB, so it must not be read.
		_, _ = io.WriteString(w, `{"pad":"`+strings.Repeat("x", MaxBodyBytes)+`","usage":{"total_tokens":5}}`)
	}))
	defer srv.Close()
	r := New("test").Probe(context.Background(), target(srv.URL, canary))
	if r.Outcome != Success || r.Tokens != 0 {
		t.Errorf("outcome %s tokens %v; want success and 0 tokens from a body over the cap", r.Outcome, r.Tokens)
	}
}

// The key never reaches a result's error, whatever the failure.
func TestErrorsNeverHoldTheKey(t *testing.T) {
	sim, url := newSimulator(t)
	p := New("test")
	var results []Result
	for _, f := range []simulator.Fault{simulator.NoFault, simulator.ServerError, simulator.NoHeaders, simulator.CloseConn} {
		sim.SetFault(canary, f)
		results = append(results, p.Probe(context.Background(), target(url, canary)))
	}
	sim.Exhaust(canary, "llama3.1-8b")
	sim.SetFault(canary, simulator.NoFault)
	results = append(results, p.Probe(context.Background(), target(url, canary)))
	sim.RevokeKey(canary) // the simulator echoes a refused key in its 401 body
	results = append(results, p.Probe(context.Background(), target(url, canary)))
	results = append(results, p.Probe(context.Background(), target("http://127.0.0.1:1", canary)))
	for _, r := range results {
		out, _ := json.Marshal(struct {
			R   Result
			Err string
		}{r, errString(r.Err)})
		if strings.Contains(string(out), canary) {
			t.Errorf("result holds the key: %s", out)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestRetryAfterIsRead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	r := New("test").Probe(context.Background(), target(srv.URL, canary))
	if r.Outcome != RateLimited || r.RetryAfter != 30*time.Second {
		t.Errorf("outcome %s retry after %s, want rate_limited 30s", r.Outcome, r.RetryAfter)
	}
}

// Gemini says nothing in its headers: a served answer is a success that
// names no window; a 429's body gives the windows that ran out, the wait
// it asks for and the cause.
func TestGeminiBodiesAreRead(t *testing.T) {
	status, body := 200, `{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":1,"totalTokenCount":3}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	tgt := target(srv.URL, canary)
	tgt.Key.Provider = "gemini"
	p := New("test")
	r := p.Probe(context.Background(), tgt)
	if r.Outcome != Success || !r.Served || !r.Success() || len(r.Observations) != 0 || r.Tokens != 3 || r.Err != nil || r.Cause != "" {
		t.Errorf("served: %+v", r)
	}

	status, body = 429, string(testkit.Fixture(t, "gemini-429.json"))
	pacific, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	r = p.Probe(context.Background(), tgt)
	if r.Outcome != RateLimited || r.Served || r.RetryAfter != 43*time.Second || r.Cause != ratelimit.CauseQuotaExhausted ||
		r.ErrorCode != "resource_exhausted" || r.Err == nil || r.Err.Error() != "HTTP 429 (resource_exhausted)" || r.Dropped != 0 {
		t.Errorf("429: %+v", r)
	}
	var got []string
	for _, o := range r.Observations {
		if o.Kind == ratelimit.Reset && o.Window == "day" {
			at := before.Add(time.Duration(o.Value * float64(time.Second))).Round(time.Minute).In(pacific)
			if at.Hour() != 0 || at.Minute() != 0 || at.Sub(before) > 25*time.Hour || at.Before(before) {
				t.Errorf("requests/day resets at %s, not at the next midnight Pacific", at)
			}
			o.Value = -1
		}
		got = append(got, fmt.Sprintf("%s/%s %s %v", o.Resource, o.Window, o.Kind, o.Value))
	}
	want := "[input_tokens/minute limit 250000 input_tokens/minute remaining 0 input_tokens/minute reset 43 " +
		"requests/day remaining 0 requests/day reset -1 requests/minute limit 10 requests/minute remaining 0 requests/minute reset 43]"
	if fmt.Sprint(got) != want {
		t.Errorf("observations\n got %v\nwant %s", got, want)
	}

	// A served answer that is not what Gemini sends says nothing.
	status, body = 200, `{}`
	if r = p.Probe(context.Background(), tgt); r.Outcome != NoHeaders || r.Served {
		t.Errorf("an empty answer: %+v", r)
	}
}

// Keys with the same http_client settings share one connection pool: 50
// keys probed one after another open one connection, not 50.
func TestKeysShareOneConnectionPool(t *testing.T) {
	sim := simulator.New("llama3.1-8b")
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	cfg := &config.Config{}
	for i := range 50 {
		apiKey := fmt.Sprintf("sk-test-pool-%02d", i)
		sim.AddKey(apiKey, simulator.FreeTrial())
		cfg.Keys = append(cfg.Keys, config.Key{Name: fmt.Sprintf("k%02d", i), Provider: "cerebras", APIKey: config.Secret(apiKey),
			BaseURL: srv.URL + "/v1", Models: []string{"llama3.1-8b"}})
	}
	cfg.Keys[49].HTTPClient.EnableHTTP2 = true // other settings: a client of its own
	p := New("test")
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if got := p.clientCount(); got != 2 {
		t.Errorf("%d clients for two distinct http_client settings, want 2", got)
	}
	for _, tg := range cfg.Targets() {
		if r := p.Probe(context.Background(), tg); r.Outcome != Success {
			t.Fatalf("%s: %s %v", tg.Key.Name, r.Outcome, r.Err)
		}
	}
	if got := opened.Load(); got != 2 {
		t.Errorf("50 keys opened %d connections, want 2 (one per client)", got)
	}
}

// A key of plain letters and digits, echoed as an error code, is no reason.
func TestKeyEchoedAsErrorCode(t *testing.T) {
	const plainKey = "abcsecretvalue123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(w, `{"error":{"code":%q}}`, plainKey)
	}))
	defer srv.Close()
	tgt := target(srv.URL, plainKey)
	tgt.Key.Provider = "openai_compatible"
	r := New("test").Probe(context.Background(), tgt)
	if r.Outcome != RateLimited || r.ErrorCode != "" || strings.Contains(r.Err.Error(), plainKey) {
		t.Errorf("outcome %s, code %q, err %v: the key must not be a code", r.Outcome, r.ErrorCode, r.Err)
	}
}

// A usage no one-token probe can cost is not believed.
func TestImpossibleUsage(t *testing.T) {
	for body, want := range map[string]float64{
		`{"usage":{"input_tokens":8,"output_tokens":1}}`:         9,
		`{"usage":{"input_tokens":1e308,"output_tokens":1e308}}`: 0,
		`{"usage":{"input_tokens":1e15,"output_tokens":1}}`:      0,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("anthropic-ratelimit-requests-limit", "50")
			fmt.Fprint(w, body)
		}))
		tgt := target(srv.URL, canary)
		tgt.Key.Provider = "anthropic"
		if r := New("test").Probe(context.Background(), tgt); r.Tokens != want {
			t.Errorf("%s: %v tokens, want %v", body, r.Tokens, want)
		}
		srv.Close()
	}
}
