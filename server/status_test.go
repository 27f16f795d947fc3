package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/html"

	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

func ptr[T any](v T) *T { return &v }

// statusReport is a report with one target of each kind the page orders.
func statusReport(now time.Time) snapshot.Report {
	read := now.Add(-5 * time.Second).UTC()
	window := func(resource, name string, remaining, limit float64, resetIn time.Duration) snapshot.Window {
		resets := now.Add(resetIn).UTC()
		return snapshot.Window{Resource: resource, Window: name, Remaining: &remaining, Limit: &limit,
			ResetSeconds: ptr(resetIn.Seconds()), ResetsAt: &resets, Source: snapshot.SourceProbe, ReadAt: &read, Current: resetIn > 0}
	}
	return snapshot.Report{SchemaVersion: snapshot.Version, GeneratedAt: now, Targets: []snapshot.Target{
		{Key: "full", Provider: "cerebras", Model: "m", OK: true, Result: "success", StatusCode: 200, ReadAt: &read, Source: snapshot.SourceProbe,
			Windows: []snapshot.Window{window("requests", "minute", 90, 100, 90*time.Second)}},
		{Key: "pending", Provider: "cerebras", Model: "m", Result: snapshot.ResultPending, Windows: []snapshot.Window{}},
		{Key: "low", Provider: "cerebras", Model: "m", OK: true, Result: "success", StatusCode: 200, ReadAt: &read, Source: snapshot.SourceProbe,
			Labels: map[string]string{"team": "search", "env": "prod"},
			Windows: []snapshot.Window{
				window("requests", "day", 500, 1000, 26*time.Hour),
				window("tokens", "minute", 100, 1000, -3*time.Second),
				{Resource: "deployment", Utilization: ptr(0.25), Source: snapshot.SourceProxy, ReadAt: &read, Current: true},
				{Resource: "output_tokens", Window: "minute", Limit: ptr(8000.0), Source: snapshot.SourceAdminAPI, ReadAt: &read, Current: true},
			}},
		{Key: "<script>alert(1)</script>", Provider: "openai", Model: "gpt", Result: "unauthorized", StatusCode: 401,
			Error: `HTTP 401 (<b onmouseover="x">)`, Windows: []snapshot.Window{}},
		{Key: "wallet", Provider: "deepseek", OK: true, Result: "success", StatusCode: 200, ReadAt: &read, Source: snapshot.SourceProbe,
			Windows: []snapshot.Window{}, Balances: []snapshot.Balance{{Currency: "USD", Amount: 12.5}}},
	}}
}

