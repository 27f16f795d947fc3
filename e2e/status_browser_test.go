package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ratelimit-exporter/ratelimit_exporter/demo"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// The status page's policy, spelled out so that a weaker one fails.
const statusPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// The status page of the demo, in Debian's chromium driven by chromedp:
// it loads with no console error, exception or policy violation; it shows
// every key and model; each bar is the share left that /metrics gives; the
// order is the documented one; the countdowns move, the script refreshes
// the page while it is shown and never while hidden; and no demo key is in
// the DOM or in any response the page loaded.
func TestStatusPageInABrowser(t *testing.T) {
	chromium := testkit.RequireTool(t, "chromium")
	e := start(t, nil, "--demo")
	// Every probed target's first probe, the proxy's and the admin API's
	// first readings.
	e.waitForWithin(t, 20*time.Second,
		`ratelimit_probe_success{key="prod",model="llama3.1-8b",`,
		`ratelimit_probe_success{key="prod",model="llama-3.3-70b",`,
		`ratelimit_probe_success{key="trial",`,
		`ratelimit_probe_success{key="router",`,
		`ratelimit_probe_success{key="revoked",`,
		`ratelimit_probe_success{key="ptu",`,
		`ratelimit_probe_success{key="wallet",`,
		`ratelimit_observations_total{key="assistant",model="claude-haiku-4-5",provider="anthropic",source="proxy"} `,
		`ratelimit_admin_success{admin="claude-org",api="rate_limits",provider="anthropic"} 1`,
	)
	b := openBrowser(t, chromium)

	// The bars against /metrics read just before and just after the page:
	// the proxy reads the assistant's traffic every second, so a value may
	// move in between; each bar must be one of the two. A value that moved
	// twice costs another try.
	var last []string
	var shown statusView
	eventually(t, 30*time.Second, "the bars match /metrics", func() error {
		before := e.shown(t)
		b.do(t, chromedp.Navigate(e.URL+"/status"))
		shown = b.view(t)
		after := e.shown(t)
		if last = compareBars(shown, before, after); len(last) > 0 {
			return fmt.Errorf("%d differences:\n%s", len(last), strings.Join(last, "\n"))
		}
		return nil
	})
	if len(shown.Targets) == 0 {
		t.Fatal("the page shows no key")
	}

	// Every key and model: those /sd lists, and every one with series.
	_, sd := e.get(t, "/sd")
	var groups []struct{ Labels map[string]string }
	if err := json.Unmarshal([]byte(sd), &groups); err != nil {
		t.Fatal(err)
	}
	onPage := map[[2]string]bool{}
	for _, target := range shown.Targets {
		onPage[[2]string{target.Key, target.Model}] = true
		model := target.Model
		if model == "" {
			model = "every model"
		}
		if !strings.Contains(target.Heading, target.Key) || !strings.Contains(target.Heading, model) {
			t.Errorf("heading %q does not name key %q and model %q", target.Heading, target.Key, model)
		}
	}
	for _, g := range groups {
		if id := [2]string{g.Labels["key"], g.Labels["model"]}; !onPage[id] {
			t.Errorf("the page lacks /sd's key %q model %q", id[0], id[1])
		}
	}
	for id := range e.shown(t).targets {
		if !onPage[id] {
			t.Errorf("the page lacks key %q model %q, which /metrics has", id[0], id[1])
		}
	}
	if len(onPage) != len(shown.Targets) {
		t.Errorf("%d sections for %d keys and models", len(shown.Targets), len(onPage))
	}
	checkOrder(t, shown)

	// The countdowns move (the script's, not the server's: refreshes wait
	// for the test, see heldTimers), and say how long is left.
	first := b.view(t)
	eventually(t, 15*time.Second, "a countdown moves", func() error {
		now := b.view(t)
		if now.GeneratedAt != first.GeneratedAt {
			return fmt.Errorf("the page refreshed on its own, from %s to %s", first.GeneratedAt, now.GeneratedAt)
		}
		if now.countdowns() == first.countdowns() {
			return fmt.Errorf("no countdown moved: %s", first.countdowns())
		}
		checkCountdowns(t, now, time.Now())
		return nil
	})
	if !strings.HasPrefix(first.Note, "Refreshes every 5 seconds") {
		t.Errorf("refresh note %q", first.Note)
	}

	// Time for a refresh: the one timer pending fetches the page, which
	// schedules the next.
	b.refresh(t, "shown, its refresh timer fetches the page", "testTimers.fire()", 1)
	if n := b.timers(t); n != 1 {
		t.Errorf("shown, %d refresh timers are pending after a refresh; want 1", n)
	}
	// Hidden, the page cancels its refresh: however much time passes,
	// nothing fetches it.
	b.setHidden(t, true)
	if n := b.timers(t); n != 0 {
		t.Errorf("hidden, %d refresh timers are pending; want none", n)
	}
	// Shown again, it refreshes at once; hidden while that refresh is
	// under way, it schedules no other once the refresh lands.
	b.refresh(t, "shown again, the page refreshes at once", "window.testHidden = false; document.dispatchEvent(new Event('visibilitychange')); testTimers.fire()", 0)
	b.refresh(t, "a refresh lands while the page is hidden", "(() => { const fired = testTimers.fire(); window.testHidden = true; document.dispatchEvent(new Event('visibilitychange')); return fired; })()", 1)
	if n := b.timers(t); n != 0 {
		t.Errorf("hidden while a refresh was under way, %d refresh timers are pending once it landed; want none", n)
	}
	if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int]("testTimers.fire() + testTimers.hiddenFetches")); err != nil || n != 0 {
		t.Errorf("hidden, the page has %d refresh timers or fetches (%v); want none", n, err)
	}
	b.setHidden(t, false)

	// No key anywhere: in the DOM, or in any response the page loaded.
	html, err := chromedp.Run(b.ctx, chromedp.OuterHTML("html"))
	if err != nil {
		t.Fatal(err)
	}
	b.loaded.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	texts := map[string]string{"the DOM": html}
	for i, r := range b.responses {
		texts[fmt.Sprintf("response %d (%s)", i, r.url)] = string(r.body)
	}
	for _, key := range []string{demo.ProdKey, demo.TrialKey, demo.RevokedKey, demo.AnthropicKey, demo.RouterKey, demo.AzureKey, demo.DeepSeekKey, demo.AdminKey} {
		for where, text := range texts {
			if strings.Contains(text, key) || strings.Contains(text, key[:14]) {
				t.Errorf("%s holds a demo key (%s...)", where, key[:10])
			}
		}
	}
	loads := map[string]int{}
	for _, r := range b.responses {
		loads[strings.TrimPrefix(r.url, e.URL)]++
		if r.err != nil {
			t.Errorf("reading the response of %s: %v", r.url, r.err)
		}
		if r.url == e.URL+"/status" && r.policy != statusPolicy {
			t.Errorf("/status's Content-Security-Policy = %q, want %q", r.policy, statusPolicy)
		}
	}
	if loads["/status"] < 2 || loads["/status.css"] < 1 || loads["/status.js"] < 1 {
		t.Errorf("the page loaded %v; want /status, /status.css, /status.js and a refresh", loads)
	}
	for _, m := range b.console {
		t.Errorf("console: %s", m)
	}
	bars := 0
	for _, target := range shown.Targets {
		for _, w := range target.Windows {
			if w.Bar != nil {
				bars++
			}
		}
	}
	t.Logf("%d keys and models, %d bars as /metrics has them; responses loaded: %v", len(shown.Targets), bars, loads)
}

