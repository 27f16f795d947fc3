package server

import (
	"net/http/httptest"
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

// The landing page keeps the toolkit's page and lists the history under
// its links, escaping what came from traffic: a model name an application
// sent through the proxy is text, not markup.
func TestLandingPageEscapesTheHistory(t *testing.T) {
	h := history.New(10)
	at := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	hostile := config.TargetID{Key: "prod", Model: `<script>alert("x")</script>`}
	h.Configure([]config.TargetID{{Key: "prod", Model: "m"}, {Key: "prod", Model: "older"}})
	h.Add(&history.Entry{Source: history.Probe, Target: config.TargetID{Key: "prod", Model: "older"}, Provider: "openai", Started: at.Add(-time.Hour), Result: prober.Result{Outcome: prober.Unauthorized}})
	h.Add(&history.Entry{Source: history.Proxy, Target: hostile, Provider: "openai", Started: at, Result: prober.Result{Reading: ratelimit.Reading{Time: at, StatusCode: 429}}})
	h.Add(&history.Entry{Source: history.Probe, Target: config.TargetID{Key: "prod", Model: "m"}, Provider: "openai", Started: at, Result: prober.Result{Outcome: prober.Timeout, Duration: 1500 * time.Millisecond}})
	handler, err := Handler(Options{MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText(""),
		Targets: testTargets, History: h, Ready: func() bool { return true }, Logger: log.NewNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`<a href="/metrics">Metrics</a>`,
		// The failures, newest first.
		"<h2>Last failure of each target</h2>\n<table class=\"probes\">\n<tr><th>Time</th><th>Key</th><th>Model</th><th>Source</th><th>Result</th><th>Duration</th><th></th></tr>\n" +
			`<tr><td>2026-12-05 04:00:00Z</td><td>prod</td><td>m</td>`,
		`<tr><td>2026-12-05 04:00:00Z</td><td>prod</td><td>m</td><td>probe</td><td class="failed">timeout</td><td>1.5s</td><td><a href="/probe/log?id=3">log</a></td></tr>`,
		`<td>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td><td>proxy</td><td class="failed">rate_limited</td><td></td><td><a href="/probe/log?id=2">log</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the landing page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>") || rec.Header().Get("Content-Type") != "text/html; charset=UTF-8" {
		t.Errorf("the landing page holds markup from traffic, or is not HTML:\n%s", body)
	}
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/probe/log?id=2", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `msg="Reading ended" result=rate_limited`) || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("/probe/log?id=2: %d\n%s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/probe/log?id=4", nil))
	if rec.Code != 404 {
		t.Errorf("/probe/log?id=4: %d", rec.Code)
	}
}
