package tally

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// publication is one Publish call, written as text: one line per window,
// "model resource/window limit=L [remaining=R] reset=S", sorted.
type publication struct {
	key, text string
	at        time.Time
}

// publisher keeps what the tally publishes, and hands each publication to
// the test that waits for it.
type publisher struct {
	mu   sync.Mutex
	all  []publication
	sent chan publication
}

func newPublisher() *publisher { return &publisher{sent: make(chan publication, 1000)} }

func (p *publisher) Publish(key string, byModel map[string][]ratelimit.Window, at time.Time) {
	limit, remaining, reset := ratelimit.KindIndex[ratelimit.Limit], ratelimit.KindIndex[ratelimit.Remaining], ratelimit.KindIndex[ratelimit.Reset]
	var lines []string
	for model, windows := range byModel {
		for _, w := range windows {
			line := fmt.Sprintf("%s %s/%s limit=%g", model, w.Resource, w.Window, w.Values[limit])
			if w.Has[remaining] {
				line += fmt.Sprintf(" remaining=%g", w.Values[remaining])
			}
			if !w.Has[limit] || !w.Has[reset] {
				line += " (no limit or reset)"
			}
			lines = append(lines, line+fmt.Sprintf(" reset=%g", w.Values[reset]))
		}
	}
	slices.Sort(lines)
	pub := publication{key: key, text: strings.Join(lines, "\n"), at: at}
	p.mu.Lock()
	p.all = append(p.all, pub)
	p.mu.Unlock()
	p.sent <- pub
}

// last returns the last publication of key, or fails.
func (p *publisher) last(t *testing.T, key string) publication {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.all) - 1; i >= 0; i-- {
		if p.all[i].key == key {
			return p.all[i]
		}
	}
	t.Fatalf("nothing published of %s", key)
	return publication{}
}

// count returns how many publications of key there were.
func (p *publisher) count(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pub := range p.all {
		if pub.key == key {
			n++
		}
	}
	return n
}

// await waits for the timer's publication of key at the time at: the timer
// runs in a goroutine of its own. The deadline only bounds a failing test.
func (p *publisher) await(t *testing.T, key string, at time.Time) publication {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case pub := <-p.sent:
			if pub.key == key && pub.at.Equal(at) {
				return pub
			}
		case <-deadline:
			t.Fatalf("no publication of %s at %s", key, at)
		}
	}
}

// drain forgets what was handed over so far.
func (p *publisher) drain() {
	for {
		select {
		case <-p.sent:
		default:
			return
		}
	}
}

func parse(t *testing.T, keys string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("keys:\n"+keys+`proxy:
  routes:
    - {path_prefix: /deepseek/, upstream: "https://api.deepseek.com", provider: deepseek}
    - {path_prefix: /gemini/, upstream: "https://generativelanguage.googleapis.com", provider: gemini}
`), "tally.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func checkText(t *testing.T, what string, got publication, want string) {
	t.Helper()
	want = strings.Trim(want, "\n")
	if got.text != want {
		t.Errorf("%s:\ngot\n%s\nwant\n%s", what, got.text, want)
	}
}

// A window's limit and end are published from the start; what is left only
// once a whole window has been counted, so that the first, partial window
// never shows as more than it has left. Windows are fixed and aligned to
// the epoch: minutes on the minute, hours on the hour.
func TestEstimateAfterAWholeWindow(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 22, 12, 0, 30, 0, time.UTC))
	pub := newPublisher()
	tl := New(clock, pub)
	defer tl.Stop()
	tl.Apply(parse(t, `  - name: g
    provider: gemini
    api_key: sk-test-tally-g
    models: [m]
    limits:
      - {resource: requests, window: minute, limit: 10}
      - {resource: input_tokens, window: hour, limit: 1000}
`))
	checkText(t, "at the start", pub.last(t, "g"), `
m input_tokens/hour limit=1000 reset=3570
m requests/minute limit=10 reset=30`)

	tl.Count("g", "m", Spent{Requests: 1, InputTokens: 40})
	tl.Count("g", "m", Spent{Requests: 1, InputTokens: 2})
	checkText(t, "counted in the first window", pub.last(t, "g"), `
m input_tokens/hour limit=1000 reset=3570
m requests/minute limit=10 reset=30`)

	pub.drain()
	clock.Advance(30 * time.Second) // 12:01:00, the minute's end
	checkText(t, "the first minute ended", pub.await(t, "g", clock.Now()), `
m input_tokens/hour limit=1000 reset=3540
m requests/minute limit=10 remaining=10 reset=60`)

	clock.Advance(15 * time.Second) // 12:01:15
	tl.Count("g", "m", Spent{Requests: 1, InputTokens: 7})
	tl.Count("g", "m", Spent{Requests: 1})
	tl.Count("g", "other", Spent{Requests: 1}) // a model that declares nothing
	checkText(t, "counted in a whole minute", pub.last(t, "g"), `
m input_tokens/hour limit=1000 reset=3525
m requests/minute limit=10 remaining=8 reset=45`)

	pub.drain()
	clock.Advance(58*time.Minute + 45*time.Second) // 13:00:00: both windows end
	checkText(t, "the first hour ended", pub.await(t, "g", clock.Now()), `
m input_tokens/hour limit=1000 remaining=1000 reset=3600
m requests/minute limit=10 remaining=10 reset=60`)

	tl.Count("g", "m", Spent{Requests: 1, InputTokens: 1001})
	checkText(t, "past the limit: nothing left, not less", pub.last(t, "g"), `
m input_tokens/hour limit=1000 remaining=0 reset=3600
m requests/minute limit=10 remaining=9 reset=60`)
}

