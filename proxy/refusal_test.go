package proxy

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

const geminiKey = "AIza-sim-proxy-gemini-0123456789abcdef"

// geminiKeys is the config's Gemini key, beside the OpenAI and Anthropic ones.
const geminiKeys = "  - {name: team-gemini, provider: gemini, api_key: " + geminiKey + "}\n"

const geminiPath = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"

// geminiRoutes are a Gemini route and an OpenAI one to upstream.
func geminiRoutes(upstream string) []config.Route {
	return []config.Route{
		{PathPrefix: "/gemini/", Upstream: upstream, Provider: "gemini"},
		{PathPrefix: "/openai/", Upstream: upstream, Provider: "openai"},
	}
}

// geminiRefusal answers the real 429 body, with its length announced or
// in chunks.
func geminiRefusal(t *testing.T, chunked bool) http.HandlerFunc {
	body := testkit.Fixture(t, "gemini-429.json")
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		if !chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(http.StatusTooManyRequests)
		for chunk := range slices.Chunk(body, 300) {
			_, _ = w.Write(chunk)
			if chunked {
				_ = http.NewResponseController(w).Flush()
			}
		}
	}
}

// checkGeminiReading checks the reading of the real 429 body: its windows,
// the wait it asked for and its cause.
func checkGeminiReading(t *testing.T, o Observation, key string) {
	t.Helper()
	var day float64
	var got []ratelimit.Observation
	for _, ob := range o.Observations {
		if ob.Window == "day" && ob.Kind == ratelimit.Reset {
			day, ob.Value = ob.Value, 0
		}
		got = append(got, ob)
	}
	want := []ratelimit.Observation{
		{Kind: ratelimit.Limit, Resource: "input_tokens", Window: "minute", Value: 250000},
		{Kind: ratelimit.Remaining, Resource: "input_tokens", Window: "minute", Value: 0},
		{Kind: ratelimit.Reset, Resource: "input_tokens", Window: "minute", Value: 43},
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "day", Value: 0},
		{Kind: ratelimit.Reset, Resource: "requests", Window: "day", Value: 0},
		{Kind: ratelimit.Limit, Resource: "requests", Window: "minute", Value: 10},
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 0},
		{Kind: ratelimit.Reset, Resource: "requests", Window: "minute", Value: 43},
	}
	if o.Key != key || o.Provider != "gemini" || o.Model != "gemini-2.5-flash" || o.StatusCode != 429 || !slices.Equal(got, want) ||
		o.RetryAfter != 43*time.Second || o.Cause != ratelimit.CauseQuotaExhausted || o.Dropped != 0 {
		t.Errorf("recorded %+v\nwant key %s, model gemini-2.5-flash, 429, %v, retry after 43s, cause quota_exhausted", o, key, want)
	}
	if day <= 0 || day > 24*60*60 {
		t.Errorf("the day window resets in %vs, want within a day", day)
	}
}

// A Gemini 429 reaches the application byte for byte, and the windows its
// body names are recorded under the key, however the key was sent and
// whether the body's length was announced or not.
func TestGeminiRefusalThroughTheProxy(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		for _, how := range []string{"header", "query"} {
			t.Run(fmt.Sprintf("chunked=%v/key in %s", chunked, how), func(t *testing.T) {
				up := newUpstream(t, geminiRefusal(t, chunked))
				e := startProxy(t, setup{unknownKeys: "reject", routes: geminiRoutes(up.URL), keys: geminiKeys})
				const body = `{"contents":[{"role":"user","parts":[{"text":"Hello"}]}],"generationConfig":{"maxOutputTokens":5}}`
				path, header := geminiPath, []string{"X-Goog-Api-Key", geminiKey, "Content-Type", "application/json"}
				if how == "query" {
					path, header = path+"?key="+geminiKey, header[2:]
				}
				direct := do(t, e.client, newRequest(t, http.MethodPost, up.URL+strings.TrimPrefix(path, "/gemini"), body, header...))
				proxied := do(t, e.client, newRequest(t, http.MethodPost, e.url+path, body, header...))
				for _, diff := range differences(direct, proxied) {
					t.Error(diff)
				}
				if string(proxied.body) != string(testkit.Fixture(t, "gemini-429.json")) {
					t.Errorf("the body changed on its way:\n%s", proxied.body)
				}
				if last, got := up.lastRequest(); last.URL.RawQuery != strings.TrimPrefix(path, geminiPath+"?") && how == "query" || string(got) != body {
					t.Errorf("the upstream got %s %s", last.URL, got)
				}
				recorded := e.rec.all()
				if len(recorded) != 1 {
					t.Fatalf("recorded %d times, want once: %+v", len(recorded), recorded)
				}
				checkGeminiReading(t, recorded[0], "team-gemini")
				waitFor(t, "the body budget to be returned", func() bool { return e.proxy.bodies.used.Load() == 0 })
			})
		}
	}
}

