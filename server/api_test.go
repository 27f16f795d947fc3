package server

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// limitsReport is what the handler tests serve: three targets, one of
// which failed, and an admin source that worked.
func limitsReport(now time.Time) snapshot.Report {
	r := snapshot.Report{SchemaVersion: snapshot.Version, GeneratedAt: now.UTC(), Targets: []snapshot.Target{
		{Key: "a", Provider: "openai", Model: "gpt-4o", OK: true, Result: "success", Windows: []snapshot.Window{}},
		{Key: "a", Provider: "openai", Model: "o3", OK: true, Result: snapshot.ResultNotProbed, Windows: []snapshot.Window{}},
		{Key: "b", Provider: "openai", Model: "gpt-4o", Result: "unauthorized", Error: "HTTP 401", Windows: []snapshot.Window{}},
		{Key: "wallet", Provider: "deepseek", Model: "", OK: true, Result: "success", Windows: []snapshot.Window{}},
	}, Admin: []snapshot.AdminSource{{Name: "oai", Provider: "openai", OK: true, Read: []string{"proj"}}}}
	r.OK = r.Healthy()
	return r
}

func limitsServer(t *testing.T) *httptest.Server {
	t.Helper()
	h, err := Handler(Options{MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText(""), Limits: limitsReport,
		Reload: func() error { return nil }, Ready: func() bool { return true }, Logger: log.NewNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// /api/v1/limits serves the report as JSON, never cached; key and model
// filter it, each repeatable, and a filtered report's ok covers its
// targets alone. Parameters it does not know, and keys it does not know,
// are refused with a message that repeats no value.
func TestLimitsHandler(t *testing.T) {
	srv := limitsServer(t)
	for _, tc := range []struct {
		query   string
		targets []string // key/model
		ok      bool
		admin   bool
	}{
		{query: "", targets: []string{"a/gpt-4o", "a/o3", "b/gpt-4o", "wallet/"}, admin: true},
		{query: "?key=a", targets: []string{"a/gpt-4o", "a/o3"}, ok: true},
		{query: "?key=a&key=b", targets: []string{"a/gpt-4o", "a/o3", "b/gpt-4o"}},
		{query: "?model=gpt-4o", targets: []string{"a/gpt-4o", "b/gpt-4o"}},
		{query: "?model=gpt-4o&model=o3&key=a", targets: []string{"a/gpt-4o", "a/o3"}, ok: true},
		{query: "?model=", targets: []string{"wallet/"}, ok: true},                    // a key probed once for all models
		{query: "?model=gpt-5", targets: []string{}, ok: true},                        // a model may come with the proxy's traffic
		{query: "?key=b&model=o3", targets: []string{}, ok: true},                     // known key, no such model
		{query: "?key=a&model=gpt-4o&key=a", targets: []string{"a/gpt-4o"}, ok: true}, // a key twice is once
	} {
		resp, err := srv.Client().Get(srv.URL + LimitsPath + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var report snapshot.Report
		dec := json.NewDecoder(resp.Body)
		dec.DisallowUnknownFields()
		err = dec.Decode(&report)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%q: %d %v", tc.query, resp.StatusCode, err)
			continue
		}
		if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
			t.Errorf("%q: Content-Type %q, Cache-Control %q", tc.query, ct, cc)
		}
		got := []string{}
		for _, target := range report.Targets {
			got = append(got, target.Key+"/"+target.Model)
		}
		if strings.Join(got, " ") != strings.Join(tc.targets, " ") || report.OK != tc.ok || (len(report.Admin) > 0) != tc.admin ||
			report.SchemaVersion != 1 || report.GeneratedAt.IsZero() {
			t.Errorf("%q: targets %v ok %v, %d admin sources, schema %d; want %v ok %v admin %v",
				tc.query, got, report.OK, len(report.Admin), report.SchemaVersion, tc.targets, tc.ok, tc.admin)
		}
	}

	const secret = "sk-test-canary-api-4e1f"
	for query, want := range map[string]string{
		"?key=nope":                   "parameter key (the 1st given): no key of this name is known\n",
		"?key=a&key=" + secret:        "parameter key (the 2nd given): no key of this name is known\n",
		"?key=":                       "parameter key is empty: give a configured key name\n",
		"?keys=a":                     "unknown parameter keys: /api/v1/limits takes key=NAME and model=MODEL, each repeatable\n",
		"?" + secret:                  "unknown parameter (not repeated): /api/v1/limits takes key=NAME and model=MODEL, each repeatable\n",
		"?" + secret + "=1":           "unknown parameter (not repeated): /api/v1/limits takes key=NAME and model=MODEL, each repeatable\n",
		"?abcdefghijklmnopqrstuvwxyz": "unknown parameter (not repeated): /api/v1/limits takes key=NAME and model=MODEL, each repeatable\n", // too long to be a name
		"?=a":                         "a parameter without a name: /api/v1/limits takes key=NAME and model=MODEL, each repeatable\n",
		"?key=a&format=prometheus":    "unknown parameter format: /api/v1/limits takes key=NAME and model=MODEL, each repeatable\n",
	} {
		resp, err := srv.Client().Get(srv.URL + LimitsPath + query)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || body.String() != want {
			t.Errorf("%q: %d %q, want 400 %q", query, resp.StatusCode, body.String(), want)
		}
	}
}

// Without Limits there is no JSON view; the landing page links it when
// there is.
func TestLimitsRoute(t *testing.T) {
	h, err := Handler(Options{MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText(""), Ready: func() bool { return true }, Logger: log.NewNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", LimitsPath, nil))
	if rec.Code != 404 {
		t.Errorf("without Limits: %d, want 404", rec.Code)
	}
	srv := limitsServer(t)
	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(body.String(), `href="`+LimitsPath+`"`) && !strings.Contains(body.String(), `href="./api/v1/limits"`) {
		t.Errorf("the landing page does not link %s:\n%s", LimitsPath, body.String())
	}
	if err := CheckMetricsPath(LimitsPath); err == nil {
		t.Errorf("--web.telemetry-path %s is accepted", LimitsPath)
	}
}

// A whole report, or a page of every key, costs tens of /metrics scrapes:
// the JSON view and the status page share their bound, --web.max-requests.
func TestPagesCountTowardsMaxRequests(t *testing.T) {
	for path, report := range map[string]func(time.Time) snapshot.Report{LimitsPath: limitsReport, StatusPath: statusReport} {
		t.Run(path, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			h, err := Handler(Options{MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText(""), MaxRequests: 1,
				Limits: func(now time.Time) snapshot.Report {
					entered <- struct{}{}
					<-release
					return report(now)
				},
				Ready: func() bool { return true }, Logger: log.NewNopLogger()})
			if err != nil {
				t.Fatal(err)
			}
			first := make(chan int)
			go func() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				first <- rec.Code
			}()
			<-entered
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if rec.Code != 503 {
				t.Errorf("a scrape while %s is built: %d, want 503", path, rec.Code)
			}
			close(release)
			if code := <-first; code != 200 {
				t.Errorf("%s: %d", path, code)
			}
		})
	}
}

// A filter that matches nothing gives an empty list, not null, and leaves
// the report Limits gave untouched.
func TestLimitsFilterKeepsTheReport(t *testing.T) {
	report := limitsReport(time.Now())
	h := limitsHandler(Options{Limits: func(time.Time) snapshot.Report { return report }, Logger: log.NewNopLogger()})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", LimitsPath+"?model=gpt-5", nil))
	if !strings.Contains(rec.Body.String(), `"targets":[]`) {
		t.Errorf("no target matches: %s", rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", LimitsPath+"?key=b", nil))
	if report.Targets[0].Key != "a" || len(report.Admin) != 1 {
		t.Errorf("filtering changed the report Limits gave: %+v", report)
	}
}
