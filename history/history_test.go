package history

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

var (
	noisy = config.TargetID{Key: "noisy", Model: "m"}
	rare  = config.TargetID{Key: "rare", Model: "m"}
	at    = time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
)

func probeEntry(id config.TargetID, outcome prober.Outcome) *Entry {
	return &Entry{Source: Probe, Target: id, Provider: "openai", Started: at, Result: prober.Result{Outcome: outcome}}
}

func ids(entries []*Entry) []uint64 {
	var out []uint64
	for _, e := range entries {
		out = append(out, e.ID)
	}
	return out
}

// A target's last failed probe is kept apart from the recent probes: a
// thousand successes of another target push it out of those, not out of
// the history, and its log stays one click away.
func TestFailureSurvivesSuccessesOfAnother(t *testing.T) {
	h := New(DefaultLimit)
	h.Configure([]config.TargetID{noisy, rare})
	failure := probeEntry(rare, prober.Unauthorized)
	h.Add(failure)
	for range 1000 {
		h.Add(probeEntry(noisy, prober.Success))
	}
	if recent := h.Recent(); len(recent) != DefaultLimit || recent[0].ID != 1001 || recent[len(recent)-1].ID != 902 {
		t.Fatalf("recent probes %v, want 1001 down to 902", ids(recent))
	}
	if got, ok := h.Latest(rare); !ok || got != failure {
		t.Errorf("rare's latest probe: %v %v, want its failure", got, ok)
	}
	if got, ok := h.Get(failure.ID); !ok || got != failure {
		t.Errorf("Get(%d): %v %v, want the failure", failure.ID, got, ok)
	}
	if got := h.Failures(); len(got) != 1 || got[0] != failure {
		t.Errorf("failures %v, want rare's", ids(got))
	}
	// A success of rare does not forget its failure; a later failure replaces it.
	h.Add(probeEntry(rare, prober.Success))
	if got, _ := h.Latest(rare); got.ID != 1002 {
		t.Errorf("rare's latest probe %d, want its success 1002", got.ID)
	}
	later := probeEntry(rare, prober.Timeout)
	h.Add(later)
	if got := h.Failures(); len(got) != 1 || got[0] != later {
		t.Errorf("failures %v, want rare's later one", ids(got))
	}
	// A refusal read from the proxy's traffic is no failed probe: it
	// replaces nothing.
	h.Add(&Entry{Source: Proxy, Target: rare, Provider: "openai", Started: at, Result: prober.Result{Reading: ratelimit.Reading{Time: at, StatusCode: 429}}})
	if got := h.Failures(); len(got) != 1 || got[0] != later {
		t.Errorf("failures %v after a proxy's refusal, want rare's last failed probe", ids(got))
	}
}

// The history keeps limit entries, newest first; an entry gone from it is
// not found; 0 keeps none, but still each target's last failure.
func TestHistoryBound(t *testing.T) {
	h := New(3)
	h.Configure([]config.TargetID{noisy})
	for range 10 {
		h.Add(probeEntry(noisy, prober.Success))
	}
	if got := ids(h.Recent()); fmt.Sprint(got) != "[10 9 8]" {
		t.Errorf("recent %v, want [10 9 8]", got)
	}
	for id, kept := range map[uint64]bool{0: false, 7: false, 8: true, 10: true, 11: false} {
		if _, ok := h.Get(id); ok != kept {
			t.Errorf("Get(%d): kept %v, want %v", id, ok, kept)
		}
	}

	off := New(0)
	off.Configure([]config.TargetID{noisy})
	off.Add(probeEntry(noisy, prober.Success))
	failure := probeEntry(noisy, prober.RateLimited)
	off.Add(failure)
	off.Add(probeEntry(noisy, prober.Success))
	if got := off.Recent(); len(got) != 0 {
		t.Errorf("history off keeps %v", ids(got))
	}
	if got, ok := off.Latest(noisy); !ok || got != failure {
		t.Errorf("history off: latest %v %v, want the failure", got, ok)
	}
}

