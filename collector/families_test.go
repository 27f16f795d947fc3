package collector

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

const (
	utilizationHelp = `# HELP ratelimit_utilization Share of a window's limit used, from 0 to 1, for windows that give a share rather than a remaining (Anthropic's unified windows, Azure's provisioned deployments).
# TYPE ratelimit_utilization gauge
`
	windowStatusHelp = `# HELP ratelimit_window_status A window's status as the provider gives it: 1 for the current status (allowed, allowed_warning or rejected), 0 for the others.
# TYPE ratelimit_window_status gauge
`
	balanceHelp = `# HELP ratelimit_balance Money left on the account, by currency, as the provider gives it (DeepSeek's balance).
# TYPE ratelimit_balance gauge
`
	retryAfterHelp = `# HELP ratelimit_retry_after_seconds The wait the provider last asked for, in a refusal to a probe or to the applications' traffic (retry-after-ms, Retry-After, or Gemini's retryDelay).
# TYPE ratelimit_retry_after_seconds gauge
`
	retryAfterTimestampHelp = `# HELP ratelimit_retry_after_timestamp_seconds When the wait the provider last asked for ends (Unix seconds).
# TYPE ratelimit_retry_after_timestamp_seconds gauge
`
	proxyRefusedHelp = `# HELP ratelimit_proxy_rate_limited_total Refusals the applications got through the proxy, by cause: 429s, 402s (spend_limit), 503s and 529s (overloaded); the series with no cause counts none.
# TYPE ratelimit_proxy_rate_limited_total counter
`
)