// What is kept of a refusal's body is bounded: a body that is too long,
// is cut, or never ends is recorded by its headers alone, once, and the
// application gets every byte the upstream sent.
func TestRefusalBodyBounds(t *testing.T) {
	sample := testkit.Fixture(t, "gemini-429.json")
	padded := append(slices.Clone(sample), []byte(strings.Repeat(" ", maxRefusalBody))...) // valid JSON, too long to keep
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "7")
		switch r.URL.Path {
		case "/v1beta/models/long:generateContent":
			w.WriteHeader(http.StatusTooManyRequests)
			for chunk := range slices.Chunk(padded, 4096) {
				_, _ = w.Write(chunk)
				_ = http.NewResponseController(w).Flush()
			}
		case "/v1beta/models/announced-long:generateContent":
			w.Header().Set("Content-Length", strconv.Itoa(len(padded)))
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write(padded)
		case "/v1beta/models/cut:generateContent":
			w.Header().Set("Content-Length", strconv.Itoa(len(sample)))
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write(sample[:100])
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // the connection is cut
		case "/v1beta/models/endless:generateContent":
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write(sample[:100])
			_ = http.NewResponseController(w).Flush()
			<-release
			_, _ = w.Write(sample[100:])
		}
	})
	t.Cleanup(func() { close(release) }) // before the upstream closes, which waits for its handlers
	e := startConfig(t, parseConfig(t, setup{routes: geminiRoutes(up.URL), keys: geminiKeys}), func(p *Proxy) { p.refusalWait = 50 * time.Millisecond })
	// The headers' reading: a 429 that asked for 7 s, the body unread.
	headersOnly := func(t *testing.T, o Observation) {
		t.Helper()
		if o.StatusCode != 429 || len(o.Observations) != 0 || o.RetryAfter != 7*time.Second || o.Cause != ratelimit.CauseRateLimit {
			t.Errorf("recorded %+v, want the headers' reading", o)
		}
	}
	for _, model := range []string{"long", "announced-long"} {
		before := len(e.rec.all())
		got := do(t, e.client, newRequest(t, http.MethodPost, e.url+"/gemini/v1beta/models/"+model+":generateContent", "{}", "X-Goog-Api-Key", geminiKey))
		if got.status != 429 || string(got.body) != string(padded) {
			t.Errorf("%s: %d, %d bytes of %d", model, got.status, len(got.body), len(padded))
		}
		if all := e.rec.all(); len(all) != before+1 {
			t.Errorf("%s: recorded %d times, want once", model, len(all)-before)
		} else {
			headersOnly(t, all[len(all)-1])
		}
	}

	before := len(e.rec.all())
	resp, err := e.client.Do(newRequest(t, http.MethodPost, e.url+"/gemini/v1beta/models/cut:generateContent", "{}", "X-Goog-Api-Key", geminiKey))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(resp.Body); err == nil || string(got) != string(sample[:100]) {
		t.Errorf("the cut body: %q, %v; want its first 100 bytes and an error", got, err)
	}
	resp.Body.Close()
	waitFor(t, "the cut body's reading", func() bool { return len(e.rec.all()) > before })
	headersOnly(t, e.rec.last(t))

	before = len(e.rec.all())
	resp, err = e.client.Do(newRequest(t, http.MethodPost, e.url+"/gemini/v1beta/models/endless:generateContent", "{}", "X-Goog-Api-Key", geminiKey))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if first, err := io.ReadAll(io.LimitReader(r, 100)); err != nil || string(first) != string(sample[:100]) {
		t.Fatalf("the endless body's start: %q, %v", first, err)
	}
	waitFor(t, "the reading of a body that does not end", func() bool { return len(e.rec.all()) > before })
	headersOnly(t, e.rec.last(t))
	release <- struct{}{}
	if rest, err := io.ReadAll(r); err != nil || string(rest) != string(sample[100:]) {
		t.Errorf("the rest of the body: %q, %v", rest, err)
	}
	if n := len(e.rec.all()) - before; n != 1 {
		t.Errorf("recorded %d times, want once", n)
	}
	waitFor(t, "the body budget to be returned", func() bool { return e.proxy.bodies.used.Load() == 0 })
}