// A reload drops what the history holds of targets it removed: their
// failures, probes and the proxy's readings of their keys. A target never
// configured keeps no failure.
func TestConfigureDropsRemovedTargets(t *testing.T) {
	h := New(10)
	h.Configure([]config.TargetID{noisy, rare})
	h.Add(probeEntry(rare, prober.Unauthorized))
	h.Add(&Entry{Source: Proxy, Target: config.TargetID{Key: "rare", Model: "other"}, Result: prober.Result{Reading: ratelimit.Reading{StatusCode: 429}}})
	h.Add(probeEntry(noisy, prober.Success))
	h.Add(probeEntry(config.TargetID{Key: "gone", Model: "m"}, prober.Timeout))
	h.Add(probeEntry(config.TargetID{Key: "noisy", Model: "removed"}, prober.Success)) // a model removed from a key kept
	h.Configure([]config.TargetID{noisy})
	if got := ids(h.Recent()); fmt.Sprint(got) != "[3]" {
		t.Errorf("recent %v, want [3]: noisy's probe alone", got)
	}
	if _, ok := h.Latest(rare); ok {
		t.Error("rare's failure kept after a reload removed it")
	}
	if got := h.Failures(); len(got) != 0 {
		t.Errorf("failures %v, want none", ids(got))
	}
}

// A target's latest probe is a probe: a proxy reading of its key and
// model since then is not what /probe?debug=true shows.
func TestLatestIsAProbe(t *testing.T) {
	h := New(10)
	h.Configure([]config.TargetID{noisy})
	probe := probeEntry(noisy, prober.Success)
	h.Add(probe)
	h.Add(&Entry{Source: Proxy, Target: noisy, Result: prober.Result{Reading: ratelimit.Reading{StatusCode: 200}}})
	if got, ok := h.Latest(noisy); !ok || got != probe {
		t.Errorf("latest: %v %v, want the probe %d", got, ok, probe.ID)
	}
}