// The unified windows of Claude subscription traffic, as the sample has
// them: a used share and a status per window, with their resets; no limit
// and no remaining, so no such series.
func TestUtilizationAndStatus(t *testing.T) {
	key := config.Key{Name: "max", Provider: "anthropic", Models: []string{"m"}, Labels: map[string]string{"team": "a"}}
	c, reg, targets := newTestCollector(t, key)
	now := time.Unix(1764860400, 0) // five hours before the 5h window resets
	reading := ratelimit.Parser{}.Read(200, testkit.Headers(t, "anthropic-unified.headers"), now)
	c.Record(targets[0].ID(), &prober.Result{Reading: reading, Outcome: prober.Success})

	w := func(window string) string {
		return `{key="max",model="m",provider="anthropic",resource="unified",team="a",window="` + window + `"}`
	}
	s := func(window, status string) string {
		return `{key="max",model="m",provider="anthropic",resource="unified",status="` + status + `",team="a",window="` + window + `"}`
	}
	want := utilizationHelp +
		"ratelimit_utilization" + w("5h") + " 0.42\n" +
		"ratelimit_utilization" + w("7d") + " 0.81\n" +
		windowStatusHelp +
		"ratelimit_window_status" + s("", "allowed") + " 1\n" +
		"ratelimit_window_status" + s("", "allowed_warning") + " 0\n" +
		"ratelimit_window_status" + s("", "rejected") + " 0\n" +
		"ratelimit_window_status" + s("5h", "allowed") + " 1\n" +
		"ratelimit_window_status" + s("5h", "allowed_warning") + " 0\n" +
		"ratelimit_window_status" + s("5h", "rejected") + " 0\n" +
		"ratelimit_window_status" + s("7d", "allowed") + " 0\n" +
		"ratelimit_window_status" + s("7d", "allowed_warning") + " 1\n" +
		"ratelimit_window_status" + s("7d", "rejected") + " 0\n" +
		`# HELP ratelimit_reset_timestamp_seconds When the window is full again: probe time plus reset_seconds (Unix seconds).
# TYPE ratelimit_reset_timestamp_seconds gauge
` +
		"ratelimit_reset_timestamp_seconds" + w("") + " 1.7648784e+09\n" +
		"ratelimit_reset_timestamp_seconds" + w("5h") + " 1.7648784e+09\n" +
		"ratelimit_reset_timestamp_seconds" + w("7d") + " 1.7651808e+09\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_utilization", "ratelimit_window_status",
		"ratelimit_reset_timestamp_seconds", "ratelimit_limit", "ratelimit_remaining", "ratelimit_balance"); err != nil {
		t.Error(err)
	}

	// The 7d window is rejected: its status moves, the others stay one series each.
	rejected := append([]ratelimit.Observation(nil), reading.Observations...)
	for i, o := range rejected {
		if o.Kind == ratelimit.Status && o.Window == "7d" {
			rejected[i].Value = ratelimit.StatusRejected
		}
	}
	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: now.Add(time.Minute), StatusCode: 429, Observations: rejected}, Outcome: prober.RateLimited})
	want = windowStatusHelp +
		"ratelimit_window_status" + s("7d", "allowed") + " 0\n" +
		"ratelimit_window_status" + s("7d", "allowed_warning") + " 0\n" +
		"ratelimit_window_status" + s("7d", "rejected") + " 1\n"
	var got strings.Builder
	for _, line := range strings.SplitAfter(writeText(t, c), "\n") {
		if strings.HasPrefix(line, "#") && strings.Contains(line, "ratelimit_window_status ") || strings.Contains(line, `window="7d"`) && strings.HasPrefix(line, "ratelimit_window_status{") {
			got.WriteString(line)
		}
	}
	if got.String() != want {
		t.Errorf("after a rejection:\n%s\nwant:\n%s", got.String(), want)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// A balance is shown by currency, with the key's labels; two windows of one
// currency, which no provider sends, still make one series, so that the
// scrape does not fail on a duplicate.
func TestBalance(t *testing.T) {
	key := config.Key{Name: "ds", Provider: "cerebras", Models: []string{"m"}, Labels: map[string]string{"team": "a"}}
	c, reg, targets := newTestCollector(t, key)
	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Balance, Resource: "CNY", Value: 110.5},
		{Kind: ratelimit.Balance, Resource: "USD", Value: 15.25},
		{Kind: ratelimit.Balance, Resource: "USD", Window: "month", Value: 99},
	}}, Outcome: prober.Success})
	want := balanceHelp +
		`ratelimit_balance{currency="CNY",key="ds",model="m",provider="cerebras",team="a"} 110.5
ratelimit_balance{currency="USD",key="ds",model="m",provider="cerebras",team="a"} 15.25
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_balance", "ratelimit_limit", "ratelimit_remaining", "ratelimit_utilization"); err != nil {
		t.Error(err)
	}
	if _, err := expfmtParser().TextToMetricFamilies(strings.NewReader(writeText(t, c))); err != nil {
		t.Errorf("the text: %v", err)
	}
}

// Observations that come unsorted (a body's appended to a header's) still
// make one series per window.
func TestUnsortedObservations(t *testing.T) {
	c, reg, targets := newTestCollector(t, config.Key{Name: "k", Provider: "cerebras", Models: []string{"m"}})
	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 429, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 0},
		{Kind: ratelimit.Limit, Resource: "tokens", Window: "day", Value: 7},
		{Kind: ratelimit.Limit, Resource: "requests", Window: "minute", Value: 10},
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 3},
	}}, Outcome: prober.RateLimited})
	want := `# HELP ratelimit_remaining What is left of a window's rate limit, as the provider gives it.
# TYPE ratelimit_remaining gauge
ratelimit_remaining{key="k",model="m",provider="cerebras",resource="requests",window="minute"} 0
` + counterHelp + `ratelimit_header_errors_total{key="k",model="m",provider="cerebras"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_remaining", "ratelimit_header_errors_total"); err != nil {
		t.Error(err)
	}
}

