package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/history"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

var testKeys = []config.Key{
	{Name: "prod", Provider: "cerebras", Models: []string{"llama3.1-8b", "qwen-3-32b"}, Labels: map[string]string{"team": "search"}},
	{Name: "router", Provider: "openrouter", Models: []string{""}},
}

func testTargets() []config.Target {
	return (&config.Config{Keys: testKeys}).Targets()
}

func TestProbeTarget(t *testing.T) {
	solo := config.Key{Name: "solo", Provider: "cerebras", Models: []string{"llama3.1-8b"}}
	targets := append(testTargets(), config.Target{Key: &solo, Model: "llama3.1-8b"})
	for _, tc := range []struct {
		query   string
		want    config.TargetID
		wantErr string
	}{
		{query: "key=prod&model=qwen-3-32b", want: config.TargetID{Key: "prod", Model: "qwen-3-32b"}},
		{query: "key=router", want: config.TargetID{Key: "router"}},
		{query: "key=router&model=", want: config.TargetID{Key: "router"}},
		// A key with one model may leave it out.
		{query: "key=solo", want: config.TargetID{Key: "solo", Model: "llama3.1-8b"}},
		{query: "key=solo&model=", want: config.TargetID{Key: "solo", Model: "llama3.1-8b"}},
		{query: "key=solo&model=llama3.1-8b", want: config.TargetID{Key: "solo", Model: "llama3.1-8b"}},
		{query: "key=solo&model=qwen-3-32b", wantErr: `parameter model: key "solo" has no model of this name; its models are "llama3.1-8b"`},
		{query: "", wantErr: "missing parameter key: /probe?key=NAME&model=MODEL takes a configured key name and one of its models"},
		{query: "model=llama3.1-8b", wantErr: "missing parameter key: /probe?key=NAME&model=MODEL takes a configured key name and one of its models"},
		{query: "key=sk-pasted-secret&model=llama3.1-8b", wantErr: "parameter key: no configured key has this name"},
		{query: "key=prod&key=router", wantErr: "parameter key is given 2 times; give it once"},
		{query: "key=prod", wantErr: `missing parameter model: key "prod" has models "llama3.1-8b", "qwen-3-32b"`},
		{query: "key=prod&model=gpt-4o", wantErr: `parameter model: key "prod" has no model of this name; its models are "llama3.1-8b", "qwen-3-32b"`},
		{query: "key=prod&model=a&model=b", wantErr: "parameter model is given 2 times; give it once"},
		{query: "key=router&model=x", wantErr: `parameter model: key "router" is probed once for all models; give no model parameter`},
		{query: "key=http://169.254.169.254/&model=x", wantErr: "parameter key: no configured key has this name"},
	} {
		query, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := probeTarget(query, targets)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%q: error %v, want %q", tc.query, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.query, got, err, tc.want)
		}
	}
}

