package adminpoll

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Admin keys of the tests: they must show nowhere.
const (
	openAIAdminKey    = "sk-admin-test-canary-poll-6f2a"
	anthropicAdminKey = "sk-ant-admin01-test-canary-poll-91c0"
)

var start = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// call is one SetConfigured, its windows written out.
type call struct {
	key, windows string
	at           time.Time
}

// recorder notes what the poller gives the collector.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) SetConfigured(source collector.ConfiguredSource, key string, byModel map[string][]ratelimit.Window, at time.Time) {
	if source != collector.SourceAdminAPI {
		panic("the poller set another source than the admin API")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{key, render(byModel), at})
}

// since returns the calls after the first n.
func (r *recorder) since(n int) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls[n:])
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// render writes windows as "model resource/window=limit ...", sorted.
func render(byModel map[string][]ratelimit.Window) string {
	var parts []string
	li := ratelimit.KindIndex[ratelimit.Limit]
	for model, windows := range byModel {
		for _, w := range windows {
			parts = append(parts, fmt.Sprintf("%s %s/%s=%g", model, w.Resource, w.Window, w.Values[li]))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// sent is an admin request as the simulators saw it.
type sent struct {
	at   time.Time // on the fake clock
	path string
}

type fixture struct {
	t         *testing.T
	clock     *clockwork.FakeClock
	openai    *simulator.Simulator
	anthropic *simulator.Simulator
	url       string
	rec       *recorder
	logs      *testkit.SyncBuffer
	p         *Poller

	mu   sync.Mutex
	sent []sent
	// gate, if set, holds each request whose path ends in gatePath
	// until it is closed, after saying so on arrived.
	gate, arrived chan struct{}
	gatePath      string
}

// The limits the simulators' admin APIs list.
var (
	openAILimits = []simulator.AdminLimit{
		{Models: []string{"gpt-4o-mini"}, Values: map[string]float64{"max_requests_per_1_minute": 500, "max_tokens_per_1_minute": 200000, "max_requests_per_1_day": 10000}},
		{Models: []string{"o3"}, Values: map[string]float64{"max_requests_per_1_minute": 50, "max_tokens_per_1_minute": 30000}},
	}
	openAIWindows = "gpt-4o-mini requests/day=10000; gpt-4o-mini requests/minute=500; gpt-4o-mini tokens/minute=200000; o3 requests/minute=50; o3 tokens/minute=30000"
	anthropicOrg  = []simulator.AdminLimit{
		{Models: []string{"claude-sonnet-4-5", "claude-sonnet-4-5-20250929"}, Values: map[string]float64{"requests_per_minute": 4000, "input_tokens_per_minute": 2e6}},
		{Models: []string{"claude-haiku-4-5"}, Values: map[string]float64{"requests_per_minute": 4000, "output_tokens_per_minute": 800000}},
		{Group: "batch", Values: map[string]float64{"requests_per_minute": 1000}},
		{Group: "web_search", Values: map[string]float64{"tool_uses_per_second": 30}},
	}
	anthropicWorkspace = []simulator.AdminLimit{
		{Models: []string{"claude-sonnet-4-5", "claude-sonnet-4-5-20250929"}, Values: map[string]float64{"requests_per_minute": 100}},
	}
)

// newFixture runs a poller against the OpenAI and Anthropic simulators'
// admin APIs, on a fake clock, with the config cfg (see configText).
func newFixture(t *testing.T, cfg string) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: clockwork.NewFakeClockAt(start), rec: &recorder{}, logs: &testkit.SyncBuffer{},
		openai: simulator.NewDialect(simulator.OpenAI), anthropic: simulator.NewDialect(simulator.Anthropic)}
	f.openai.SetAdminLimits(openAIAdminKey, "proj_abc", openAILimits...)
	f.openai.SetAdminLimits(openAIAdminKey, "proj_new", openAILimits[1:]...)
	f.anthropic.SetAdminLimits(anthropicAdminKey, "", anthropicOrg...)
	f.anthropic.SetAdminLimits(anthropicAdminKey, "wrkspc_01", anthropicWorkspace...)
	mux := http.NewServeMux()
	mux.Handle("/openai/", f.openai)
	mux.Handle("/anthropic/", f.anthropic)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.sent = append(f.sent, sent{f.clock.Now(), r.URL.Path})
		gate, arrived, gated := f.gate, f.arrived, f.gate != nil && strings.HasSuffix(r.URL.Path, f.gatePath)
		f.mu.Unlock()
		if gated {
			arrived <- struct{}{}
			<-gate
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	f.p = newPoller(f.rec, log.NewLogfmtLogger(f.logs), f.clock)
	t.Cleanup(f.p.Stop)
	if err := f.apply(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

// configText fills a config's %[1]s with the simulators' URL and its
// %[2]s and %[3]s with the admin keys.
func (f *fixture) configText(text string) string {
	return strings.NewReplacer("%[1]s", f.url, "%[2]s", openAIAdminKey, "%[3]s", anthropicAdminKey).Replace(text)
}

// apply gives the poller the config text (see configText) and waits until
// it settles.
func (f *fixture) apply(text string) error {
	f.t.Helper()
	cfg, err := config.Parse([]byte(f.configText(text)), "test.yml")
	if err != nil {
		f.t.Fatal(err)
	}
	plan, err := f.p.Prepare(cfg)
	if err != nil {
		return err
	}
	f.p.Use(plan)
	f.settle()
	return nil
}

// settle waits until the poller has nothing left to do at the fake clock's
// present. Time does not move meanwhile, so the wait decides nothing; it
// only fails the test if the poller never settles.
func (f *fixture) settle() {
	f.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f.p.settled(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			f.t.Fatal("the poller did not settle within 10s")
		}
	}
}

// advance moves the fake clock by d, stopping at each time a source asked
// to wake at, so that every read goes out at the time it is due.
func (f *fixture) advance(d time.Duration) {
	f.t.Helper()
	end := f.clock.Now().Add(d)
	for {
		wake, now := f.p.nextWake(), f.clock.Now()
		if wake.IsZero() || wake.After(end) {
			f.clock.Advance(end.Sub(now))
			f.settle()
			return
		}
		f.clock.Advance(wake.Sub(now))
		f.settle()
	}
}

// sentTo returns when requests whose path ends in suffix were sent, as
// offsets from start.
func (f *fixture) sentTo(suffix string) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var at []time.Duration
	for _, s := range f.sent {
		if strings.HasSuffix(s.path, suffix) {
			at = append(at, s.at.Sub(start))
		}
	}
	return at
}

func durations(ds ...string) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i], _ = time.ParseDuration(d)
	}
	return out
}