// The last wait the provider asked for, from a probe or the proxy, is
// shown with when it ends; a newer reading's wait replaces it, an older
// one's does not, and a reading that asks for none leaves it.
func TestRetryAfter(t *testing.T) {
	c, _, targets := newTestCollector(t, config.Key{Name: "k", Provider: "cerebras", Models: []string{"m"}})
	id := targets[0].ID()
	series := func() string {
		var out strings.Builder
		for _, line := range strings.SplitAfter(writeText(t, c), "\n") {
			if strings.HasPrefix(line, "ratelimit_retry_after") {
				out.WriteString(line)
			}
		}
		return out.String()
	}
	want := func(seconds, until float64) string {
		return fmt.Sprintf("ratelimit_retry_after_seconds{key=\"k\",model=\"m\",provider=\"cerebras\"} %s\n"+
			"ratelimit_retry_after_timestamp_seconds{key=\"k\",model=\"m\",provider=\"cerebras\"} %s\n",
			appendFloat(nil, seconds), appendFloat(nil, until))
	}
	if got := series(); got != "" {
		t.Errorf("before any wait:\n%s", got)
	}
	c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 429, RetryAfter: 30 * time.Second, Cause: ratelimit.CauseRateLimit}, Outcome: prober.RateLimited})
	if got, want := series(), want(30, 1795000030); got != want {
		t.Errorf("after a probe's 429:\n%s\nwant:\n%s", got, want)
	}
	c.Observe(id, "cerebras", &ratelimit.Reading{Time: probeTime.Add(-time.Minute), StatusCode: 429, RetryAfter: time.Hour, Cause: ratelimit.CauseRateLimit})
	if got, want := series(), want(30, 1795000030); got != want {
		t.Errorf("after an older reading's wait:\n%s\nwant:\n%s", got, want)
	}
	c.Observe(id, "cerebras", &ratelimit.Reading{Time: probeTime.Add(10 * time.Second), StatusCode: 503, RetryAfter: 1500 * time.Millisecond, Cause: ratelimit.CauseOverloaded})
	if got, want := series(), want(1.5, 1795000011.5); got != want {
		t.Errorf("after a newer reading's wait:\n%s\nwant:\n%s", got, want)
	}
	c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime.Add(time.Minute), StatusCode: 200, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 3},
	}}, Outcome: prober.Success})
	if got, want := series(), want(1.5, 1795000011.5); got != want {
		t.Errorf("after a reading that asks for no wait:\n%s\nwant:\n%s", got, want)
	}
}