// /probe refreshes the one target it names, within the scraper's timeout,
// and serves that target's text alone; a bad request probes nothing.
func TestProbeEndpoint(t *testing.T) {
	var refreshed []config.TargetID
	var deadlines []time.Duration
	h, err := Handler(Options{
		MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText("ratelimit_limit 5\n"),
		Targets: testTargets,
		RefreshTarget: func(ctx context.Context, id config.TargetID) bool {
			refreshed = append(refreshed, id)
			d, _ := ctx.Deadline()
			deadlines = append(deadlines, time.Until(d))
			return true
		},
		TimeoutOffset: 500 * time.Millisecond, Ready: func() bool { return true }, Logger: log.NewNopLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/probe?key=prod&model=llama3.1-8b", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.String() != "# prod/llama3.1-8b\nratelimit_limit 5\n" ||
		rec.Header().Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("/probe: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
	if len(refreshed) != 1 || refreshed[0] != (config.TargetID{Key: "prod", Model: "llama3.1-8b"}) {
		t.Errorf("refreshed %v, want prod/llama3.1-8b once", refreshed)
	}
	if len(deadlines) == 1 && (deadlines[0] > 9500*time.Millisecond || deadlines[0] < 9*time.Second) {
		t.Errorf("the refresh had %s left, want the scrape timeout less the offset, 9.5s", deadlines[0])
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/probe?key=prod", nil))
	if rec.Code != 400 || !strings.HasPrefix(rec.Body.String(), "missing parameter model") {
		t.Errorf("/probe without a model: %d %q", rec.Code, rec.Body)
	}
	if len(refreshed) != 1 {
		t.Errorf("a refused /probe refreshed %v", refreshed[1:])
	}
}

func TestServiceDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name     string
		external string
		tls      bool
		want     string
	}{
		{name: "the request's host", want: `[
 {"targets":["exporter:10429"],"labels":{"__param_key":"prod","__param_model":"llama3.1-8b","key":"prod","model":"llama3.1-8b","provider":"cerebras","team":"search"}},
 {"targets":["exporter:10429"],"labels":{"__param_key":"prod","__param_model":"qwen-3-32b","key":"prod","model":"qwen-3-32b","provider":"cerebras","team":"search"}},
 {"targets":["exporter:10429"],"labels":{"__param_key":"router","key":"router","provider":"openrouter"}}]`},
		{name: "served over TLS", tls: true, want: `[
 {"targets":["exporter:10429"],"labels":{"__param_key":"prod","__param_model":"llama3.1-8b","__scheme__":"https","key":"prod","model":"llama3.1-8b","provider":"cerebras","team":"search"}},
 {"targets":["exporter:10429"],"labels":{"__param_key":"prod","__param_model":"qwen-3-32b","__scheme__":"https","key":"prod","model":"qwen-3-32b","provider":"cerebras","team":"search"}},
 {"targets":["exporter:10429"],"labels":{"__param_key":"router","__scheme__":"https","key":"router","provider":"openrouter"}}]`},
		{name: "--web.external-url with a path", external: "https://rle.example.com:8443/exporter/", want: `[
 {"targets":["rle.example.com:8443"],"labels":{"__metrics_path__":"/exporter/probe","__param_key":"prod","__param_model":"llama3.1-8b","__scheme__":"https","key":"prod","model":"llama3.1-8b","provider":"cerebras","team":"search"}},
 {"targets":["rle.example.com:8443"],"labels":{"__metrics_path__":"/exporter/probe","__param_key":"prod","__param_model":"qwen-3-32b","__scheme__":"https","key":"prod","model":"qwen-3-32b","provider":"cerebras","team":"search"}},
 {"targets":["rle.example.com:8443"],"labels":{"__metrics_path__":"/exporter/probe","__param_key":"router","__scheme__":"https","key":"router","provider":"openrouter"}}]`},
	} {
		o := Options{MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText(""), Targets: testTargets,
			Ready: func() bool { return true }, Logger: log.NewNopLogger()}
		if tc.external != "" {
			u, err := url.Parse(tc.external)
			if err != nil {
				t.Fatal(err)
			}
			o.ExternalURL = u
		}
		h, err := Handler(o)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "http://exporter:10429/sd", nil)
		if tc.tls {
			req.TLS = &tls.ConnectionState{}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var got, want any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v in %q", tc.name, err, rec.Body)
		}
		if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
			t.Fatal(err)
		}
		gotText, _ := json.Marshal(got)
		wantText, _ := json.Marshal(want)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || string(gotText) != string(wantText) {
			t.Errorf("%s: %d %s\n%s\nwant\n%s", tc.name, rec.Code, rec.Header().Get("Content-Type"), gotText, wantText)
		}
	}
}

func TestCheckExternalURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://exporter:10429":          "",
		"https://rle.example.com/prefix": "",
		"exporter:10429":                 `--web.external-url "exporter:10429" is not an absolute http(s) URL`,
		"ftp://exporter/":                `--web.external-url "ftp://exporter/" is not an absolute http(s) URL`,
		"http:///path":                   `--web.external-url "http:///path" is not an absolute http(s) URL`,
		"https://user:secret@rle/":       `--web.external-url "https://user:xxxxx@rle/" must not carry user info, a query or a fragment`,
		"https://rle/?x=1":               `--web.external-url "https://rle/?x=1" must not carry user info, a query or a fragment`,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if err := CheckExternalURL(u); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%q: %q, want %q", raw, got, want)
		}
	}
}