// statusView is what the page shows, read in one evaluation.
type statusView struct {
	GeneratedAt string
	Note        string
	Targets     []struct {
		Key, Model, Heading string
		Failing             bool
		Windows             []struct {
			Resource, Window string
			Bar              *float64
			ResetsAt, Reset  string
		}
	}
}

const readStatus = `(() => {
  const root = document.getElementById('status');
  return {
    GeneratedAt: root.dataset.generatedAt,
    Note: document.getElementById('refresh-note').textContent,
    Targets: Array.from(root.querySelectorAll('section.target')).map(s => ({
      Key: s.dataset.key, Model: s.dataset.model, Heading: s.querySelector('h2').innerText,
      Failing: s.classList.contains('failing'),
      Windows: Array.from(s.querySelectorAll('tr.window')).map(r => {
        const meter = r.querySelector('meter'), reset = r.querySelector('[data-resets-at]');
        return {
          Resource: r.dataset.resource, Window: r.dataset.window,
          Bar: meter ? meter.value : null,
          ResetsAt: reset ? reset.dataset.resetsAt : '', Reset: reset ? reset.textContent : '',
        };
      }),
    })),
  };
})()`

// countdowns is the text of every countdown, in page order.
func (v statusView) countdowns() string {
	var texts []string
	for _, t := range v.Targets {
		for _, w := range t.Windows {
			if w.ResetsAt != "" {
				texts = append(texts, w.Reset)
			}
		}
	}
	return strings.Join(texts, "|")
}

// windowID is a window of a key and model: key, model, resource, window.
type windowID [4]string