func serveStatus(t *testing.T, limits func(time.Time) snapshot.Report, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	h, err := Handler(Options{MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText(""), Limits: limits, Logger: log.NewNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", StatusPath, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	h.ServeHTTP(rec, req)
	return rec
}

func TestStatusPage(t *testing.T) {
	var now time.Time
	rec := serveStatus(t, func(at time.Time) snapshot.Report { now = at; return statusReport(at) })
	if rec.Code != 200 || rec.Header().Get("Content-Security-Policy") != StatusPolicy ||
		rec.Header().Get("Content-Type") != "text/html; charset=utf-8" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	page := rec.Body.String()

	// Failing first, then the least left first, then nothing known.
	order := regexp.MustCompile(`<section class="target[^"]*" data-key="([^"]*)"`).FindAllStringSubmatch(page, -1)
	var keys []string
	for _, m := range order {
		keys = append(keys, m[1])
	}
	if got, want := strings.Join(keys, " "), "&lt;script&gt;alert(1)&lt;/script&gt; low full pending wallet"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	// In a target, the least left first; a window with no share last.
	windows := regexp.MustCompile(`data-resource="([^"]*)" data-window="([^"]*)"`).FindAllStringSubmatch(page, -1)
	var names []string
	for _, m := range windows {
		names = append(names, m[1]+"/"+m[2])
	}
	if got, want := strings.Join(names, " "), "tokens/minute requests/day deployment/ output_tokens/minute requests/minute"; got != want {
		t.Errorf("windows %q, want %q", got, want)
	}

	// Readable without a script: the figures, countdowns and ages are text.
	for _, want := range []string{
		`1 failing`,
		`<p class="error">HTTP 401 (&lt;b onmouseover=&#34;x&#34;&gt;)</p>`,
		`last probe: <span class="result">unauthorized</span> (401) · never read`,
		`cerebras · env=prod, team=search · last probe: <span class="result">success</span> (200)`,
		`<meter low="0.1" high="0.25" optimum="1" value="0.1"></meter> <span class="percent">10%</span>`,
		`100 of 1,000 left`,
		`>reset 3s ago</time>`,
		`<span class="stale-note">no longer current</span>`,
		`>in 1d 2h 0m</time>`,
		`value="0.75"></meter> <span class="percent">75%</span></td>` + "\n<td>25% used</td>",
		`limit 8,000, remaining unknown`,
		`>in 1m 30s</time>`,
		`>5s ago</time> by probe`,
		`Balance: 12.5 USD`,
		`every model`,
		`data-resets-at="` + jsTime(now.Add(90*time.Second)) + `"`,
		`data-generated-at="` + jsTime(now) + `"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	checkStrict(t, page)
}

// checkStrict fails on what the policy would block: a script with no src,
// a style element or attribute, an event handler attribute, or anything
// loaded from another origin.
func checkStrict(t *testing.T, page string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Fatal(z.Err())
			}
			return
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		attrs := map[string]string{}
		for _, a := range tok.Attr {
			attrs[a.Key] = a.Val
			if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
				t.Errorf("<%s %s=%q>: blocked by the policy", tok.Data, a.Key, a.Val)
			}
			if (a.Key == "src" || a.Key == "href") && (strings.Contains(a.Val, ":") || strings.HasPrefix(a.Val, "//")) {
				t.Errorf("<%s %s=%q>: not of this origin", tok.Data, a.Key, a.Val)
			}
		}
		if tok.Data == "style" || tok.Data == "script" && attrs["src"] == "" {
			t.Errorf("inline <%s>: blocked by the policy", tok.Data)
		}
	}
}

func TestStatusPageEmptyAndGzipped(t *testing.T) {
	rec := serveStatus(t, nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "0 keys and models, 0 failing.") || !strings.Contains(rec.Body.String(), "No keys or models are configured.") {
		t.Errorf("without limits: %d\n%s", rec.Code, rec.Body)
	}
	rec = serveStatus(t, statusReport, "Accept-Encoding", "gzip")
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Content-Security-Policy") != StatusPolicy {
		t.Errorf("gzipped: %v", rec.Header())
	}
}

func TestStatusFiles(t *testing.T) {
	h, err := Handler(Options{MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText(""), Logger: log.NewNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for path, contentType := range map[string]string{
		StatusStylePath:  "text/css; charset=utf-8",
		StatusScriptPath: "text/javascript; charset=utf-8",
		StatusIconPath:   "image/svg+xml",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != contentType || rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Body.Len() == 0 {
			t.Errorf("%s: %d %v", path, rec.Code, rec.Header())
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !strings.Contains(rec.Body.String(), `href="/status"`) {
		t.Error("the landing page has no link to /status")
	}
}

func TestSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                              "0s",
		999 * time.Millisecond:         "0s",
		42 * time.Second:               "42s",
		3*time.Minute + 12*time.Second: "3m 12s",
		2*time.Hour + 5*time.Second:    "2h 0m 5s",
		3*24*time.Hour + 4*time.Hour + 59*time.Second: "3d 4h 0m",
	} {
		if got := span(d); got != want {
			t.Errorf("span(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 25: "25", 1000: "1,000", 499999990: "499,999,990", -1234: "-1,234",
		0.25: "0.25", 12.5: "12.5", 1e20: "1e+20",
	} {
		if got := number(v); got != want {
			t.Errorf("number(%v) = %q, want %q", v, got, want)
		}
	}
}

// The page at 1,000 keys × 3 models, 6 windows each.
func BenchmarkStatusPage(b *testing.B) {
	now := time.Now()
	var report snapshot.Report
	for k := range 1000 {
		for m := range 3 {
			target := snapshot.Target{Key: fmt.Sprintf("key-%04d", k), Provider: "cerebras", Model: fmt.Sprintf("model-%d", m),
				OK: true, Result: "success", StatusCode: 200, ReadAt: &now, Source: snapshot.SourceProbe, Labels: map[string]string{"team": "search"}}
			for _, resource := range []string{"requests", "tokens"} {
				for _, window := range []string{"minute", "hour", "day"} {
					remaining, limit := float64((k*7+m*13)%1000), 1000.0
					resets := now.Add(time.Duration(k) * time.Second)
					target.Windows = append(target.Windows, snapshot.Window{Resource: resource, Window: window, Remaining: &remaining, Limit: &limit,
						ResetsAt: &resets, Source: snapshot.SourceProbe, ReadAt: &now, Current: true})
				}
			}
			report.Targets = append(report.Targets, target)
		}
	}
	h := statusHandler(func(time.Time) snapshot.Report { return report }, log.NewNopLogger())
	for _, encoding := range []string{"identity", "gzip"} {
		b.Run(encoding, func(b *testing.B) {
			var size int
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, StatusPath, nil)
				req.Header.Set("Accept-Encoding", encoding)
				h.ServeHTTP(rec, req)
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}

// A target with a window that has nothing left is marked exhausted; a
// share left is floored, so a window nearly full never shows 100%; an
// admin source that failed names the scope and why, escaped.
func TestStatusPageExhaustedAndAdmin(t *testing.T) {
	rec := serveStatus(t, func(now time.Time) snapshot.Report {
		return snapshot.Report{SchemaVersion: snapshot.Version, GeneratedAt: now, Targets: []snapshot.Target{
			{Key: "empty", Provider: "openai", Model: "m", OK: true, Result: "success", Windows: []snapshot.Window{
				{Resource: "requests", Window: "minute", Remaining: ptr(0.0), Limit: ptr(100.0), Current: true},
			}},
			{Key: "nearly-full", Provider: "openai", Model: "m", OK: true, Result: "success", Windows: []snapshot.Window{
				{Resource: "requests", Window: "minute", Remaining: ptr(999.0), Limit: ptr(1000.0), Current: true},
			}},
		}, Admin: []snapshot.AdminSource{{Name: "org", Provider: "openai", Failed: []snapshot.Failed{{Scope: "proj_1", Error: "HTTP 403 <i>"}}}}}
	})
	page := rec.Body.String()
	for _, want := range []string{
		`<section class="target exhausted" data-key="empty"`,
		`<h2>empty <span class="model">m</span> <span class="badge">exhausted</span></h2>`,
		`value="0.999"></meter> <span class="percent">99%</span>`,
		`<li class="failing">org (openai): failing; proj_1: <span class="error">HTTP 403 &lt;i&gt;</span></li>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s:\n%s", want, page)
		}
	}
	if strings.Count(page, "exhausted") != 2 { // empty's class and badge
		t.Errorf("exhausted marks a target with something left:\n%s", page)
	}
}
