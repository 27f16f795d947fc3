package check

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

var probeTime = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// fakeProber answers from a table by key name, and records how many probes
// were in flight at once and the deadline each had.
type fakeProber struct {
	answers           map[string]prober.Result
	inFlight, maxSeen atomic.Int64
	mu                sync.Mutex
	deadlines         []time.Duration
	release           chan struct{} // if not nil, each probe waits for it
}

func (f *fakeProber) Probe(ctx context.Context, t config.Target) prober.Result {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		seen := f.maxSeen.Load()
		if n <= seen || f.maxSeen.CompareAndSwap(seen, n) {
			break
		}
	}
	d, _ := ctx.Deadline()
	f.mu.Lock()
	f.deadlines = append(f.deadlines, time.Until(d))
	f.mu.Unlock()
	if f.release != nil {
		<-f.release
	}
	return f.answers[t.Key.Name]
}

func obs(kind ratelimit.Kind, resource, window string, v float64) ratelimit.Observation {
	return ratelimit.Observation{Kind: kind, Resource: resource, Window: window, Value: v}
}

func testConfig() *config.Config {
	return &config.Config{
		Probe: config.Probe{Concurrency: 2, Timeout: config.Duration(7 * time.Second)},
		Keys: []config.Key{
			{Name: "zeta", Provider: "cerebras", Models: []string{"llama3.1-8b"}},
			{Name: "alpha", Provider: "cerebras", Models: []string{"llama3.1-8b", "llama-3.3-70b"}},
			{Name: "router", Provider: "openrouter", Models: []string{""}},
			{Name: "revoked", Provider: "openai", Models: []string{"gpt-4o-mini"}},
		},
	}
}

func testAnswers() map[string]prober.Result {
	read := func(obs ...ratelimit.Observation) ratelimit.Reading {
		return ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: obs}
	}
	return map[string]prober.Result{
		"alpha": {Outcome: prober.Success, Reading: read(
			// Sorted as Parse returns them; two limits of one window keep the least.
			obs(ratelimit.Limit, "requests", "minute", 1000), obs(ratelimit.Limit, "requests", "minute", 1200),
			obs(ratelimit.Remaining, "requests", "minute", 250), obs(ratelimit.Reset, "requests", "minute", 42.5),
			obs(ratelimit.Limit, "tokens", "", 60000), obs(ratelimit.Remaining, "tokens", "", 0),
			obs(ratelimit.Reset, "tokens", "", 0.006),
		)},
		"zeta": {Outcome: prober.Success, Reading: read(
			obs(ratelimit.Limit, "tokens", "day", 1e6), obs(ratelimit.Remaining, "tokens", "day", 1e6),
			obs(ratelimit.Reset, "tokens", "day", 3*86400+7200),
		)},
		"router": {Outcome: prober.Success, Free: true, Reading: read(
			obs(ratelimit.Limit, "credits", "month", 25), obs(ratelimit.Remaining, "credits", "month", 12.5),
		)},
		"revoked": {Reading: ratelimit.Reading{Time: probeTime, StatusCode: 401}, Outcome: prober.Unauthorized, ErrorCode: "invalid_api_key",
			Err: errors.New("HTTP 401 (invalid_api_key)")},
	}
}

func run(t *testing.T, p *fakeProber) snapshot.Report {
	t.Helper()
	return Run(context.Background(), testConfig(), p, func() time.Time { return probeTime.Add(500 * time.Millisecond) })
}