// A day window starts at midnight UTC, and longer ones at multiples of
// their length since the epoch.
func TestWindowsAlignToTheEpoch(t *testing.T) {
	at := time.Date(2026, 11, 22, 23, 59, 59, 500e6, time.UTC)
	clock := clockwork.NewFakeClockAt(at)
	pub := newPublisher()
	tl := New(clock, pub)
	defer tl.Stop()
	tl.Apply(parse(t, `  - name: d
    provider: deepseek
    api_key: sk-test-tally-d
    limits:
      - {resource: requests, window: 1d, limit: 100}
      - {resource: tokens, window: 7d, limit: 1000}
      - {resource: output_tokens, window: 10s, limit: 5}
`))
	// 2026-11-26 is a Thursday, as 1970-01-01 was: 7d windows start then.
	week := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC).Sub(at).Seconds()
	checkText(t, "ends", pub.last(t, "d"), fmt.Sprintf(`
 output_tokens/10s limit=5 reset=0.5
 requests/day limit=100 reset=0.5
 tokens/7d limit=1000 reset=%g`, week))
	if got := align(time.Unix(-1, 0), 10*time.Second); !got.Equal(time.Unix(-10, 0)) {
		t.Errorf("align before the epoch: %s, want %s", got, time.Unix(-10, 0).UTC())
	}
}

