package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Simulator keys of the Gemini tests.
const (
	geminiKey      = "AIza-test-canary-gemini-6d1f"
	geminiOtherKey = "AIza-test-canary-gemini-other-0a7c"
	geminiModel    = "gemini-3.5-flash-lite"
)

// geminiLimits are a free-tier key's, as Gemini documents them: requests
// per minute and per day, input tokens per minute.
var geminiLimits = simulator.Limits{"requests": {"minute": 10, "day": 250}, "input_tokens": {"minute": 250000}}

// geminiRefusal is what a Gemini 429 body says: its violations' limits by
// resource/window ("" for a violation without quotaValue) and its
// retryDelay in seconds.
type geminiRefusal struct {
	limits     map[string]string
	retryDelay float64
}

func readGeminiRefusal(t *testing.T, body []byte) geminiRefusal {
	t.Helper()
	var b struct {
		Error struct {
			Details []struct {
				RetryDelay string `json:"retryDelay"`
				Violations []struct {
					QuotaID    string `json:"quotaId"`
					QuotaValue string `json:"quotaValue"`
				} `json:"violations"`
			} `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("a 429 body that is not JSON: %s", body)
	}
	r := geminiRefusal{limits: map[string]string{}}
	for _, d := range b.Error.Details {
		if d.RetryDelay != "" {
			v, err := strconv.ParseFloat(strings.TrimSuffix(d.RetryDelay, "s"), 64)
			if err != nil {
				t.Fatalf("retryDelay %q", d.RetryDelay)
			}
			r.retryDelay = v
		}
		for _, v := range d.Violations {
			window := map[bool]string{true: "minute", false: "day"}[strings.Contains(v.QuotaID, "PerMinute")]
			resource := map[bool]string{true: "requests", false: "input_tokens"}[strings.HasPrefix(v.QuotaID, "GenerateRequests")]
			r.limits[resource+"/"+window] = v.QuotaValue
		}
	}
	if len(r.limits) == 0 || r.retryDelay <= 0 {
		t.Fatalf("a 429 body without violations or retryDelay: %s", body)
	}
	return r
}

// checkGeminiWindows checks that /metrics shows exactly the windows of a
// 429 body under id: each limit the body gives, no other, remaining 0,
// the minute windows' resets at retryDelay, the day's at midnight Pacific
// time, and the wait asked for.
func checkGeminiWindows(t *testing.T, got map[string]float64, id []string, refusal geminiRefusal, asked time.Time) {
	t.Helper()
	check := func(name string, want float64, labels ...string) {
		t.Helper()
		s := series(name, append(append([]string{}, id...), labels...)...)
		if v, ok := got[s]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", s, v, ok, want)
		}
	}
	limits, remainings := 0, 0
	for s := range got {
		if strings.HasPrefix(s, "ratelimit_limit{") {
			limits++
		}
		if strings.HasPrefix(s, "ratelimit_remaining{") {
			remainings++
		}
	}
	wantLimits := 0
	for rw, value := range refusal.limits {
		resource, window, _ := strings.Cut(rw, "/")
		at := []string{"resource", resource, "window", window}
		check("ratelimit_remaining", 0, at...)
		if value != "" {
			wantLimits++
			limit, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatal(err)
			}
			check("ratelimit_limit", limit, at...)
		}
		if window == "minute" {
			check("ratelimit_reset_seconds", refusal.retryDelay, at...)
			continue
		}
		reset := got[series("ratelimit_reset_timestamp_seconds", append(append([]string{}, id...), at...)...)]
		pacific, err := time.LoadLocation("America/Los_Angeles")
		if err != nil {
			t.Fatal(err)
		}
		midnight := time.Unix(int64(math.Round(reset)), 0).In(pacific)
		if midnight.Hour() != 0 || midnight.Minute() != 0 || midnight.Before(asked) || midnight.Sub(asked) > 25*time.Hour {
			t.Errorf("%s/%s resets at %s, want the next midnight Pacific time", resource, window, midnight)
		}
	}
	if limits != wantLimits || remainings != len(refusal.limits) {
		t.Errorf("%d ratelimit_limit and %d ratelimit_remaining series, want %d and %d: the body's", limits, remainings, wantLimits, len(refusal.limits))
	}
	check("ratelimit_retry_after_seconds", refusal.retryDelay)
}

// The built exporter probes Gemini as its API documents: a 200 is a
// success that shows no window; once the key's quota runs out, the 429's
// body gives the windows, the wait and the cause. A key that sets no
// probe_interval is probed hourly.
func TestGeminiThroughTheBinary(t *testing.T) {
	sim := simulator.NewDialect(simulator.Gemini)
	sim.AddKey(geminiKey, geminiLimits)
	sim.AddKey(geminiOtherKey, geminiLimits)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe:
  mode: scrape
  min_interval: 0s
  max_quota_share: 1
keys:
  - {name: g, provider: gemini, api_key: %s, base_url: %s/v1beta, probe_interval: 0s}
  - {name: hourly, provider: gemini, api_key: %s, base_url: %s/v1beta}
`, geminiKey, srv.URL, geminiOtherKey, srv.URL))
	e := start(t, nil, "--config.file="+cfg)

	_, text := e.get(t, "/metrics")
	ex, ok := sim.LastExchange(geminiKey)
	if !ok || ex.Status != 200 {
		t.Fatalf("the probe: %+v\n%s", ex, text)
	}
	if want := "/v1beta/models/" + geminiModel + ":generateContent"; ex.Method != http.MethodPost || ex.Path != want {
		t.Errorf("probe sent to %s %s, want POST %s", ex.Method, ex.Path, want)
	}
	var body struct {
		Contents []struct {
			Role  string
			Parts []struct{ Text string }
		}
		GenerationConfig map[string]any
	}
	if err := json.Unmarshal(ex.Body, &body); err != nil || len(body.Contents) != 1 || body.Contents[0].Role != "user" ||
		body.GenerationConfig["maxOutputTokens"] != 1.0 || len(body.GenerationConfig) != 1 {
		t.Errorf("probe body %s: want one user content and maxOutputTokens 1", ex.Body)
	}
	got := metricsOf(t, text)
	id := []string{"key", "g", "model", geminiModel, "provider", "gemini"}
	check := func(name string, want float64, labels ...string) {
		t.Helper()
		s := series(name, append(append([]string{}, id...), labels...)...)
		if v, ok := got[s]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", s, v, ok, want)
		}
	}
	var usage struct {
		UsageMetadata struct{ TotalTokenCount float64 }
	}
	if err := json.Unmarshal(ex.ResponseBody, &usage); err != nil || usage.UsageMetadata.TotalTokenCount <= 0 {
		t.Fatalf("no usageMetadata in %s", ex.ResponseBody)
	}
	check("ratelimit_probe_success", 1)
	check("ratelimit_probe_status_code", 200)
	check("ratelimit_probe_tokens_total", usage.UsageMetadata.TotalTokenCount)
	for s := range got {
		if strings.HasPrefix(s, "ratelimit_limit{") || strings.HasPrefix(s, "ratelimit_remaining{") || strings.HasPrefix(s, "ratelimit_reset_seconds{") {
			t.Errorf("a served answer shows a window: %s", s)
		}
	}
	if v := got[series("ratelimit_probe_interval_seconds", "key", "hourly", "model", geminiModel, "provider", "gemini")]; v != 3600 {
		t.Errorf("a Gemini key without probe_interval is probed every %vs, want 3600", v)
	}

	sim.Exhaust(geminiKey, geminiModel)
	before := time.Now()
	_, text = e.get(t, "/metrics")
	ex, _ = sim.LastExchange(geminiKey)
	if ex.Status != 429 || len(ex.ResponseHeader) != 1 {
		t.Fatalf("the exhausted key's probe: %d, headers %v", ex.Status, ex.ResponseHeader)
	}
	got = metricsOf(t, text)
	checkGeminiWindows(t, got, id, readGeminiRefusal(t, ex.ResponseBody), before)
	check("ratelimit_probe_status_code", 429)
	check("ratelimit_probes_total", 1, "result", "rate_limited", "reason", "resource_exhausted", "cause", "quota_exhausted")
	if n := sim.Requests(); n != 3 {
		t.Errorf("%d probes, want 3: the hourly key's first, and two of g's", n)
	}
}