func TestTable(t *testing.T) {
	report := run(t, &fakeProber{answers: testAnswers()})
	var out strings.Builder
	if err := Write(&out, "table", report); err != nil {
		t.Fatal(err)
	}
	want := `KEY      PROVIDER    MODEL          RESOURCE  WINDOW       REMAINING OF LIMIT                             RESETS IN
alpha    cerebras    llama-3.3-70b  requests  minute       250 of 1000         █████░░░░░░░░░░░░░░░  25%  42s
alpha    cerebras    llama-3.3-70b  tokens    (not given)  0 of 60000          ░░░░░░░░░░░░░░░░░░░░   0%  now
alpha    cerebras    llama3.1-8b    requests  minute       250 of 1000         █████░░░░░░░░░░░░░░░  25%  42s
alpha    cerebras    llama3.1-8b    tokens    (not given)  0 of 60000          ░░░░░░░░░░░░░░░░░░░░   0%  now
revoked  openai      gpt-4o-mini    -         -            nothing read                                   -
router   openrouter  (all)          credits   month        12.5 of 25          ██████████░░░░░░░░░░  50%  -
zeta     cerebras    llama3.1-8b    tokens    day          1000000 of 1000000  ████████████████████ 100%  3d2h

1 of 5 key and model pairs read no rate limits:
  revoked gpt-4o-mini (openai): unauthorized: HTTP 401 (invalid_api_key)
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
	if report.OK {
		t.Error("the report is OK with a revoked key")
	}
}

func TestJSON(t *testing.T) {
	report := run(t, &fakeProber{answers: testAnswers()})
	var out strings.Builder
	if err := Write(&out, "json", report); err != nil {
		t.Fatal(err)
	}
	var got struct {
		GeneratedAt time.Time `json:"generated_at"`
		OK          *bool     `json:"ok"`
		Targets     []map[string]any
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatal(err)
	}
	if !got.GeneratedAt.Equal(probeTime.Add(500*time.Millisecond)) || got.OK == nil || *got.OK || len(got.Targets) != 5 {
		t.Fatalf("generated_at %s, ok %v, %d targets:\n%s", got.GeneratedAt, got.OK, len(got.Targets), out.String())
	}
	first, _ := json.Marshal(got.Targets[0])
	const want = `{"key":"alpha","model":"llama-3.3-70b","ok":true,"provider":"cerebras","read_at":"2026-11-22T12:00:00Z","result":"success","source":"probe","status_code":200,"windows":[{"current":true,"limit":1000,"read_at":"2026-11-22T12:00:00Z","remaining":250,"reset_seconds":42.5,"resets_at":"2026-11-22T12:00:42.5Z","resource":"requests","source":"probe","window":"minute"},` +
		`{"current":false,"limit":60000,"read_at":"2026-11-22T12:00:00Z","remaining":0,"reset_seconds":0.006,"resets_at":"2026-11-22T12:00:00.006Z","resource":"tokens","source":"probe","window":""}]}`
	if string(first) != want {
		t.Errorf("first target:\n%s\nwant\n%s", first, want)
	}
	revoked, _ := json.Marshal(got.Targets[2])
	if want := `{"error":"HTTP 401 (invalid_api_key)","key":"revoked","model":"gpt-4o-mini","ok":false,"provider":"openai","result":"unauthorized","status_code":401,"windows":[]}`; string(revoked) != want {
		t.Errorf("revoked target:\n%s\nwant\n%s", revoked, want)
	}
	router, _ := json.Marshal(got.Targets[3]["windows"])
	if want := `[{"current":true,"limit":25,"read_at":"2026-11-22T12:00:00Z","remaining":12.5,"resource":"credits","source":"probe","window":"month"}]`; string(router) != want {
		t.Errorf("a window without a reset: %s, want %s", router, want)
	}
	if err := Write(&out, "xml", report); err == nil || err.Error() != `--output="xml": want one of table, json` {
		t.Errorf("an unknown format: %v", err)
	}
}

func TestAllOK(t *testing.T) {
	answers := testAnswers()
	delete(answers, "revoked")
	cfg := testConfig()
	cfg.Keys = cfg.Keys[:3]
	report := Run(context.Background(), cfg, &fakeProber{answers: answers}, func() time.Time { return probeTime })
	if !report.OK {
		t.Error("not OK when every probe read rate limits")
	}
	var out strings.Builder
	if err := Write(&out, "table", report); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "\nAll 4 key and model pairs read their rate limits.\n") {
		t.Errorf("table ends:\n%s", out.String())
	}
}

// Probes run at most probe.concurrency at a time, each with probe.timeout.
func TestConcurrencyAndTimeout(t *testing.T) {
	p := &fakeProber{answers: testAnswers(), release: make(chan struct{})}
	done := make(chan snapshot.Report)
	go func() { done <- run(t, p) }()
	// Each release waits until the slots are full: the probes that
	// could start have started. Before the first, a third probe has 100ms
	// to show itself; correct code never has one, so the wait can only
	// make the test fail when the bound is broken.
	for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline) && p.inFlight.Load() <= 2; {
		runtime.Gosched()
	}
	for left := 5; left > 0; left-- {
		for deadline := time.Now().Add(10 * time.Second); p.inFlight.Load() < int64(min(left, 2)); {
			if time.Now().After(deadline) {
				t.Fatalf("%d probes in flight with %d to go, want 2", p.inFlight.Load(), left)
			}
			runtime.Gosched()
		}
		p.release <- struct{}{}
	}
	<-done
	if got := p.maxSeen.Load(); got != 2 {
		t.Errorf("%d probes in flight at most, want probe.concurrency, 2", got)
	}
	for _, d := range p.deadlines {
		if d > 7*time.Second || d < 6*time.Second {
			t.Errorf("a probe had %s left, want probe.timeout, 7s", d)
		}
	}
}

func TestResetsIn(t *testing.T) {
	for _, tc := range []struct {
		seconds float64
		want    string
	}{
		{-3, "now"}, {0.0004, "now"}, {0.006, "6ms"}, {1.4, "1s"}, {200, "3m20s"}, {3600, "1h0m"}, {5*3600 + 12*60 + 40, "5h13m"},
		{2*86400 + 3*3600, "2d3h"},
	} {
		at := probeTime.Add(time.Duration(tc.seconds * float64(time.Second)))
		if got := resetsIn(snapshot.Window{ResetsAt: &at}, probeTime); got != tc.want {
			t.Errorf("%vs: %q, want %q", tc.seconds, got, tc.want)
		}
	}
}

func TestBar(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		remaining, limit *float64
		want             string
	}{
		{f(5), f(10), "██████████░░░░░░░░░░  50%"},
		{f(12), f(10), "████████████████████ 100%"},
		{f(-1), f(10), "░░░░░░░░░░░░░░░░░░░░   0%"},
		{f(0), f(0), ""},
		{f(3), nil, ""},
		{nil, f(3), ""},
	} {
		if got := bar(snapshot.Window{Remaining: tc.remaining, Limit: tc.limit}); got != tc.want {
			t.Errorf("bar(%v of %v) = %q, want %q", tc.remaining, tc.limit, got, tc.want)
		}
	}
}

// --config.check says which keys are probed apart from probe.interval: a
// key's own probe_interval, and Gemini's hour.
func TestConfigCommandShowsOwnIntervals(t *testing.T) {
	cfg, err := config.Parse([]byte(`probe: {interval: 1m}
keys:
  - {name: fast, provider: cerebras, api_key: sk-a, probe_interval: 10s}
  - {name: gem, provider: gemini, api_key: AIza-b}
  - {name: plain, provider: cerebras, api_key: sk-c}
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if code := ConfigCommand(func() (*config.Config, error) { return cfg, nil }, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := "Config is valid: 3 keys, 3 key and model pairs to probe, interval mode, every 1m0s\n" +
		"  fast: cerebras https://api.cerebras.ai/v1, models [llama3.1-8b], every 10s\n" +
		"  gem: gemini https://generativelanguage.googleapis.com/v1beta, models [gemini-3.5-flash-lite], every 1h0m0s\n" +
		"  plain: cerebras https://api.cerebras.ai/v1, models [llama3.1-8b]\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