const openAIConfig = `admin:
  - {name: oai, provider: openai, admin_key: %[2]s, base_url: '%[1]s/openai/v1', interval: %[4]s}
keys:
  - {name: prod, provider: openai, api_key: sk-test-poll-prod, admin: oai, project: proj_abc}
`

func openAI(interval string) string { return strings.Replace(openAIConfig, "%[4]s", interval, 1) }

const projectPath = "/organization/projects/proj_abc/rate_limits"

// A source reads at once, then every interval after the last read, and
// gives each key its project's limits, per model and window.
func TestReadsAtOnceThenEveryInterval(t *testing.T) {
	f := newFixture(t, openAI("1h"))
	if got := f.rec.since(0); len(got) != 1 || got[0] != (call{"prod", openAIWindows, start}) {
		t.Fatalf("calls %+v, want prod's limits at the start", got)
	}
	f.advance(time.Hour - time.Second)
	if got := f.sentTo(projectPath); !slices.Equal(got, durations("0s")) {
		t.Errorf("read at %v before an hour passed, want at 0s only", got)
	}
	f.advance(time.Second)
	f.advance(2 * time.Hour)
	if got := f.sentTo(projectPath); !slices.Equal(got, durations("0s", "1h", "2h", "3h")) {
		t.Errorf("read at %v, want every hour", got)
	}
	if got := f.rec.since(0); len(got) != 4 || got[3] != (call{"prod", openAIWindows, start.Add(3 * time.Hour)}) {
		t.Errorf("calls %+v, want prod's limits every hour", got)
	}
	want := `# HELP ratelimit_admin_success Whether the last read of an admin API worked (rate_limits: every project or workspace the keys name).
# TYPE ratelimit_admin_success gauge
ratelimit_admin_success{admin="oai",api="rate_limits",provider="openai"} 1
# HELP ratelimit_admin_last_success_timestamp_seconds When an admin API was last read without an error (Unix seconds); what it read then is what is shown.
# TYPE ratelimit_admin_last_success_timestamp_seconds gauge
ratelimit_admin_last_success_timestamp_seconds{admin="oai",api="rate_limits",provider="openai"} 1.7953596e+09
` // start + 3h
	if err := testutil.CollectAndCompare(f.p, strings.NewReader(want), "ratelimit_admin_success", "ratelimit_admin_last_success_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	if got := testkit.Value(t, f.p, "ratelimit_admin_requests_total", "admin", "oai", "api", "rate_limits", "result", "success"); got != 4 {
		t.Errorf("%v successful requests, want 4", got)
	}
	if problems, err := testutil.CollectAndLint(f.p); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// A model group's limits go to each of its models, aliases included; a
// workspace's own values replace the organization's and the ones it
// inherits stay; groups of API surfaces (batch, web_search) have no model
// and are left out.
func TestAnthropicGroupsAndWorkspaces(t *testing.T) {
	f := newFixture(t, `admin:
  - {name: ant, provider: anthropic, admin_key: %[3]s, base_url: '%[1]s/anthropic'}
keys:
  - {name: team, provider: anthropic, api_key: sk-test-poll-team, admin: ant, workspace: wrkspc_01}
  - {name: org, provider: anthropic, api_key: sk-test-poll-org, admin: ant}
`)
	calls := f.rec.since(0)
	slices.SortFunc(calls, func(a, b call) int { return strings.Compare(a.key, b.key) })
	want := []call{
		{"org", "claude-haiku-4-5 output_tokens/minute=800000; claude-haiku-4-5 requests/minute=4000; " +
			"claude-sonnet-4-5 input_tokens/minute=2e+06; claude-sonnet-4-5 requests/minute=4000; " +
			"claude-sonnet-4-5-20250929 input_tokens/minute=2e+06; claude-sonnet-4-5-20250929 requests/minute=4000", start},
		{"team", "claude-haiku-4-5 output_tokens/minute=800000; claude-haiku-4-5 requests/minute=4000; " +
			"claude-sonnet-4-5 input_tokens/minute=2e+06; claude-sonnet-4-5 requests/minute=100; " +
			"claude-sonnet-4-5-20250929 input_tokens/minute=2e+06; claude-sonnet-4-5-20250929 requests/minute=100", start},
	}
	if !slices.Equal(calls, want) {
		t.Errorf("calls\n%+v\nwant\n%+v", calls, want)
	}
	if e, _ := f.anthropic.LastExchange(anthropicAdminKey); e.Path != "/anthropic/v1/organizations/workspaces/wrkspc_01/rate_limits" || e.Query != "include_inherited=true" {
		t.Errorf("last request %s?%s, want the workspace's with what it inherits", e.Path, e.Query)
	}
}

// A failed read keeps what the last good one said, and the next read
// backs off: 30s, then twice as long after each failure, up to the
// interval; once a read works again, reads are an interval apart. The
// warning names the source and the result, never the key.
func TestFailureKeepsTheLastReadAndBacksOff(t *testing.T) {
	f := newFixture(t, openAI("5m"))
	f.openai.SetAdminFault(openAIAdminKey, http.StatusInternalServerError, 0)
	f.advance(5 * time.Minute) // fails at 5m
	if n := f.rec.count(); n != 1 {
		t.Errorf("%d calls after a failed read, want the first one alone: a failure never clears the limits", n)
	}
	if got := testkit.Value(t, f.p, "ratelimit_admin_success", "admin", "oai", "api", "rate_limits"); got != 0 {
		t.Errorf("ratelimit_admin_success = %v after a failure, want 0", got)
	}
	f.advance(15 * time.Minute)
	want := durations("0s", "5m", "5m30s", "6m30s", "8m30s", "12m30s", "17m30s")
	if got := f.sentTo(projectPath); !slices.Equal(got, want) {
		t.Errorf("read at %v, want %v", got, want)
	}
	f.openai.SetAdminFault(openAIAdminKey, 0, 0)
	f.advance(10 * time.Minute) // works at 22m30s, then at 27m30s
	want = append(want, durations("22m30s", "27m30s")...)
	if got := f.sentTo(projectPath); !slices.Equal(got, want) {
		t.Errorf("read at %v, want %v", got, want)
	}
	if got := f.rec.since(1); len(got) != 2 || got[0] != (call{"prod", openAIWindows, start.Add(22*time.Minute + 30*time.Second)}) {
		t.Errorf("calls after the failures: %+v", got)
	}
	for result, want := range map[string]float64{"success": 3, "http_error": 6} {
		if got := testkit.Value(t, f.p, "ratelimit_admin_requests_total", "admin", "oai", "api", "rate_limits", "result", result); got != want {
			t.Errorf("%v %s requests, want %v", got, result, want)
		}
	}
	logs := f.logs.String()
	for _, line := range []string{
		`level=warn msg="Reading an admin API failed; what it last read is kept" admin=oai api=rate_limits scope=proj_abc result=http_error err="openai project rate limits: page 1: HTTP 500: unexpected status" retry_in=30s`,
		// The same failure again: at debug.
		`level=debug msg="Reading an admin API failed; what it last read is kept" admin=oai api=rate_limits scope=proj_abc result=http_error err="openai project rate limits: page 1: HTTP 500: unexpected status" retry_in=5m0s`,
		`level=info msg="Reading an admin API works again" admin=oai api=rate_limits failures=6`,
	} {
		if !strings.Contains(logs, line) {
			t.Errorf("the logs lack %s:\n%s", line, logs)
		}
	}
	if n := strings.Count(logs, "level=warn"); n != 1 {
		t.Errorf("%d warnings for six failures of one kind in a row, want 1:\n%s", n, logs)
	}
	if strings.Contains(logs, openAIAdminKey) {
		t.Errorf("the logs hold the admin key:\n%s", logs)
	}
}

// A reload to a shorter interval shortens a backoff that has grown past
// it: the backoff never waits longer than the interval.
func TestShorterIntervalShortensTheBackoff(t *testing.T) {
	f := newFixture(t, openAI("1h"))
	f.openai.SetAdminFault(openAIAdminKey, http.StatusInternalServerError, 0)
	f.advance(time.Hour + 32*time.Minute) // fails at 1h, then 30s, 1m, ... 32m later
	want := durations("0s", "1h", "1h0m30s", "1h1m30s", "1h3m30s", "1h7m30s", "1h15m30s", "1h31m30s")
	if got := f.sentTo(projectPath); !slices.Equal(got, want) {
		t.Fatalf("read at %v, want %v", got, want)
	}
	if err := f.apply(openAI("5m")); err != nil {
		t.Fatal(err)
	}
	f.advance(6 * time.Minute)
	if got := f.sentTo(projectPath); !slices.Equal(got, append(want, durations("1h36m30s")...)) {
		t.Errorf("read at %v, want the next 5m after the last failure (1h36m30s), not 32m", got)
	}
}

// A Retry-After holds the next read back, beyond the backoff and the
// interval, and a reload that changes nothing of the key does not go
// around it; a new admin key reads at once.
func TestRetryAfterHoldsReadsBack(t *testing.T) {
	f := newFixture(t, openAI("5m"))
	f.openai.SetAdminFault(openAIAdminKey, http.StatusTooManyRequests, 20*time.Minute)
	f.advance(5 * time.Minute)
	f.openai.SetAdminFault(openAIAdminKey, 0, 0)
	// A reload with a project never read: it waits for the hold too.
	if err := f.apply(openAI("10m") + "  - {name: fresh, provider: openai, api_key: sk-test-poll-fresh, admin: oai, project: proj_new}\n"); err != nil {
		t.Fatal(err)
	}
	f.advance(25 * time.Minute)
	want := durations("0s", "5m", "25m")
	if got := f.sentTo(projectPath); !slices.Equal(got, want) {
		t.Errorf("read at %v, want %v: not before Retry-After's 20 minutes", got, want)
	}
	if got := f.sentTo("/proj_new/rate_limits"); !slices.Equal(got, durations("25m")) {
		t.Errorf("the new project read at %v, want at 25m, when the hold ends", got)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "result=rate_limited err=\"openai project rate limits: page 1: HTTP 429: rate limited (retry after 20m0s)\" retry_in=20m0s") {
		t.Errorf("the logs lack the wait:\n%s", logs)
	}
	if got := testkit.Value(t, f.p, "ratelimit_admin_requests_total", "admin", "oai", "api", "rate_limits", "result", "rate_limited"); got != 1 {
		t.Errorf("%v rate_limited requests, want 1", got)
	}

	f.openai.SetAdminFault(openAIAdminKey, http.StatusTooManyRequests, time.Hour)
	f.advance(10 * time.Minute) // 40m: refused, held until 1h40m
	const other = "sk-admin-test-canary-poll-other-5d5e"
	f.openai.SetAdminLimits(other, "proj_abc", openAILimits...)
	f.openai.SetAdminLimits(other, "proj_new", openAILimits...)
	if err := f.apply(strings.Replace(openAI("10m"), "%[2]s", other, 1) + "  - {name: fresh, provider: openai, api_key: sk-test-poll-fresh, admin: oai, project: proj_new}\n"); err != nil {
		t.Fatal(err)
	}
	want = append(want, durations("35m", "40m")...)
	if got := f.sentTo(projectPath); !slices.Equal(got, want) {
		t.Errorf("read at %v, want %v: another key reads at once", got, want)
	}
}

// A reload that keeps a source keeps what it read and gives it at once to
// a key that names its project now; a project never read is read at once;
// a key that no longer names the source loses its limits; a new interval
// counts from the last read.
func TestReloads(t *testing.T) {
	f := newFixture(t, openAI("1h"))
	f.advance(10 * time.Minute)
	n := f.rec.count()
	twoKeys := openAI("1h") + "  - {name: prod2, provider: openai, api_key: sk-test-poll-prod2, admin: oai, project: proj_abc}\n"
	if err := f.apply(twoKeys); err != nil {
		t.Fatal(err)
	}
	calls := f.rec.since(n)
	slices.SortFunc(calls, func(a, b call) int { return strings.Compare(a.key, b.key) })
	if want := []call{{"prod", openAIWindows, start}, {"prod2", openAIWindows, start}}; !slices.Equal(calls, want) {
		t.Errorf("calls at the reload: %+v, want the first read's, given to both keys", calls)
	}
	if got := f.sentTo(projectPath); len(got) != 1 {
		t.Errorf("read at %v: a reload that names a project read already reads nothing", got)
	}

	n = f.rec.count()
	if err := f.apply(twoKeys + "  - {name: fresh, provider: openai, api_key: sk-test-poll-fresh, admin: oai, project: proj_new}\n"); err != nil {
		t.Fatal(err)
	}
	if got := f.sentTo("/proj_new/rate_limits"); !slices.Equal(got, durations("10m")) {
		t.Errorf("the new project read at %v, want at once", got)
	}
	var fresh []call
	for _, c := range f.rec.since(n) {
		if c.key == "fresh" {
			fresh = append(fresh, c)
		}
	}
	if want := []call{{"fresh", "o3 requests/minute=50; o3 tokens/minute=30000", start.Add(10 * time.Minute)}}; !slices.Equal(fresh, want) {
		t.Errorf("the new key's calls: %+v, want %+v", fresh, want)
	}

	n = f.rec.count()
	if err := f.apply(strings.Replace(twoKeys, "admin: oai, project: proj_abc}\n  - {name: prod2", "}\n  - {name: prod2", 1)); err != nil {
		t.Fatal(err)
	}
	if got := f.rec.since(n); !slices.Contains(got, call{"prod", "", start.Add(10 * time.Minute)}) {
		t.Errorf("calls %+v: the key that left the source keeps its limits", got)
	}

	// The last read was at 10m: with 2h, the next is at 2h10m.
	if err := f.apply(strings.Replace(twoKeys, "interval: 1h", "interval: 2h", 1)); err != nil {
		t.Fatal(err)
	}
	f.advance(2 * time.Hour)
	if got := f.sentTo(projectPath); !slices.Equal(got, durations("0s", "10m", "2h10m")) {
		t.Errorf("read at %v, want 0s, 10m (the new project's reload) and 2h10m", got)
	}
	f.p.mu.Lock()
	_, stale := f.p.sources["oai"].limits["proj_new"]
	f.p.mu.Unlock()
	if stale {
		t.Error("a project no key names any more is still kept")
	}
}

// A reload that drops a project while its read is in flight: the read,
// once done, is not kept, so that a key naming the project again has it
// read at once rather than take the old read for current.
func TestReloadDropsAProjectInFlight(t *testing.T) {
	f := newFixture(t, openAI("1h"))
	f.mu.Lock()
	f.gate, f.arrived, f.gatePath = make(chan struct{}), make(chan struct{}, 1), "/proj_new/rate_limits"
	f.mu.Unlock()
	use := func(text string) {
		cfg, err := config.Parse([]byte(f.configText(text)), "test.yml")
		if err != nil {
			t.Fatal(err)
		}
		plan, err := f.p.Prepare(cfg)
		if err != nil {
			t.Fatal(err)
		}
		f.p.Use(plan)
	}
	withNew := openAI("1h") + "  - {name: fresh, provider: openai, api_key: sk-test-poll-fresh, admin: oai, project: proj_new}\n"
	use(withNew)
	<-f.arrived
	use(openAI("1h"))
	close(f.gate)
	f.settle()
	f.p.mu.Lock()
	_, kept := f.p.sources["oai"].limits["proj_new"]
	f.p.mu.Unlock()
	if kept {
		t.Error("the read of a project the reload dropped was kept")
	}
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	if err := f.apply(withNew); err != nil {
		t.Fatal(err)
	}
	if got := f.sentTo("/proj_new/rate_limits"); len(got) != 2 {
		t.Errorf("proj_new read at %v: named again, it is read again at once", got)
	}
}

// A key that moves to a project not read yet loses the old project's
// limits at once, even if the new one's read fails.
func TestKeyMovesToAnotherProject(t *testing.T) {
	f := newFixture(t, openAI("1h"))
	n := f.rec.count()
	if err := f.apply(strings.Replace(openAI("1h"), "project: proj_abc", "project: proj_gone", 1)); err != nil {
		t.Fatal(err)
	}
	if got := f.rec.since(n); !slices.Equal(got, []call{{"prod", "", start}}) {
		t.Errorf("calls %+v: the key that moved keeps its old project's limits", got)
	}
	if got := f.sentTo("/proj_gone/rate_limits"); !slices.Equal(got, durations("0s")) {
		t.Errorf("the new project read at %v, want at once", got)
	}
}

// A reload that changes where the key goes reads at once; one that
// removes the source stops it, and its series go.
func TestReloadNewBaseURLAndRemoval(t *testing.T) {
	f := newFixture(t, openAI("1h"))
	f.advance(time.Minute)
	if err := f.apply(strings.Replace(openAI("1h"), "/openai/v1", "/openai/v1/", 1)); err != nil {
		t.Fatal(err)
	}
	if got := f.sentTo(projectPath); len(got) != 1 {
		t.Errorf("read at %v: the same base_url, spelt with a trailing /, is no change", got)
	}
	if err := f.apply(strings.Replace(openAI("1h"), "%[1]s/openai/v1", "http://127.0.0.1:1/v1", 1)); err != nil {
		t.Fatal(err)
	}
	if got := testkit.Value(t, f.p, "ratelimit_admin_requests_total", "admin", "oai", "api", "rate_limits", "result", "network_error"); got != 1 {
		t.Errorf("%v network errors, want one read at once at the new base_url", got)
	}
	if err := f.apply(`keys:
  - {name: prod, provider: openai, api_key: sk-test-poll-prod}
`); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(f.p); n != 0 {
		t.Errorf("%d series of a source no longer configured", n)
	}
	before := len(f.sentTo(""))
	f.advance(3 * time.Hour)
	if after := len(f.sentTo("")); after != before {
		t.Errorf("%d requests after the source was removed", after-before)
	}
}

// Stop ends every read; nothing is read after, and a config given after
// starts nothing.
func TestStop(t *testing.T) {
	f := newFixture(t, openAI("5m"))
	stopped := make(chan struct{})
	go func() {
		f.p.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second): // a deadline only: Stop returns at once when it works
		t.Fatal("Stop did not return")
	}
	cfg, err := config.Parse([]byte(f.configText(openAI("5m"))), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := f.p.Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.p.Use(plan)
	f.clock.Advance(time.Hour)
	if got := f.sentTo(""); len(got) != 1 {
		t.Errorf("requests at %v, want the first alone", got)
	}
	if n := f.rec.count(); n != 1 {
		t.Errorf("%d calls, want the first alone: a config given after Stop gives nothing", n)
	}
}

// A bad http_client refuses the config before anything changes.
func TestPrepareRefusesABadClient(t *testing.T) {
	f := newFixture(t, openAI("1h"))
	cfg, err := config.Parse([]byte(f.configText(openAI("1h"))), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin[0].HTTPClient.TLSConfig.CAFile = "/nonexistent/ca.pem" // gone since the config loaded
	if _, err := f.p.Prepare(cfg); err == nil || !strings.HasPrefix(err.Error(), "admin oai: http_client: ") {
		t.Errorf("Prepare: %v", err)
	}
}

// Sources says how each source's last read of its rate limits went, scope
// by scope, with the errors, which never hold the admin key; a source of
// costs alone is not listed, and one with a scope not read yet is not OK.
func TestSources(t *testing.T) {
	f := newFixture(t, `admin:
  - {name: oai, provider: openai, admin_key: %[2]s, base_url: '%[1]s/openai/v1', interval: 1h}
  - {name: ant, provider: anthropic, admin_key: %[3]s, base_url: '%[1]s/anthropic', interval: 1h}
  - {name: spend, provider: openai, admin_key: sk-admin-test-canary-poll-spend-3b7e, base_url: '%[1]s/openai/v1', budgets: [{monthly: 500}]}
keys:
  - {name: prod, provider: openai, api_key: sk-test-poll-prod, admin: oai, project: proj_abc}
  - {name: org, provider: anthropic, api_key: sk-test-poll-org, admin: ant}
  - {name: gone, provider: anthropic, api_key: sk-test-poll-gone, admin: ant, workspace: wrkspc_gone}
`)
	want := `[{"name":"ant","provider":"anthropic","ok":false,"read":[""],"failed":[{"scope":"wrkspc_gone","error":"anthropic workspace rate limits: page 1: HTTP 404: not found"}],"read_at":"2026-11-22T12:00:00Z"},` +
		`{"name":"oai","provider":"openai","ok":true,"read":["proj_abc"],"read_at":"2026-11-22T12:00:00Z"}]`
	got, err := json.Marshal(f.p.Sources())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("sources\n%s\nwant\n%s", got, want)
	}

	// A refused admin key: every scope fails, and the error says so
	// without the key. ant, failing since 12:00, backs off: its last read
	// was at 12:31:30.
	f.anthropic.SetAdminFault(anthropicAdminKey, http.StatusUnauthorized, 0)
	f.openai.SetAdminFault(openAIAdminKey, http.StatusUnauthorized, 0)
	f.advance(time.Hour)
	got, _ = json.Marshal(f.p.Sources())
	want = `[{"name":"ant","provider":"anthropic","ok":false,"read":[],"failed":[{"scope":"","error":"anthropic organization rate limits: page 1: HTTP 401: the admin key was refused"},` +
		`{"scope":"wrkspc_gone","error":"anthropic workspace rate limits: page 1: HTTP 401: the admin key was refused"}],"read_at":"2026-11-22T12:31:30Z"},` +
		`{"name":"oai","provider":"openai","ok":false,"read":[],"failed":[{"scope":"proj_abc","error":"openai project rate limits: page 1: HTTP 401: the admin key was refused"}],"read_at":"2026-11-22T13:00:00Z"}]`
	if string(got) != want {
		t.Errorf("sources\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(string(got), openAIAdminKey) || strings.Contains(string(got), anthropicAdminKey) {
		t.Errorf("the sources hold an admin key: %s", got)
	}

	// A project a reload adds, while its first read is in flight: neither
	// read nor failed, and the source is not OK. (oai read again at
	// 13:00:30, after its backoff.)
	f.openai.SetAdminFault(openAIAdminKey, 0, 0)
	f.advance(time.Hour)
	f.mu.Lock()
	f.gate, f.arrived, f.gatePath = make(chan struct{}), make(chan struct{}, 1), "/proj_new/rate_limits"
	f.mu.Unlock()
	cfg, err := config.Parse([]byte(f.configText(openAI("1h")+"  - {name: fresh, provider: openai, api_key: sk-test-poll-fresh, admin: oai, project: proj_new}\n")), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := f.p.Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.p.Use(plan)
	<-f.arrived
	got, _ = json.Marshal(f.p.Sources())
	if want := `[{"name":"oai","provider":"openai","ok":false,"read":["proj_abc"],"read_at":"2026-11-22T13:00:30Z"}]`; string(got) != want {
		t.Errorf("sources while a new project is read\n%s\nwant\n%s", got, want)
	}
	close(f.gate)
	f.settle()
	got, _ = json.Marshal(f.p.Sources())
	if want := `[{"name":"oai","provider":"openai","ok":true,"read":["proj_abc","proj_new"],"read_at":"2026-11-22T14:00:00Z"}]`; string(got) != want {
		t.Errorf("sources once read\n%s\nwant\n%s", got, want)
	}
}