// A probe's log ends with what it made of the schedule: the hold, the
// backoff, the stretched interval and the next probe.
func TestEntryLogSchedule(t *testing.T) {
	e := probeEntry(noisy, prober.RateLimited)
	e.Result.Time = at
	e.Schedule = Schedule{Mode: "scrape", Timeout: time.Second, HoldUntil: at.Add(time.Minute), Failures: 2, BackoffUntil: at.Add(2 * time.Minute),
		Interval: time.Hour, StretchedBy: "requests/day", Next: at.Add(time.Hour)}
	var out strings.Builder
	e.WriteLog(&out)
	for _, want := range []string{
		`msg="Holding off probes as the provider asked" until=2026-12-05T04:01:00Z`,
		`msg="Backing off after failures" failures=2 until=2026-12-05T04:02:00Z`,
		`msg="Probe interval stretched to keep probes within max_quota_share" interval=1h0m0s window=requests/day`,
		`msg="Next probe due" mode=scrape at=2026-12-05T05:00:00Z sent="the next scrape from then on"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, out.String())
		}
	}
	e.Schedule = Schedule{Mode: "scrape", Next: at.Add(time.Hour), HoldUntil: at, BackoffUntil: at.Add(-time.Second)}
	out.Reset()
	e.WriteLog(&out)
	for _, gone := range []string{"Holding off", "Backing off", "stretched"} {
		if strings.Contains(out.String(), gone) {
			t.Errorf("a hold and a backoff over by the probe's end, and no stretch, are logged:\n%s", out.String())
		}
	}
}

// A proxy reading that ends after a reload removed its key is not kept,
// as the collector drops it: the reload has dropped the key's entries, and
// none may come back. A key known by its fingerprint is kept until the
// next reload, as the collector keeps it.
func TestProxyReadingOfRemovedKeyIsDropped(t *testing.T) {
	h := New(10)
	h.Configure([]config.TargetID{noisy, rare})
	h.Configure([]config.TargetID{noisy})
	reading := prober.Result{Reading: ratelimit.Reading{StatusCode: 200}}
	h.Add(&Entry{Source: Proxy, Target: rare, Result: reading})
	h.Add(&Entry{Source: Proxy, Target: config.TargetID{Key: "noisy", Model: "unlisted"}, Result: reading})
	h.Add(&Entry{Source: Proxy, Target: config.TargetID{Key: config.FingerprintPrefix + "0123456789ab", Model: "m"}, Result: reading})
	var kept []string
	for _, e := range h.Recent() {
		kept = append(kept, e.Target.Key+"/"+e.Target.Model)
	}
	if got, want := fmt.Sprint(kept), "[sha256:0123456789ab/m noisy/unlisted]"; got != want {
		t.Errorf("kept %s, want %s", got, want)
	}
}

// An entry's log is rendered when read, from what the probe kept, with
// the key hidden; a proxy reading shows what it read and no headers.
func TestEntryLog(t *testing.T) {
	const canary = "sk-test-canary-history-5d1e"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	e := failedProbe(t, prober.New("ratelimit_exporter/test"), srv.URL, canary)
	e.Schedule = Schedule{Mode: "interval", Timeout: 5 * time.Second, HoldUntil: e.Result.Time.Add(30 * time.Second), Next: e.Result.Time.Add(30 * time.Second)}
	var out strings.Builder
	e.WriteLog(&out)
	for _, want := range []string{
		`msg="Beginning probe" key=k model=gpt-4o-mini provider=openai timeout=5s`,
		`msg="Request header" name=Authorization value=<redacted>`,
		`msg="Response header" name=X-Echo value="Bearer <redacted>"`,
		`msg="Probe ended" result=rate_limited`,
		`msg="Holding off probes as the provider asked" until=`,
		`msg="Next probe due" mode=interval`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), canary) {
		t.Errorf("the log shows the key:\n%s", out.String())
	}

	proxied := &Entry{Source: Proxy, Target: config.TargetID{Key: "k", Model: "gpt-4o"}, Provider: "openai", Started: at,
		Result: prober.Result{Reading: ratelimit.Reading{Time: at, StatusCode: 200, Observations: []ratelimit.Observation{{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 9}}}}}
	out.Reset()
	proxied.WriteLog(&out)
	want := `ts=2026-12-05T04:00:00Z msg="Reading of proxied traffic" key=k model=gpt-4o provider=openai
msg="Response read by the proxy" status=200 at=2026-12-05T04:00:00Z
msg="Observation read" kind=remaining resource=requests window=minute value=9
msg="Reading ended" result=success
`
	if out.String() != want {
		t.Errorf("proxy reading's log:\n%s\nwant:\n%s", out.String(), want)
	}
}

// failedProbe probes url with key as key k's model gpt-4o-mini.
func failedProbe(t testing.TB, p *prober.Prober, url, key string) *Entry {
	tg := (&config.Config{Keys: []config.Key{{Name: "k", Provider: "openai", APIKey: config.Secret(key), BaseURL: url + "/v1", Models: []string{"gpt-4o-mini"}}}}).Targets()[0]
	r := p.Probe(context.Background(), tg)
	if r.Outcome == prober.Success {
		t.Fatalf("the probe of %s succeeded", url)
	}
	return &Entry{Source: Probe, Target: tg.ID(), Provider: "openai", Started: r.Time.Add(-r.Duration), Result: r}
}

// The last failure of each of 1,000 targets, each a real probe's refusal
// with a provider's usual headers, costs a few kilobytes a target.
func TestMemoryOfFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Retry-After", "20")
		h.Set("X-Request-Id", "req_0123456789abcdef0123456789abcdef")
		h.Set("Openai-Processing-Ms", "12")
		h.Set("X-Ratelimit-Limit-Requests", "10000")
		h.Set("X-Ratelimit-Remaining-Requests", "0")
		h.Set("X-Ratelimit-Reset-Requests", "6ms")
		h.Set("X-Ratelimit-Limit-Tokens", "2000000")
		h.Set("X-Ratelimit-Remaining-Tokens", "0")
		h.Set("X-Ratelimit-Reset-Tokens", "20s")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`))
	}))
	defer srv.Close()
	const targets = 1000
	p := prober.New("ratelimit_exporter/test")
	failedProbe(t, p, srv.URL, "sk-test-warm") // the connection pool, before the count
	h, heap := heapOfFailures(t, p, srv.URL, targets)
	t.Logf("%d failures kept, %d recent: heap %+d bytes, %d a target", len(h.Failures()), len(h.Recent()), heap, heap/targets)
	if len(h.Failures()) != targets {
		t.Fatalf("%d failures kept, want %d", len(h.Failures()), targets)
	}
	if heap > 8<<10*targets {
		t.Errorf("%d bytes a target kept, want under 8 KiB", heap/targets)
	}
	runtime.KeepAlive(h)
}