// A /probe waiting for its probe takes one of --web.max-requests, as a
// /metrics scrape does.
func TestProbeCountsTowardsMaxRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h, err := Handler(Options{
		MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText(""), MaxRequests: 1,
		Targets: testTargets,
		RefreshTarget: func(context.Context, config.TargetID) bool {
			close(entered)
			<-release
			return true
		},
		Ready: func() bool { return true }, Logger: log.NewNopLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/probe?key=router", nil))
	}()
	defer func() {
		close(release)
		<-done
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("/probe did not refresh within 10s")
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = "192.0.2.2:1000" // not the /probe's address, which has its own bound
	h.ServeHTTP(rec, req)
	if rec.Code != 503 || rec.Body.String() != "Too many concurrent scrapes (--web.max-requests=1)\n" {
		t.Errorf("/metrics while a /probe waits, with --web.max-requests=1: %d %q, want 503", rec.Code, rec.Body)
	}
}

// /probe?debug=true asks for the target's latest probe (Debug refreshes it
// in scrape mode) and serves its log, its settings without secrets, and its
// metrics; debug=false is /probe.
func TestProbeDebug(t *testing.T) {
	const canary = "sk-test-canary-server-debug-2f6b"
	key := config.Key{Name: "solo", Provider: "cerebras", APIKey: canary, Models: []string{"llama3.1-8b"}}
	var refreshed, plainRefreshes int
	at := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	logs := map[config.TargetID]*history.Entry{{Key: "solo", Model: "llama3.1-8b"}: {
		Source: history.Probe, Target: config.TargetID{Key: "solo", Model: "llama3.1-8b"}, Provider: "cerebras", Started: at,
		Result:   prober.Result{Outcome: prober.Success, Reading: ratelimit.Reading{Time: at}},
		Schedule: history.Schedule{Mode: "scrape", Next: at.Add(time.Minute)},
	}}
	h, err := Handler(Options{
		MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText("ratelimit_limit 5\n"),
		Targets: func() []config.Target {
			return append(testTargets(), (&config.Config{Keys: []config.Key{key}}).Targets()...)
		},
		RefreshTarget: func(context.Context, config.TargetID) bool { plainRefreshes++; return true },
		Debug: func(_ context.Context, id config.TargetID) (*history.Entry, bool) {
			refreshed++
			l, ok := logs[id]
			return l, ok
		},
		Ready: func() bool { return true }, Logger: log.NewNopLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(query string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/probe?"+query, nil))
		if rec.Code != 200 {
			t.Fatalf("%s: HTTP %d %q", query, rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), canary) {
			t.Fatalf("%s shows the key:\n%s", query, rec.Body)
		}
		if debug := strings.Contains(query, "debug=t") || strings.Contains(query, "debug=1"); debug != (rec.Header().Get("X-Content-Type-Options") == "nosniff") {
			t.Errorf("%s: X-Content-Type-Options %q", query, rec.Header().Get("X-Content-Type-Options"))
		}
		return rec.Header().Get("Content-Type") + "\n" + rec.Body.String()
	}
	got := get("key=solo&model=llama3.1-8b&debug=true")
	for _, want := range []string{
		"text/plain; charset=utf-8\nLogs for the last probe of this target",
		"\nts=2026-12-05T04:00:00Z msg=\"Probe ended\" result=success duration=0s\nts=2026-12-05T04:00:00Z msg=\"Next probe due\" mode=scrape at=2026-12-05T04:01:00Z sent=\"the next scrape from then on\"\n\n\nTarget configuration:\nkey:\n    name: solo\n    provider: cerebras\n    api_key: <secret>\n",
		"\nmodel: llama3.1-8b\n\n\nMetrics that would have been returned:\n# solo/llama3.1-8b\nratelimit_limit 5\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("debug=true lacks %q:\n%s", want, got)
		}
	}
	if refreshed != 1 {
		t.Errorf("debug=true asked for the target's probe %d times, want once", refreshed)
	}
	if got := get("key=prod&model=qwen-3-32b&debug=1"); !strings.Contains(got, "\nNo probe of this target is kept:") {
		t.Errorf("debug=1 of a target never probed:\n%s", got)
	}
	if plainRefreshes != 0 {
		t.Errorf("debug=true refreshed the target as /probe does besides, %d times", plainRefreshes)
	}
	if got := get("key=prod&model=llama3.1-8b&debug=false"); got != "text/plain; version=0.0.4; charset=utf-8\n# prod/llama3.1-8b\nratelimit_limit 5\n" {
		t.Errorf("debug=false: %q", got)
	}
}