// compareBars returns how the page's bars differ from the shares left that
// /metrics gives, read before and after the page.
func compareBars(v statusView, before, after shownByMetrics) []string {
	var diffs []string
	seen := map[windowID]bool{}
	for _, target := range v.Targets {
		for _, w := range target.Windows {
			if w.Bar == nil {
				continue
			}
			id := windowID{target.Key, target.Model, w.Resource, w.Window}
			seen[id] = true
			b, inBefore := before.shares[id]
			a, inAfter := after.shares[id]
			if !(inBefore && near(*w.Bar, b) || inAfter && near(*w.Bar, a)) {
				diffs = append(diffs, fmt.Sprintf("%v: bar %v, /metrics gives %v before and %v after", id, *w.Bar, show(b, inBefore), show(a, inAfter)))
			}
		}
	}
	for id, share := range before.shares {
		if _, inAfter := after.shares[id]; inAfter && !seen[id] {
			diffs = append(diffs, fmt.Sprintf("%v: no bar, /metrics gives %v", id, share))
		}
	}
	return diffs
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9 }

func show(v float64, ok bool) string {
	if !ok {
		return "nothing"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// shownByMetrics is what /metrics says the status page should show.
type shownByMetrics struct {
	// shares is the share left of each window: the remaining (else the
	// estimate) of the limit, else one less the utilization.
	shares map[windowID]float64
	// targets are the keys and models with series.
	targets map[[2]string]bool
}

func (e *exporter) shown(t *testing.T) shownByMetrics {
	t.Helper()
	_, body := e.get(t, "/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	labelsOf := func(m *dto.Metric) map[string]string {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		return labels
	}
	values := func(name string) map[windowID]float64 {
		out := map[windowID]float64{}
		for _, m := range families[name].GetMetric() {
			l := labelsOf(m)
			out[windowID{l["key"], l["model"], l["resource"], l["window"]}] = m.GetGauge().GetValue()
		}
		return out
	}
	remaining, estimate, limit, utilization := values("ratelimit_remaining"), values("ratelimit_remaining_estimate"), values("ratelimit_limit"), values("ratelimit_utilization")
	out := shownByMetrics{shares: map[windowID]float64{}, targets: map[[2]string]bool{}}
	for id, l := range limit {
		r, ok := remaining[id]
		if !ok {
			r, ok = estimate[id]
		}
		if ok && l > 0 {
			out.shares[id] = math.Min(math.Max(r/l, 0), 1)
		}
	}
	for id, u := range utilization {
		if _, ok := out.shares[id]; !ok {
			out.shares[id] = math.Min(math.Max(1-u, 0), 1)
		}
	}
	for name, f := range families {
		if !strings.HasPrefix(name, "ratelimit_") {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labelsOf(m)
			if key, ok := l["key"]; ok {
				if model, ok := l["model"]; ok {
					out.targets[[2]string{key, model}] = true
				}
			}
		}
	}
	return out
}

// checkOrder checks the order the page states: failing targets first,
// then the least left in any window first, then those with no bar; in a
// target, the window with the least left first.
func checkOrder(t *testing.T, v statusView) {
	t.Helper()
	failingDone, least := false, -1.0
	for _, target := range v.Targets {
		if target.Failing {
			if failingDone {
				t.Errorf("failing %s/%s comes after a target that is not failing", target.Key, target.Model)
			}
			continue
		}
		failingDone = true
		share, previous, bars := math.Inf(1), -1.0, true // no bar: last
		for _, w := range target.Windows {
			switch {
			case w.Bar == nil:
				bars = false
				continue
			case !bars || *w.Bar < previous:
				t.Errorf("%s/%s: window %s/%s, %v left, comes after one with more left or none known", target.Key, target.Model, w.Resource, w.Window, *w.Bar)
			}
			previous, share = *w.Bar, math.Min(share, *w.Bar)
		}
		if share < least {
			t.Errorf("%s/%s, with %v left, comes after a target with %v left", target.Key, target.Model, share, least)
		}
		least = share
	}
}

var countdownText = regexp.MustCompile(`^(in |reset )(?:(\d+)d )?(?:(\d+)h )?(?:(\d+)m)? ?(?:(\d+)s)?( ago)?$`)

// checkCountdowns checks that each countdown says how long is left until
// its reset, at now, to within the second it counts in and one more.
func checkCountdowns(t *testing.T, v statusView, now time.Time) {
	t.Helper()
	for _, target := range v.Targets {
		for _, w := range target.Windows {
			if w.ResetsAt == "" {
				continue
			}
			resets, err := time.Parse(time.RFC3339Nano, w.ResetsAt)
			m := countdownText.FindStringSubmatch(w.Reset)
			if err != nil || m == nil || (m[1] == "reset ") != (m[6] == " ago") {
				t.Errorf("%s/%s %s/%s: countdown %q for %q", target.Key, target.Model, w.Resource, w.Window, w.Reset, w.ResetsAt)
				continue
			}
			var seconds float64
			for i, unit := range []float64{86400, 3600, 60, 1} {
				n, _ := strconv.Atoi(m[2+i])
				seconds += float64(n) * unit
			}
			if m[1] == "reset " {
				seconds = -seconds
			}
			precision := 2.0
			if m[2] != "" {
				precision = 61 // days count in minutes
			}
			if want := resets.Sub(now).Seconds(); math.Abs(seconds-want) > precision {
				t.Errorf("%s/%s %s/%s: countdown %q, want about %.1fs", target.Key, target.Model, w.Resource, w.Window, w.Reset, want)
			}
		}
	}
}

// browser is a headless chromium tab that records what the page writes
// to its console and every response it loads.
type browser struct {
	ctx    context.Context
	loaded sync.WaitGroup // bodies being read
	mu     sync.Mutex
	// console holds errors, warnings and uncaught exceptions, policy
	// violations among them.
	console   []string
	responses []*response
}

type response struct {
	url, policy string
	body        []byte
	err         error
}

// heldTimers holds the page's timeouts of a second or more, its refresh
// timers, until the test fires them: the test decides when time for a
// refresh has come, and sees which refreshes are pending. It counts the
// fetches the page starts while hidden.
const heldTimers = `(() => {
  const realSetTimeout = window.setTimeout, realClearTimeout = window.clearTimeout, realFetch = window.fetch;
  const held = new Map();
  let next = 1e9; // apart from the browser's own ids
  window.testTimers = {
    hiddenFetches: 0,
    pending: () => held.size,
    fire: () => {
      const due = Array.from(held.values());
      held.clear();
      due.forEach(t => t.fn(...t.args));
      return due.length;
    },
  };
  window.setTimeout = function (fn, delay, ...args) {
    if (typeof fn !== 'function' || !(delay >= 1000)) return realSetTimeout.apply(window, arguments);
    held.set(next, { fn, args });
    return next++;
  };
  window.clearTimeout = function (id) { if (!held.delete(id)) realClearTimeout(id); };
  window.fetch = function () {
    if (document.hidden) window.testTimers.hiddenFetches++;
    return realFetch.apply(this, arguments);
  };
})();`

// timers returns how many refresh timers the page has pending.
func (b *browser) timers(t *testing.T) int {
	t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int]("testTimers.pending()"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// refresh runs script, which must start one refresh and give the number of
// refresh timers it fired, want; then waits for that refresh to land, by
// the page's time of generation.
func (b *browser) refresh(t *testing.T, what, script string, want int) {
	t.Helper()
	before := b.view(t).GeneratedAt
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](script))
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("%s: %d timers fired, want %d", what, n, want)
	}
	eventually(t, 10*time.Second, what, func() error {
		if v := b.view(t); v.GeneratedAt == before {
			return fmt.Errorf("no refresh landed: still the page of %s; %s", before, v.Note)
		}
		return nil
	})
}