// gzipped compresses every answer of h for a client that asks for gzip,
// as Google's servers do; Go's clients ask unless told not to.
func gzipped(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var body bytes.Buffer
		zw := gzip.NewWriter(&body)
		_, _ = zw.Write(rec.Body.Bytes())
		_ = zw.Close()
		maps.Copy(w.Header(), rec.Header())
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body.Bytes())
	})
}

// A Gemini request as the REST API takes it goes through the built
// exporter's proxy byte for byte, the key in x-goog-api-key or in ?key=;
// a 429's body, gzipped as Google's servers send it to a Go client,
// reaches the application unchanged while its windows land on /metrics,
// at no probe's cost; an answer served once the quota is back says no
// window is empty, as a probe's would.
func TestGeminiThroughTheProxy(t *testing.T) {
	sim := simulator.NewDialect(simulator.Gemini)
	sim.AddKey(geminiKey, geminiLimits)
	mux := http.NewServeMux()
	mux.Handle("/google/", gzipped(sim))
	upstream := httptest.NewServer(mux)
	t.Cleanup(upstream.Close)
	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`keys:
  - {name: g, provider: gemini, api_key: %s, base_url: %s/google/v1beta}
proxy:
  listen_address: %s
  unknown_keys: reject
  routes:
    - {path_prefix: /gemini/, upstream: %s/google, provider: gemini}
`, geminiKey, upstream.URL, proxyAddr, upstream.URL))
	e := start(t, nil, "--config.file="+cfg, "--log.level=debug")
	e.waitFor(t, `ratelimit_probe_success{key="g",model="`+geminiModel+`",provider="gemini"} 1`)
	probes := sim.Requests()

	// Exactly the JSON the Gemini REST API takes.
	const request = `{"contents":[{"role":"user","parts":[{"text":"Write one word."}]}],"generationConfig":{"maxOutputTokens":4,"temperature":0}}`
	// send sends the request and checks, when it was forwarded, that the
	// simulator got it and the application what the simulator sent.
	send := func(t *testing.T, forwarded bool, query string, header ...string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+proxyAddr+"/gemini/v1beta/models/"+geminiModel+":generateContent"+query, strings.NewReader(request))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !forwarded {
			return resp.StatusCode, resp.Header, body
		}
		if !resp.Uncompressed {
			t.Errorf("the answer was not gzipped: %q", resp.Header)
		}
		ex, _ := sim.LastExchange(geminiKey)
		if ex.Path != "/google/v1beta/models/"+geminiModel+":generateContent" || string(ex.Body) != request {
			t.Errorf("the simulator got %s %s", ex.Path, ex.Body)
		}
		if ex.Status != resp.StatusCode || !bytes.Equal(body, ex.ResponseBody) || resp.Header.Get("Content-Type") != ex.ResponseHeader.Get("Content-Type") {
			t.Errorf("the application got %d %q %s\nthe simulator sent %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body,
				ex.Status, ex.ResponseHeader.Get("Content-Type"), ex.ResponseBody)
		}
		return resp.StatusCode, resp.Header, body
	}
	if status, _, body := send(t, true, "?key="+geminiKey); status != 200 || !strings.Contains(string(body), `"usageMetadata"`) {
		t.Fatalf("the key in the query: %d %s", status, body)
	}
	if status, _, _ := send(t, true, "", "X-Goog-Api-Key", geminiKey); status != 200 {
		t.Fatalf("the key in x-goog-api-key: %d", status)
	}
	if status, _, _ := send(t, false, "?key=AIza-test-canary-gemini-stranger"); status != 403 {
		t.Errorf("an unknown key in the query under reject: %d, want 403", status)
	}

	sim.Exhaust(geminiKey, geminiModel)
	before := time.Now()
	status, header, body := send(t, true, "", "X-Goog-Api-Key", geminiKey)
	if status != 429 || header.Get("Retry-After") != "" {
		t.Fatalf("the exhausted key: %d, Retry-After %q", status, header.Get("Retry-After"))
	}
	id := []string{"key", "g", "model", geminiModel, "provider", "gemini"}
	text := e.waitFor(t, `ratelimit_proxy_rate_limited_total{cause="quota_exhausted",key="g",model="`+geminiModel+`",provider="gemini"} 1`)
	got := metricsOf(t, text)
	checkGeminiWindows(t, got, id, readGeminiRefusal(t, body), before)
	if v := got[series("ratelimit_observations_total", append(id, "source", "proxy")...)]; v != 3 {
		t.Errorf("%v readings from the proxy, want 3: two 200s, served, and the 429", v)
	}

	// A day later the quota is back: the next answer served through the
	// proxy shows that no window is empty any more, and keeps the limits.
	tomorrow := time.Now().Add(24 * time.Hour)
	sim.SetClock(func() time.Time { return tomorrow })
	if status, _, _ := send(t, true, "", "X-Goog-Api-Key", geminiKey); status != 200 {
		t.Fatalf("after the quota's reset: %d", status)
	}
	text = e.waitFor(t, `ratelimit_observations_total{key="g",model="`+geminiModel+`",provider="gemini",source="proxy"} 4`)
	if strings.Contains(text, `ratelimit_remaining{key="g"`) || !strings.Contains(text, `ratelimit_limit{key="g"`) {
		t.Errorf("after an answer served through the proxy, the remaining windows stay, or the limits went:\n%s", text)
	}
	if n := sim.Requests() - probes; n != 4 {
		t.Errorf("%d requests reached the simulator since the probe, want the application's 4 and no probe", n)
	}

	got = metricsOf(t, text)
	if v, ok := got[series("ratelimit_limit", append(id, "resource", "requests", "window", "minute")...)]; !ok || v != geminiLimits["requests"]["minute"] {
		t.Errorf("the requests per minute limit is %v (present %v) after a served answer, want %v", v, ok, geminiLimits["requests"]["minute"])
	}
}
