package exporter

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/proxy"
	"github.com/ratelimit-exporter/ratelimit_exporter/tally"
)

// The exporter counts what the proxy reports spent against the declared
// limits, and shows the estimate once a whole window was counted; a
// reload that keeps the key keeps the count, whatever the new limit, and
// one that drops the limits drops the estimate.
func TestDeclaredLimitsAcrossReloads(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 22, 12, 0, 30, 0, time.UTC))
	reg := prometheus.NewPedanticRegistry()
	e := New(Options{UserAgent: "test", Registry: reg, Grace: time.Second, Clock: clock})
	t.Cleanup(e.Stop)
	address := freeAddress(t)
	config := func(limits string) string {
		return fmt.Sprintf(`probe: {mode: scrape}
keys:
  - {name: d, provider: deepseek, api_key: sk-test-exporter-declared, base_url: "http://127.0.0.1:1"%s}
proxy:
  listen_address: %s
  routes: [{path_prefix: /deepseek/, upstream: "http://127.0.0.1:1", provider: deepseek}]
`, limits, address)
	}
	if err := e.Apply(parse(t, config(", limits: [{resource: requests, window: minute, limit: 10}]"))); err != nil {
		t.Fatal(err)
	}
	text := func() string {
		var b bytes.Buffer
		if err := e.Readings().WriteText(&b, nil); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	const (
		limit    = `ratelimit_limit{key="d",model="",provider="deepseek",resource="requests",window="minute"} 10`
		estimate = `ratelimit_remaining_estimate{key="d",model="",provider="deepseek",resource="requests",window="minute"} `
	)
	if got := text(); !strings.Contains(got, limit) || strings.Contains(got, estimate) {
		t.Errorf("in the first, partial minute: want the limit and no estimate:\n%s", got)
	}

	clock.Advance(30 * time.Second) // the first minute ends
	// The window's end is published from the timer's goroutine; the
	// deadline only bounds a failing test.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(text(), estimate+"10\n"); {
		if time.Now().After(deadline) {
			t.Fatalf("no estimate after a whole minute:\n%s", text())
		}
		time.Sleep(time.Millisecond)
	}
	for range 3 {
		e.Spend(proxy.Usage{Key: "d", Provider: "deepseek", Model: "deepseek-chat", Spent: tally.Spent{Requests: 1}})
	}
	if got := text(); !strings.Contains(got, estimate+"7\n") {
		t.Errorf("after 3 requests, want 7 left:\n%s", got)
	}

	if err := e.Apply(parse(t, config(", limits: [{resource: requests, window: 60s, limit: 20}]"))); err != nil {
		t.Fatal(err)
	}
	if got := text(); !strings.Contains(got, estimate+"17\n") {
		t.Errorf("a reload that raised the limit: want 17 left:\n%s", got)
	}
	usage := `
# HELP ratelimit_proxy_usage_total What the proxy counted of the traffic of keys that declare limits, by resource: requests served (2xx), and the input, output and total tokens their usage reports.
# TYPE ratelimit_proxy_usage_total counter
ratelimit_proxy_usage_total{key="d",model="",provider="deepseek",resource="input_tokens"} 0
ratelimit_proxy_usage_total{key="d",model="",provider="deepseek",resource="output_tokens"} 0
ratelimit_proxy_usage_total{key="d",model="",provider="deepseek",resource="requests"} 3
ratelimit_proxy_usage_total{key="d",model="",provider="deepseek",resource="tokens"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(usage), "ratelimit_proxy_usage_total"); err != nil {
		t.Error(err)
	}

	if err := e.Apply(parse(t, config(""))); err != nil {
		t.Fatal(err)
	}
	if got := text(); strings.Contains(got, "ratelimit_limit{") || strings.Contains(got, "ratelimit_remaining_estimate{") {
		t.Errorf("the limits were dropped, but not their series:\n%s", got)
	}
	if n := testutil.CollectAndCount(e.tally); n != 0 {
		t.Errorf("%d usage series after the limits were dropped", n)
	}
}

// What counting one response costs the exporter: the tally's count, and
// the publication of the key's windows to the readings.
func BenchmarkSpend(b *testing.B) {
	e := New(Options{UserAgent: "test", Clock: clockwork.NewRealClock()})
	b.Cleanup(e.Stop)
	cfg := `probe: {mode: scrape}
keys:
  - {name: d, provider: deepseek, api_key: sk-test-exporter-declared, base_url: "http://127.0.0.1:1",
     limits: [{resource: requests, window: minute, limit: 10}, {resource: tokens, window: day, limit: 1e6}]}
proxy:
  listen_address: 127.0.0.1:0
  routes: [{path_prefix: /deepseek/, upstream: "http://127.0.0.1:1", provider: deepseek}]
`
	parsed, err := config.Parse([]byte(cfg), "bench.yml")
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Apply(parsed); err != nil {
		b.Fatal(err)
	}
	u := proxy.Usage{Key: "d", Provider: "deepseek", Model: "deepseek-chat", Spent: tally.Spent{InputTokens: 10, OutputTokens: 5, Tokens: 15}}
	b.ReportAllocs()
	for b.Loop() {
		e.Spend(u)
	}
}