// Other refusals are read too; answers that are not refusals, and
// streams, are passed on untouched, and recorded by their headers as the
// response starts: a Gemini 2xx, whatever its body, as served.
func TestWhichBodiesAreRead(t *testing.T) {
	geminiBody := testkit.Fixture(t, "gemini-429.json")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1beta/models/s"), ":generateContent"))
		w.WriteHeader(status)
		_, _ = w.Write(geminiBody)
	})
	e := startProxy(t, setup{routes: geminiRoutes(up.URL), keys: geminiKeys})
	for _, tc := range []struct {
		status int
		read   bool
		cause  ratelimit.Cause
		served bool // recorded as Served, its body unread
	}{
		{429, true, ratelimit.CauseQuotaExhausted, false},
		{503, true, ratelimit.CauseOverloaded, false},
		{529, true, ratelimit.CauseOverloaded, false},
		{402, true, ratelimit.CauseSpendLimit, false},
		{200, false, "", true},
		{400, false, "", false},
		{500, false, "", false},
	} {
		before := len(e.rec.all())
		do(t, e.client, newRequest(t, http.MethodPost, fmt.Sprintf("%s/gemini/v1beta/models/s%d:generateContent", e.url, tc.status), "{}", "X-Goog-Api-Key", geminiKey))
		all := e.rec.all()[before:]
		switch {
		case tc.read && (len(all) != 1 || len(all[0].Observations) != 8 || all[0].RetryAfter != 43*time.Second || all[0].Cause != tc.cause):
			t.Errorf("%d: recorded %+v, want the body's windows", tc.status, all)
		case tc.served && (len(all) != 1 || !all[0].Served || len(all[0].Observations) != 0):
			t.Errorf("%d: recorded %+v, want a Served reading, its body unread", tc.status, all)
		case !tc.read && !tc.served && len(all) != 0:
			t.Errorf("%d: recorded %+v, want nothing: no header says anything", tc.status, all)
		}
	}
}