// A Served reading (a 2xx from a provider that sends no values unless a
// window runs out) says that no window is empty: the windows keep their
// limits, and the rest, the remaining 0 first, is gone.
func TestServedKeepsOnlyLimits(t *testing.T) {
	c, reg, targets := newTestCollector(t, config.Key{Name: "g", Provider: "cerebras", Models: []string{"m"}})
	id := targets[0].ID()
	c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 429, Cause: ratelimit.CauseQuotaExhausted, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Limit, Resource: "requests", Window: "minute", Value: 10},
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 0},
		{Kind: ratelimit.Reset, Resource: "requests", Window: "minute", Value: 43},
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "day", Value: 0},
	}}, Outcome: prober.RateLimited})
	if n := testutil.CollectAndCount(c, "ratelimit_remaining"); n != 2 {
		t.Fatalf("%d remaining series after the 429, want 2", n)
	}
	c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime.Add(time.Minute), StatusCode: 200, Served: true}, Outcome: prober.Success})
	want := `# HELP ratelimit_limit Rate limit of a window, as the provider's rate-limit headers (or OpenRouter's key endpoint) give it; where they give none, as the admin API or the config does (ratelimit_configured_limit).
# TYPE ratelimit_limit gauge
ratelimit_limit{key="g",model="m",provider="cerebras",resource="requests",window="minute"} 10
# HELP ratelimit_probe_success Whether the last probe read rate-limit headers.
# TYPE ratelimit_probe_success gauge
ratelimit_probe_success{key="g",model="m",provider="cerebras"} 1
# HELP ratelimit_probe_last_success_timestamp_seconds When rate-limit headers were last read (Unix seconds).
# TYPE ratelimit_probe_last_success_timestamp_seconds gauge
ratelimit_probe_last_success_timestamp_seconds{key="g",model="m",provider="cerebras"} 1.79500006e+09
# HELP ratelimit_observations_total Responses whose rate-limit values were read, by source: probe (the exporter's own probes) or proxy (the applications' traffic through the proxy, at no cost).
# TYPE ratelimit_observations_total counter
ratelimit_observations_total{key="g",model="m",provider="cerebras",source="probe"} 2
ratelimit_observations_total{key="g",model="m",provider="cerebras",source="proxy"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_limit", "ratelimit_remaining", "ratelimit_reset_seconds",
		"ratelimit_reset_timestamp_seconds", "ratelimit_probe_success", "ratelimit_probe_last_success_timestamp_seconds", "ratelimit_observations_total"); err != nil {
		t.Error(err)
	}
	// An older Served reading from the proxy moves nothing.
	c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime.Add(2 * time.Minute), StatusCode: 429, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Limit, Resource: "requests", Window: "minute", Value: 10},
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 0},
	}}, Outcome: prober.RateLimited})
	c.Observe(id, "cerebras", &ratelimit.Reading{Time: probeTime.Add(90 * time.Second), StatusCode: 200, Served: true})
	if n := testutil.CollectAndCount(c, "ratelimit_remaining"); n != 1 {
		t.Errorf("an older Served reading removed the newer remaining 0: %d series", n)
	}
}

// The applications' refusals through the proxy count by cause. The series
// without a cause stays at 0, so that a sum over causes never loses a
// series; without a proxy in the config, the family appears with the first
// refusal.
func TestProxyRefusalsByCause(t *testing.T) {
	key := config.Key{Name: "k", Provider: "cerebras", Models: []string{"m"}}
	c, reg, targets := newTestCollector(t, key)
	c.apply(targets, true)
	id := targets[0].ID()
	lbl := `key="k",model="m",provider="cerebras"`
	want := proxyRefusedHelp + `ratelimit_proxy_rate_limited_total{cause="",` + lbl + `} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_proxy_rate_limited_total"); err != nil {
		t.Errorf("before any refusal: %v", err)
	}
	for _, r := range []ratelimit.Reading{
		{StatusCode: 429, Cause: ratelimit.CauseRateLimit},
		{StatusCode: 429, Cause: ratelimit.CauseRateLimit},
		{StatusCode: 529, Cause: ratelimit.CauseOverloaded},
		{StatusCode: 402, Cause: ratelimit.CauseSpendLimit},
		{StatusCode: 200}, // served: no refusal
		{StatusCode: 500}, // no cause: not counted
	} {
		r.Time = probeTime
		c.Observe(id, "cerebras", &r)
	}
	want = proxyRefusedHelp + `ratelimit_proxy_rate_limited_total{cause="",` + lbl + `} 0
ratelimit_proxy_rate_limited_total{cause="overloaded",` + lbl + `} 1
ratelimit_proxy_rate_limited_total{cause="rate_limit",` + lbl + `} 2
ratelimit_proxy_rate_limited_total{cause="spend_limit",` + lbl + `} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_proxy_rate_limited_total"); err != nil {
		t.Error(err)
	}

	// Without a proxy in the config: nothing until a refusal is counted.
	c.apply(targets, false)
	if n := testutil.CollectAndCount(c, "ratelimit_proxy_rate_limited_total"); n != 4 {
		t.Errorf("%d series kept after a reload without the proxy, want the 4 counted", n)
	}
	other, otherReg, otherTargets := newTestCollector(t, key)
	if n := testutil.CollectAndCount(other, "ratelimit_proxy_rate_limited_total"); n != 0 {
		t.Errorf("%d series without a proxy, want none", n)
	}
	other.Observe(otherTargets[0].ID(), "cerebras", &ratelimit.Reading{Time: probeTime, StatusCode: 429, Cause: ratelimit.CauseQuotaExhausted})
	want = proxyRefusedHelp + `ratelimit_proxy_rate_limited_total{cause="",` + lbl + `} 0
ratelimit_proxy_rate_limited_total{cause="quota_exhausted",` + lbl + `} 1
`
	if err := testutil.GatherAndCompare(otherReg, strings.NewReader(want), "ratelimit_proxy_rate_limited_total"); err != nil {
		t.Error(err)
	}
}

// proxyRefused has a place for every cause and for none.
func TestEveryCauseHasAPlace(t *testing.T) {
	if numCauses != len(ratelimit.Causes)+1 || len(causeIndex) != numCauses {
		t.Errorf("numCauses = %d, causeIndex has %d, for %d causes", numCauses, len(causeIndex), len(ratelimit.Causes))
	}
}