// A key whose one model is "" (a provider probed once per key) counts all
// its traffic, whatever the model; a named model counts its own.
func TestPerKeyLimitsCountEveryModel(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	pub := newPublisher()
	tl := New(clock, pub)
	defer tl.Stop()
	tl.Apply(parse(t, `  - name: d
    provider: deepseek
    api_key: sk-test-tally-d
    limits:
      - {resource: requests, window: minute, limit: 10}
      - {model: deepseek-reasoner, resource: output_tokens, window: minute, limit: 500}
`))
	tl.Count("d", "deepseek-chat", Spent{Requests: 1, OutputTokens: 30})
	tl.Count("d", "deepseek-reasoner", Spent{Requests: 1, OutputTokens: 70})
	tl.Count("d", "", Spent{Requests: 1})
	checkText(t, "counted", pub.last(t, "d"), `
 requests/minute limit=10 remaining=7 reset=60
deepseek-reasoner output_tokens/minute limit=500 remaining=430 reset=60`)

	want := `# HELP ratelimit_proxy_usage_total What the proxy counted of the traffic of keys that declare limits, by resource: requests served (2xx), and the input, output and total tokens their usage reports.
# TYPE ratelimit_proxy_usage_total counter
ratelimit_proxy_usage_total{key="d",model="",provider="deepseek",resource="input_tokens"} 0
ratelimit_proxy_usage_total{key="d",model="",provider="deepseek",resource="output_tokens"} 100
ratelimit_proxy_usage_total{key="d",model="",provider="deepseek",resource="requests"} 3
ratelimit_proxy_usage_total{key="d",model="",provider="deepseek",resource="tokens"} 0
ratelimit_proxy_usage_total{key="d",model="deepseek-reasoner",provider="deepseek",resource="input_tokens"} 0
ratelimit_proxy_usage_total{key="d",model="deepseek-reasoner",provider="deepseek",resource="output_tokens"} 70
ratelimit_proxy_usage_total{key="d",model="deepseek-reasoner",provider="deepseek",resource="requests"} 1
ratelimit_proxy_usage_total{key="d",model="deepseek-reasoner",provider="deepseek",resource="tokens"} 0
`
	if err := testutil.CollectAndCompare(tl, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(tl); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// A reload that keeps a key and its window keeps what it counted, whatever
// the new limit; a window of another length starts anew; a key that
// declares nothing any more is published empty; a key that left is
// forgotten.
func TestReloadKeepsCounts(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	pub := newPublisher()
	tl := New(clock, pub)
	defer tl.Stop()
	key := func(limits string) string {
		return "  - {name: g, provider: gemini, api_key: sk-test-tally-g, models: [m], limits: [" + limits + "]}\n"
	}
	tl.Apply(parse(t, key(`{resource: requests, window: minute, limit: 10}, {resource: input_tokens, window: minute, limit: 100}`)))
	tl.Count("g", "m", Spent{Requests: 1, InputTokens: 5})
	clock.Advance(10 * time.Second)
	tl.Apply(parse(t, key(`{resource: requests, window: 60s, limit: 20}, {resource: input_tokens, window: hour, limit: 100}`)))
	checkText(t, "the limit changed, and a window's length", pub.last(t, "g"), `
m input_tokens/hour limit=100 reset=3590
m requests/minute limit=20 remaining=19 reset=50`)

	tl.Apply(parse(t, "  - {name: g, provider: gemini, api_key: sk-test-tally-g, models: [m]}\n"))
	if got := pub.last(t, "g"); got.text != "" {
		t.Errorf("a key that declares nothing any more: published %q, want nothing", got.text)
	}
	n := pub.count("g")
	tl.Apply(parse(t, "  - {name: other, provider: gemini, api_key: sk-test-tally-o, models: [m]}\n"))
	tl.Count("g", "m", Spent{Requests: 1})
	if pub.count("g") != n {
		t.Error("a key that left the config was published")
	}
	tl.Apply(parse(t, key(`{resource: requests, window: minute, limit: 10}`)))
	checkText(t, "a key that came back starts anew", pub.last(t, "g"), `m requests/minute limit=10 reset=50`)
	if err := testutil.CollectAndCompare(tl, strings.NewReader(`# HELP ratelimit_proxy_usage_total What the proxy counted of the traffic of keys that declare limits, by resource: requests served (2xx), and the input, output and total tokens their usage reports.
# TYPE ratelimit_proxy_usage_total counter
ratelimit_proxy_usage_total{key="g",model="m",provider="gemini",resource="input_tokens"} 0
ratelimit_proxy_usage_total{key="g",model="m",provider="gemini",resource="output_tokens"} 0
ratelimit_proxy_usage_total{key="g",model="m",provider="gemini",resource="requests"} 0
ratelimit_proxy_usage_total{key="g",model="m",provider="gemini",resource="tokens"} 0
`)); err != nil {
		t.Errorf("the usage of a key that came back: %v", err)
	}
}

// countingClock counts the timers set and neither fired nor stopped.
type countingClock struct {
	*clockwork.FakeClock
	live atomic.Int64
}

func (c *countingClock) AfterFunc(d time.Duration, f func()) clockwork.Timer {
	c.live.Add(1)
	return &countedTimer{c.FakeClock.AfterFunc(d, func() { c.live.Add(-1); f() }), c}
}

type countedTimer struct {
	clockwork.Timer
	c *countingClock
}

func (t *countedTimer) Stop() bool {
	stopped := t.Timer.Stop()
	if stopped {
		t.c.live.Add(-1)
	}
	return stopped
}

// One timer serves every key and window, and each Apply replaces it:
// however many configs were applied, one timer is set, and a window's end
// publishes the key once.
func TestOneTimerAcrossReloads(t *testing.T) {
	clock := &countingClock{FakeClock: clockwork.NewFakeClockAt(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))}
	pub := newPublisher()
	tl := New(clock, pub)
	cfg := parse(t, "  - {name: g, provider: gemini, api_key: sk-test-tally-g, models: [m], limits: [{resource: requests, window: second, limit: 1}]}\n"+
		"  - {name: h, provider: gemini, api_key: sk-test-tally-h, models: [m, n], limits: [{resource: requests, window: minute, limit: 1}, {resource: tokens, window: 31d, limit: 1}]}\n")
	for range 5 {
		tl.Apply(cfg)
	}
	if live := clock.live.Load(); live != 1 {
		t.Errorf("%d timers set, want 1", live)
	}
	n := pub.count("g")
	pub.drain()
	clock.Advance(time.Second)
	pub.await(t, "g", clock.Now())
	// The timer set for the next second waits for it: nothing else fired.
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if got := pub.count("g") - n; got != 1 {
		t.Errorf("%d publications at the window's end, want 1", got)
	}
	tl.Stop()
	if live := clock.live.Load(); live != 0 {
		t.Errorf("%d timers left after Stop", live)
	}
}

// A wall clock set back (NTP stepping a clock that ran fast) starts the
// window the new time is in: what was counted after the old time is not
// carried into it, its reset is never more than its length, and what is
// left shows again once a whole window has been counted since the step.
func TestClockSetBack(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 22, 12, 0, 30, 0, time.UTC))
	pub := newPublisher()
	tl := New(clock, pub)
	defer tl.Stop()
	tl.Apply(parse(t, "  - {name: g, provider: gemini, api_key: sk-test-tally-g, models: [m], limits: [{resource: requests, window: minute, limit: 10}]}\n"))
	clock.Advance(40 * time.Second) // 12:01:10: a whole minute is counted
	tl.Count("g", "m", Spent{Requests: 3})
	checkText(t, "before the step", pub.last(t, "g"), `m requests/minute limit=10 remaining=7 reset=50`)

	clock.Advance(-time.Hour) // 11:01:10
	tl.Count("g", "m", Spent{Requests: 1})
	checkText(t, "after the step", pub.last(t, "g"), `m requests/minute limit=10 reset=50`)

	pub.drain()
	clock.Advance(50 * time.Second) // 11:02:00: the first minute after the step ends
	checkText(t, "a whole minute after the step", pub.await(t, "g", clock.Now()), `m requests/minute limit=10 remaining=10 reset=60`)
}