// visibility lets the test hide the page: a headless tab is never hidden.
const visibility = `Object.defineProperty(Document.prototype, 'hidden', { get() { return !!window.testHidden; } });
Object.defineProperty(Document.prototype, 'visibilityState', { get() { return window.testHidden ? 'hidden' : 'visible'; } });`

func (b *browser) setHidden(t *testing.T, hidden bool) {
	t.Helper()
	b.do(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`window.testHidden = %t; document.dispatchEvent(new Event('visibilitychange'))`, hidden)))
}

// cspViolations reports each Content-Security-Policy violation on the
// console: chromium logs most, and this makes sure of all.
const cspViolations = `document.addEventListener('securitypolicyviolation', e =>
  console.error('Content-Security-Policy violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));`

func openBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI runs as root, where chromium's sandbox refuses to start
		chromedp.WindowSize(1280, 1024),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				b.mu.Lock()
				b.console = append(b.console, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	byID := map[network.RequestID]*response{} // the listener's own
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventResponseReceived:
			r := &response{url: ev.Response.URL}
			if p, ok := ev.Response.Headers["Content-Security-Policy"].(string); ok {
				r.policy = p
			}
			byID[ev.RequestID] = r
		case *network.EventLoadingFinished:
			r := byID[ev.RequestID]
			if r == nil {
				return
			}
			delete(byID, ev.RequestID)
			b.loaded.Add(1)
			go func() { // a listener must not call the browser
				defer b.loaded.Done()
				body, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: ev.RequestID})
				b.mu.Lock()
				defer b.mu.Unlock()
				r.body, r.err = body.Body, err
				b.responses = append(b.responses, r)
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{cspViolations, visibility, heldTimers} {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func (b *browser) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func (b *browser) view(t *testing.T) statusView {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[statusView](readStatus))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