// BenchmarkAdd is what the proxy pays for each reading it records.
func BenchmarkAdd(b *testing.B) {
	h := New(DefaultLimit)
	h.Configure([]config.TargetID{noisy})
	r := ratelimit.Reading{Time: at, StatusCode: 200, Observations: []ratelimit.Observation{{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 9}}}
	b.ReportAllocs()
	for range b.N {
		h.Add(&Entry{Source: Proxy, Target: noisy, Provider: "openai", Started: at, Result: prober.Result{Reading: r}})
	}
}

// An upstream that answers every probe with a megabyte of headers and a
// long status line costs the history a bounded amount a target: the
// failures of 100 targets, each kept apart, stay under 64 KiB each.
func TestMemoryOfHostileFailures(t *testing.T) {
	filler := strings.Repeat("x", 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 900 {
			w.Header().Set(fmt.Sprintf("X-Filler-%03d", i), filler)
		}
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	const targets = 100
	p := prober.New("ratelimit_exporter/test")
	if e := failedProbe(t, p, srv.URL, "sk-test-warm"); e.Result.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the upstream's answer was not read: %s", e.Result.Failure())
	}
	h, heap := heapOfFailures(t, p, srv.URL, targets)
	t.Logf("%d failures kept: heap %+d bytes, %d a target", len(h.Failures()), heap, heap/targets)
	if heap > 64<<10*targets {
		t.Errorf("%d bytes a target kept, want under 64 KiB", heap/targets)
	}
	var log strings.Builder
	h.Failures()[0].WriteLog(&log)
	if !strings.Contains(log.String(), "not kept") {
		t.Errorf("the log does not say that headers were left out:\n%.2000s", log.String())
	}
	runtime.KeepAlive(h)
}

// A history costs what it keeps, not its limit: --history.limit set far
// beyond what a process holds allocates nothing up front, and keeps and
// finds its entries as any other.
func TestHugeLimitCostsWhatItKeeps(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := New(1 << 40)
	h.Configure([]config.TargetID{noisy})
	for range 3 {
		h.Add(probeEntry(noisy, prober.Success))
	}
	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 1<<20 {
		t.Errorf("a history of limit 2^40 with 3 entries allocated %d bytes", allocated)
	}
	if got := ids(h.Recent()); fmt.Sprint(got) != "[3 2 1]" {
		t.Errorf("recent %v, want [3 2 1]", got)
	}
	if e, ok := h.Get(1); !ok || e.ID != 1 {
		t.Errorf("Get(1) = %v, %v", e, ok)
	}
	if e, ok := h.Latest(noisy); !ok || e.ID != 3 {
		t.Errorf("Latest = %v, %v", e, ok)
	}
	if h.Limit() != 1<<40 {
		t.Errorf("Limit() = %d", h.Limit())
	}
	runtime.KeepAlive(h)
}

// heapOfFailures keeps the failed probe of each of that many targets, each
// a probe of url, and returns the history and the heap it grew by.
func heapOfFailures(t *testing.T, p *prober.Prober, url string, targets int) (*History, int64) {
	t.Helper()
	configured := make([]config.TargetID, targets)
	for i := range configured {
		configured[i] = config.TargetID{Key: fmt.Sprintf("k%04d", i), Model: "gpt-4o-mini"}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := New(DefaultLimit)
	h.Configure(configured)
	for i := range targets {
		e := failedProbe(t, p, url, fmt.Sprintf("sk-test-%04d", i))
		e.Target = configured[i]
		h.Add(e)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return h, int64(after.HeapAlloc) - int64(before.HeapAlloc)
}