// A refusal's copy grows with what arrives, charged to the body budget,
// and is returned when the body ends; a budget that cannot take it, a
// body closed early, or one past the cap leaves the reading to the
// headers; whatever happens, done is called once, and the bytes read are
// the upstream's.
func TestRefusalBody(t *testing.T) {
	const text = `{"error":{"status":"RESOURCE_EXHAUSTED"}}`
	for _, tc := range []struct {
		name       string
		body       string
		announced  int64
		limit      int64
		closeAfter int // reads before the body is closed; 0: read to the end
		coding     contentCoding
		want       string
		maxCharged int64
	}{
		{name: "announced", body: text, announced: int64(len(text)), limit: 1 << 20, want: text, maxCharged: int64(len(text))},
		{name: "unknown length", body: text, announced: -1, limit: 1 << 20, want: text, maxCharged: firstRefusalBuffer},
		{name: "grows by doubling", body: strings.Repeat("x", 9000), announced: -1, limit: 1 << 20, want: strings.Repeat("x", 9000), maxCharged: 4096 + 8192 + 16384},
		{name: "at the cap", body: strings.Repeat("x", maxRefusalBody), announced: -1, limit: 1 << 20, want: strings.Repeat("x", maxRefusalBody), maxCharged: 4096 + 8192 + 16384 + 32768 + 65536},
		{name: "past the cap", body: strings.Repeat("x", maxRefusalBody+1), announced: -1, limit: 1 << 20, maxCharged: 4096 + 8192 + 16384 + 32768 + 65536},
		{name: "announced, at the cap", body: strings.Repeat("x", maxRefusalBody), announced: maxRefusalBody, limit: 1 << 20, want: strings.Repeat("x", maxRefusalBody),
			maxCharged: 4096 + 8192 + 16384 + 32768 + 65536},
		{name: "over budget", body: text, announced: -1, limit: 100},
		{name: "closed early", body: strings.Repeat("x", 9000), announced: -1, limit: 1 << 20, closeAfter: 1, maxCharged: 4096},
		{name: "gzipped", body: gzipText(text), announced: -1, coding: gzipped, limit: 1 << 20, want: text, maxCharged: firstRefusalBuffer + inflaterSize + firstBodyBuffer},
		{name: "gzipped, no room to inflate", body: gzipText(text), announced: -1, coding: gzipped, limit: firstRefusalBuffer + inflaterSize, maxCharged: firstRefusalBuffer + inflaterSize},
		{name: "gzipped, past the cap inflated", body: gzipText(strings.Repeat("x", maxRefusalBody+1)), announced: -1, coding: gzipped, limit: 1 << 20,
			maxCharged: firstRefusalBuffer + inflaterSize + 4096 + 8192 + 16384 + 32768 + 65536},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var budget bodyBudget
			var calls atomic.Int32
			var got []byte
			upstream := io.NopCloser(&oneByteAtATime{strings.NewReader(tc.body)})
			b := newRefusalBody(upstream, tc.announced, tc.coding, &budget, tc.limit, time.Hour, func(body []byte) {
				calls.Add(1)
				got = slices.Clone(body)
				if used := budget.used.Load(); used > tc.maxCharged {
					t.Errorf("%d bytes charged for the copy, want at most %d", used, tc.maxCharged)
				}
				if used := budget.used.Load(); tc.coding == gzipped && body != nil && used < inflaterSize+int64(len(body)) {
					t.Errorf("%d bytes charged for inflating %d, want the inflater and its buffers", used, len(body))
				}
			})
			var passed []byte
			buf := make([]byte, 1000)
			for reads := 1; ; reads++ {
				n, err := b.Read(buf)
				passed = append(passed, buf[:n]...)
				if err != nil || reads == tc.closeAfter {
					break
				}
			}
			b.Close()
			b.Close()
			if tc.closeAfter == 0 && string(passed) != tc.body {
				t.Errorf("passed on %d bytes, not the body's %d", len(passed), len(tc.body))
			}
			if calls.Load() != 1 || string(got) != tc.want || (got == nil) != (tc.want == "") {
				t.Errorf("done called %d times with %d bytes, want once with %d", calls.Load(), len(got), len(tc.want))
			}
			if used := budget.used.Load(); used != 0 {
				t.Errorf("%d bytes still charged", used)
			}
		})
	}
}

// oneByteAtATime reads as a slow upstream sends: a few bytes each time.
type oneByteAtATime struct{ r io.Reader }

func (o *oneByteAtATime) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 700)]) }

