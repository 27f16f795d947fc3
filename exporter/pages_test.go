package exporter

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/server"
)

// The pages that read probes and the history, /status, /api/v1/limits,
// /probe?debug=true, /probe/log and the landing page, are served while
// reloads add and remove the targets they show, and while probes end:
// run with -race, nothing reads what another goroutine writes. A log
// open while its target is removed answers 404 or its log, never a panic.
func TestPagesDuringReloads(t *testing.T) {
	const canary = "sk-test-canary-exporter-pages-5d1e"
	var calls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Echo", r.Header.Get("Authorization"))
		h.Set("X-Ratelimit-Limit-Requests", "100")
		h.Set("X-Ratelimit-Remaining-Requests", "50")
		h.Set("X-Ratelimit-Reset-Requests", "20s")
		if calls.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	t.Cleanup(up.Close)
	configs := []*config.Config{
		parse(t, fmt.Sprintf(`probe: {mode: scrape, min_interval: 0s, max_quota_share: 1}
keys:
  - {name: a, provider: openai, api_key: %[1]s, base_url: %[2]s, models: [m1, m2]}
  - {name: b, provider: openai, api_key: %[1]s-b, base_url: %[2]s, models: [m1]}
`, canary, up.URL)),
		parse(t, fmt.Sprintf(`probe: {mode: scrape, min_interval: 0s, max_quota_share: 1}
keys:
  - {name: a, provider: openai, api_key: %[1]s, base_url: %[2]s, models: [m1]}
`, canary, up.URL)),
	}
	e := New(Options{UserAgent: "test", Registry: prometheus.NewRegistry(), Grace: time.Second, HistoryLimit: 5})
	t.Cleanup(e.Stop)
	if err := e.Apply(configs[0]); err != nil {
		t.Fatal(err)
	}
	h, err := server.Handler(server.Options{
		MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: e.Readings(),
		Refresh: e.Refresh, RefreshTarget: e.RefreshTarget, Debug: e.Debug, History: e.History(),
		Targets: e.Targets, Limits: e.Limits, Ready: func() bool { return true }, Logger: log.NewNopLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Refresh(context.Background())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	paths := []string{"/status", "/api/v1/limits", "/", "/probe?key=a&model=m2&debug=true", "/probe?key=b&debug=true", "/metrics"}
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				path := paths[(i+n)%len(paths)]
				if i == 0 {
					path = fmt.Sprintf("/probe/log?id=%d", n%40+1)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code >= 500 || strings.Contains(rec.Body.String(), canary) {
					t.Errorf("%s: %d\n%.2000s", path, rec.Code, rec.Body)
				}
				served.Add(1)
			}
		}()
	}
	for i := range 40 {
		if err := e.Apply(configs[i%2]); err != nil {
			t.Error(err)
		}
		e.Refresh(context.Background())
	}
	close(stop)
	wg.Wait()
	t.Logf("%d pages served during 40 reloads", served.Load())
}