// A key in the query, where Gemini reads one, is a key like any other:
// it is matched, and under reject no unknown key rides in the query
// beside a configured one in a header, however the query spells it.
func TestQueryKeys(t *testing.T) {
	sum := sha256.Sum256([]byte(unknownKey))
	fingerprint := fmt.Sprintf("sha256:%x", sum[:6])
	up := newUpstream(t, okHandler)
	routes := geminiRoutes(up.URL)
	reject := startProxy(t, setup{unknownKeys: "reject", routes: routes, keys: geminiKeys})
	fingerprinting := startProxy(t, setup{unknownKeys: "fingerprint", routes: routes, keys: geminiKeys})
	for _, tc := range []struct {
		name, path, query string
		header            []string
		rejected          bool
		recorded          string // under fingerprint; "": nothing
	}{
		{"the key in the query", geminiPath, "key=" + geminiKey, nil, false, "team-gemini"},
		{"beside another parameter", geminiPath, "alt=sse&key=" + geminiKey, nil, false, "team-gemini"},
		{"the same key in header and query", geminiPath, "key=" + geminiKey, []string{"X-Goog-Api-Key", geminiKey}, false, "team-gemini"},
		{"escaped", geminiPath, "k%65y=" + strings.ReplaceAll(geminiKey, "-", "%2D"), nil, false, "team-gemini"},
		{"an unknown key", geminiPath, "key=" + unknownKey, nil, true, fingerprint},
		{"an unknown key beside a known one", geminiPath, "key=" + unknownKey, []string{"X-Goog-Api-Key", geminiKey}, true, ""},
		{"the key twice", geminiPath, "key=" + geminiKey + "&key=" + geminiKey, nil, false, "team-gemini"},
		{"a second key parameter", geminiPath, "key=" + geminiKey + "&key=" + unknownKey, nil, true, ""},
		{"escaped in the name", geminiPath, "%6Bey=" + unknownKey, []string{"X-Goog-Api-Key", geminiKey}, true, ""},
		{"named in capitals", geminiPath, "KEY=" + unknownKey, []string{"X-Goog-Api-Key", geminiKey}, true, ""},
		{"after a semicolon", geminiPath, "alt=sse;key=" + unknownKey, []string{"X-Goog-Api-Key", geminiKey}, true, ""},
		{"a name that does not unescape", geminiPath, "k%zzey=" + unknownKey, []string{"X-Goog-Api-Key", geminiKey}, true, ""},
		{"a value that does not unescape", geminiPath, "key=" + geminiKey + "%zz", []string{"X-Goog-Api-Key", geminiKey}, true, ""},
		{"on another provider's route", "/openai/v1/chat/completions", "key=" + unknownKey, []string{"Authorization", "Bearer " + openAIKey}, true, ""},
		{"a parameter that is not key", geminiPath, "keys=" + unknownKey + "&monkey=1", []string{"X-Goog-Api-Key", geminiKey}, false, "team-gemini"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range []*env{reject, fingerprinting} {
				before := len(e.rec.all())
				got := do(t, e.client, newRequest(t, http.MethodPost, e.url+tc.path+"?"+tc.query, `{}`, tc.header...))
				all := e.rec.all()[before:]
				if e == reject {
					if tc.rejected {
						proxyError(t, got, 403, "unknown_key")
					} else if got.status != 200 || len(all) != 1 || all[0].Key != tc.recorded {
						t.Errorf("under reject: %d, recorded %+v; want 200 under %s", got.status, all, tc.recorded)
					}
					continue
				}
				switch {
				case got.status != 200:
					t.Errorf("under fingerprint: %d", got.status)
				case tc.recorded == "" && len(all) != 0:
					t.Errorf("under fingerprint: recorded %+v, want nothing", all)
				case tc.recorded != "" && (len(all) != 1 || all[0].Key != tc.recorded):
					t.Errorf("under fingerprint: recorded %+v, want %s", all, tc.recorded)
				}
			}
		})
	}
}

// A Gemini request names its model in its path; a name that could not be
// a label value is left out, as a body's would be; a path that names no
// model leaves it to the body.
func TestGeminiModelFromPath(t *testing.T) {
	up := newUpstream(t, okHandler)
	e := startProxy(t, setup{routes: geminiRoutes(up.URL), keys: geminiKeys})
	for path, want := range map[string]string{
		"/gemini/v1beta/models/gemini-2.5-flash:generateContent":                 "gemini-2.5-flash",
		"/gemini/v1/models/gemini-2.5-pro:streamGenerateContent":                 "gemini-2.5-pro",
		"/gemini/v1beta/models/gemini%E2%80%8B:generateContent":                  "",
		"/gemini/v1beta/models/" + strings.Repeat("m", 257) + ":generateContent": "",
		"/gemini/v1beta/models/evil%2Fgemini-2.5-flash:generateContent":          "",         // Gemini serves the path's, or none: not the body's
		"/gemini/v1beta/models/gemini-2.5-flash:countTokens":                     "not-read", // no model in the path: the body's
	} {
		do(t, e.client, newRequest(t, http.MethodPost, e.url+path, `{"model":"not-read"}`, "X-Goog-Api-Key", geminiKey))
		if o := e.rec.last(t); o.Model != want {
			t.Errorf("%s: model %q, want %q", path, o.Model, want)
		}
	}
}

// Gemini sends no rate-limit values but in a refusal's body: a 2xx it
// answers for a model says that none of the model's windows is empty,
// and is recorded as Served, so that a window a 429 emptied does not
// stay empty until the next probe, an hour later. A 2xx that names no
// model, or from any other provider, says nothing.
func TestGeminiServedThroughTheProxy(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/s500:generateContent"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasSuffix(r.URL.Path, ":streamGenerateContent"):
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"candidates\":[]}\n\n")
		default:
			_, _ = io.WriteString(w, `{"candidates":[],"usageMetadata":{"totalTokenCount":3}}`)
		}
	})
	const deepseekKey = "sk-sim-proxy-deepseek-0123456789abcdef"
	routes := append(geminiRoutes(up.URL), config.Route{PathPrefix: "/deepseek/", Upstream: up.URL, Provider: "deepseek"})
	e := startProxy(t, setup{routes: routes, keys: geminiKeys + "  - {name: team-deepseek, provider: deepseek, api_key: " + deepseekKey + "}\n"})
	for _, tc := range []struct {
		method, path, body string
		header             []string
		served             string // the model recorded as Served; "": nothing recorded
	}{
		{"POST", geminiPath, `{}`, []string{"X-Goog-Api-Key", geminiKey}, "gemini-2.5-flash"},
		{"POST", "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", `{}`, []string{"X-Goog-Api-Key", geminiKey}, "gemini-2.5-pro"},
		{"POST", "/gemini/v1beta/models/s500:generateContent", `{}`, []string{"X-Goog-Api-Key", geminiKey}, ""},
		{"GET", "/gemini/v1beta/models", "", []string{"X-Goog-Api-Key", geminiKey}, ""},
		{"POST", "/openai/v1/chat/completions", `{"model":"gpt-4o-mini"}`, []string{"Authorization", "Bearer " + openAIKey}, ""},
		// DeepSeek has no windows a 2xx could show not empty: its limit is
		// its balance, which its probe reads for free.
		{"POST", "/deepseek/chat/completions", `{"model":"deepseek-chat"}`, []string{"Authorization", "Bearer " + deepseekKey}, ""},
	} {
		before := len(e.rec.all())
		do(t, e.client, newRequest(t, tc.method, e.url+tc.path, tc.body, tc.header...))
		all := e.rec.all()[before:]
		switch {
		case tc.served == "" && len(all) != 0:
			t.Errorf("%s %s: recorded %+v, want nothing", tc.method, tc.path, all)
		case tc.served != "" && (len(all) != 1 || !all[0].Served || all[0].Model != tc.served || len(all[0].Observations) != 0 || all[0].Key != "team-gemini"):
			t.Errorf("%s %s: recorded %+v, want one Served reading of %s", tc.method, tc.path, all, tc.served)
		}
	}
}
