package collector

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

var probeTime = time.Unix(1795000000, 0)

func fullHeaders(t *testing.T) []ratelimit.Observation {
	t.Helper()
	obs, dropped := ratelimit.Parser{}.Parse(testkit.Headers(t, "cerebras-full.headers"), time.Time{})
	if dropped != 0 || len(obs) != 18 {
		t.Fatalf("fixture parsed to %d observations, %d dropped", len(obs), dropped)
	}
	return obs
}

func newTestCollector(t *testing.T, keys ...config.Key) (*Collector, *prometheus.Registry, []config.Target) {
	t.Helper()
	cfg := &config.Config{Keys: keys}
	c := New()
	c.apply(cfg.Targets(), false)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return c, reg, cfg.Targets()
}

const counterHelp = `# HELP ratelimit_header_errors_total Rate-limit header values dropped: invalid, beyond the 64 taken from one response, or the less cautious of two values of one figure.
# TYPE ratelimit_header_errors_total counter
`

const probesHelp = "# HELP ratelimit_probes_total Probes, by result; key_unavailable ones were never sent. reason is the provider's error code of a refused probe (16 codes at most per key and model); cause says why a 402, 429, 503 or 529 happened (rate_limit, quota_exhausted, spend_limit, overloaded, concurrency).\n# TYPE ratelimit_probes_total counter\n"

// probesTotal is the exposition of ratelimit_probes_total for one target,
// the counts without a reason or a cause; extra holds the key's labels,
// which sort after "result".
func probesTotal(labels, extra string, counts map[string]int) string {
	out := probesHelp
	for _, result := range []string{"http_error", "key_unavailable", "network_error", "no_headers", "rate_limited", "success", "timeout", "unauthorized"} {
		out += `ratelimit_probes_total{cause="",` + labels + `,reason="",result="` + result + `"` + extra + "} " + strconv.Itoa(counts[result]) + "\n"
	}
	return out
}

func TestFullHeaderSet(t *testing.T) {
	key := config.Key{Name: "prod", Provider: "cerebras", Models: []string{"llama3.1-8b"}, Labels: map[string]string{"team": "search"}}
	c, reg, targets := newTestCollector(t, key)
	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: fullHeaders(t)}, Duration: 250 * time.Millisecond, Outcome: prober.Success, Tokens: 10})

	lbl := `key="prod",model="llama3.1-8b",provider="cerebras"`
	w := func(resource, window string) string {
		return `{` + lbl + `,resource="` + resource + `",team="search",window="` + window + `"}`
	}
	want := `# HELP ratelimit_limit Rate limit of a window, as the provider's rate-limit headers (or OpenRouter's key endpoint) give it; where they give none, as the admin API or the config does (ratelimit_configured_limit).
# TYPE ratelimit_limit gauge
ratelimit_limit` + w("requests", "day") + ` 2400
ratelimit_limit` + w("requests", "hour") + ` 150
ratelimit_limit` + w("requests", "minute") + ` 5
ratelimit_limit` + w("tokens", "day") + ` 1e+06
ratelimit_limit` + w("tokens", "hour") + ` 1e+06
ratelimit_limit` + w("tokens", "minute") + ` 30000
# HELP ratelimit_remaining What is left of a window's rate limit, as the provider gives it.
# TYPE ratelimit_remaining gauge
ratelimit_remaining` + w("requests", "day") + ` 2273
ratelimit_remaining` + w("requests", "hour") + ` 141
ratelimit_remaining` + w("requests", "minute") + ` 4
ratelimit_remaining` + w("tokens", "day") + ` 912345
ratelimit_remaining` + w("tokens", "hour") + ` 987654
ratelimit_remaining` + w("tokens", "minute") + ` 29712
# HELP ratelimit_reset_seconds Seconds from the probe until the window is full again, as the provider gives it; absolute resets are counted from the response's Date.
# TYPE ratelimit_reset_seconds gauge
ratelimit_reset_seconds` + w("requests", "day") + ` 46841.2049164772
ratelimit_reset_seconds` + w("requests", "hour") + ` 2441.2049164772034
ratelimit_reset_seconds` + w("requests", "minute") + ` 41.20491647720337
ratelimit_reset_seconds` + w("tokens", "day") + ` 46841.2049164772
ratelimit_reset_seconds` + w("tokens", "hour") + ` 2441.2049164772034
ratelimit_reset_seconds` + w("tokens", "minute") + ` 41.20491647720337
# HELP ratelimit_reset_timestamp_seconds When the window is full again: probe time plus reset_seconds (Unix seconds).
# TYPE ratelimit_reset_timestamp_seconds gauge
ratelimit_reset_timestamp_seconds` + w("requests", "day") + ` 1.7950468412049165e+09
ratelimit_reset_timestamp_seconds` + w("requests", "hour") + ` 1.7950024412049165e+09
ratelimit_reset_timestamp_seconds` + w("requests", "minute") + ` 1.7950000412049165e+09
ratelimit_reset_timestamp_seconds` + w("tokens", "day") + ` 1.7950468412049165e+09
ratelimit_reset_timestamp_seconds` + w("tokens", "hour") + ` 1.7950024412049165e+09
ratelimit_reset_timestamp_seconds` + w("tokens", "minute") + ` 1.7950000412049165e+09
# HELP ratelimit_reading_timestamp_seconds When the window's figures were read (Unix seconds): by a probe, from the proxy's traffic, or, for a window only the config or an admin API gives, when that source last gave it. Replicas each serve their own: take the freshest.
# TYPE ratelimit_reading_timestamp_seconds gauge
ratelimit_reading_timestamp_seconds` + w("requests", "day") + ` 1.795e+09
ratelimit_reading_timestamp_seconds` + w("requests", "hour") + ` 1.795e+09
ratelimit_reading_timestamp_seconds` + w("requests", "minute") + ` 1.795e+09
ratelimit_reading_timestamp_seconds` + w("tokens", "day") + ` 1.795e+09
ratelimit_reading_timestamp_seconds` + w("tokens", "hour") + ` 1.795e+09
ratelimit_reading_timestamp_seconds` + w("tokens", "minute") + ` 1.795e+09
# HELP ratelimit_probe_success Whether the last probe read rate-limit headers.
# TYPE ratelimit_probe_success gauge
ratelimit_probe_success{` + lbl + `,team="search"} 1
# HELP ratelimit_probe_duration_seconds Duration of the last probe.
# TYPE ratelimit_probe_duration_seconds gauge
ratelimit_probe_duration_seconds{` + lbl + `,team="search"} 0.25
# HELP ratelimit_probe_status_code HTTP status of the last probe's response; 0 without a response.
# TYPE ratelimit_probe_status_code gauge
ratelimit_probe_status_code{` + lbl + `,team="search"} 200
# HELP ratelimit_probe_last_success_timestamp_seconds When rate-limit headers were last read (Unix seconds).
# TYPE ratelimit_probe_last_success_timestamp_seconds gauge
ratelimit_probe_last_success_timestamp_seconds{` + lbl + `,team="search"} 1.795e+09
` + probesTotal(lbl, `,team="search"`, map[string]int{"success": 1}) + `# HELP ratelimit_observations_total Responses whose rate-limit values were read, by source: probe (the exporter's own probes) or proxy (the applications' traffic through the proxy, at no cost).
# TYPE ratelimit_observations_total counter
ratelimit_observations_total{` + lbl + `,source="probe"} 1
ratelimit_observations_total{` + lbl + `,source="proxy"} 0
# HELP ratelimit_probe_tokens_total Tokens billed to the exporter's own probes, from the usage in their responses.
# TYPE ratelimit_probe_tokens_total counter
ratelimit_probe_tokens_total{` + lbl + `,team="search"} 10
` + counterHelp + `ratelimit_header_errors_total{` + lbl + `} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "ratelimit_limit", "ratelimit_remaining", "ratelimit_reset_seconds"); n != 18 {
		t.Errorf("rate-limit series = %d, want 18", n)
	}
	if n := testutil.CollectAndCount(c, "ratelimit_reset_timestamp_seconds"); n != 6 {
		t.Errorf("reset timestamps = %d, want 6", n)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// A failed probe keeps the last values read; only the probe's own gauges change.
func TestFailedProbeKeepsLastValues(t *testing.T) {
	key := config.Key{Name: "k", Provider: "cerebras", Models: []string{"m"}}
	c, reg, targets := newTestCollector(t, key)
	id := targets[0].ID()
	c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: []ratelimit.Observation{{Kind: ratelimit.Remaining, Resource: "requests", Window: "day", Value: 7}}}, Duration: time.Second, Outcome: prober.Success})
	c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime.Add(time.Minute), Dropped: 0}, Duration: 2 * time.Second, Outcome: prober.NetworkError})
	c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime.Add(2 * time.Minute), StatusCode: 200, Dropped: 2}, Duration: 3 * time.Second, Outcome: prober.NoHeaders})

	lbl := `key="k",model="m",provider="cerebras"`
	want := `# HELP ratelimit_remaining What is left of a window's rate limit, as the provider gives it.
# TYPE ratelimit_remaining gauge
ratelimit_remaining{` + lbl + `,resource="requests",window="day"} 7
# HELP ratelimit_probe_success Whether the last probe read rate-limit headers.
# TYPE ratelimit_probe_success gauge
ratelimit_probe_success{` + lbl + `} 0
# HELP ratelimit_probe_status_code HTTP status of the last probe's response; 0 without a response.
# TYPE ratelimit_probe_status_code gauge
ratelimit_probe_status_code{` + lbl + `} 200
# HELP ratelimit_probe_last_success_timestamp_seconds When rate-limit headers were last read (Unix seconds).
# TYPE ratelimit_probe_last_success_timestamp_seconds gauge
ratelimit_probe_last_success_timestamp_seconds{` + lbl + `} 1.795e+09
` + probesTotal(lbl, "", map[string]int{"success": 1, "network_error": 1, "no_headers": 1}) + counterHelp + `ratelimit_header_errors_total{` + lbl + `} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_remaining", "ratelimit_probe_success",
		"ratelimit_probe_status_code", "ratelimit_probe_last_success_timestamp_seconds", "ratelimit_probes_total", "ratelimit_header_errors_total"); err != nil {
		t.Error(err)
	}
}

// A key whose probes never read headers has no rate-limit series: no zeros.
func TestNeverReadKeyHasNoRateLimitSeries(t *testing.T) {
	key := config.Key{Name: "revoked", Provider: "cerebras", Models: []string{"m"}}
	c, reg, targets := newTestCollector(t, key)

	// Before any probe: only the counters, at zero.
	want := probesTotal(`key="revoked",model="m",provider="cerebras"`, "", nil)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_probes_total", "ratelimit_probe_success"); err != nil {
		t.Error(err)
	}

	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 401}, Outcome: prober.Unauthorized})
	for _, name := range []string{"ratelimit_limit", "ratelimit_remaining", "ratelimit_reset_seconds",
		"ratelimit_reset_timestamp_seconds", "ratelimit_probe_last_success_timestamp_seconds"} {
		if n := testutil.CollectAndCount(c, name); n != 0 {
			t.Errorf("%s: %d series, want none", name, n)
		}
	}
	want = `# HELP ratelimit_probe_status_code HTTP status of the last probe's response; 0 without a response.
# TYPE ratelimit_probe_status_code gauge
ratelimit_probe_status_code{key="revoked",model="m",provider="cerebras"} 401
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_probe_status_code"); err != nil {
		t.Error(err)
	}
}

// A refused probe counts by its cause and its error code; other results
// keep reason and cause "". Past maxReasons codes, a new code counts under
// its cause alone, so that causes are never lost to a flood of codes.
func TestProbesByReasonAndCause(t *testing.T) {
	c, reg, targets := newTestCollector(t, config.Key{Name: "k", Provider: "openai", Models: []string{"m"}})
	id := targets[0].ID()
	record := func(o prober.Outcome, status int, cause ratelimit.Cause, code string) {
		c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: status, Cause: cause}, Outcome: o, ErrorCode: code})
	}
	record(prober.RateLimited, 429, ratelimit.CauseRateLimit, "rate_limit_exceeded")
	record(prober.RateLimited, 429, ratelimit.CauseRateLimit, "rate_limit_exceeded")
	record(prober.RateLimited, 429, ratelimit.CauseQuotaExhausted, "insufficient_quota")
	record(prober.RateLimited, 429, ratelimit.CauseRateLimit, "")
	record(prober.HTTPError, 503, ratelimit.CauseOverloaded, "")
	record(prober.HTTPError, 402, ratelimit.CauseSpendLimit, "insufficient_balance")
	record(prober.HTTPError, 500, "", "server_error") // no refusal: neither reason nor cause
	record(prober.Success, 200, "", "")
	// 3 codes so far; 13 more fill maxReasons, the 7 after them count
	// under their cause alone.
	for i := range 20 {
		record(prober.RateLimited, 429, ratelimit.CauseRateLimit, fmt.Sprintf("code_%02d", i))
	}
	record(prober.RateLimited, 429, ratelimit.CauseRateLimit, "code_00")                        // found again among the others
	record(prober.RateLimited, 429, ratelimit.CauseQuotaExhausted, "quota_code_past_the_bound") // its cause kept

	want := probesTotal(`key="k",model="m",provider="openai"`, "", map[string]int{"http_error": 1, "success": 1})
	for _, r := range []struct {
		result, cause, code string
		count               int
	}{
		{"http_error", "overloaded", "", 1},
		{"http_error", "spend_limit", "insufficient_balance", 1},
		{"rate_limited", "quota_exhausted", "", 1},
		{"rate_limited", "quota_exhausted", "insufficient_quota", 1},
		{"rate_limited", "rate_limit", "", 8},
		{"rate_limited", "rate_limit", "code_00", 2},
		{"rate_limited", "rate_limit", "rate_limit_exceeded", 2},
	} {
		want += fmt.Sprintf("ratelimit_probes_total{cause=%q,key=\"k\",model=\"m\",provider=\"openai\",reason=%q,result=%q} %d\n", r.cause, r.code, r.result, r.count)
	}
	for i := 1; i <= 12; i++ {
		want += fmt.Sprintf("ratelimit_probes_total{cause=\"rate_limit\",key=\"k\",model=\"m\",provider=\"openai\",reason=\"code_%02d\",result=\"rate_limited\"} 1\n", i)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_probes_total"); err != nil {
		t.Error(err)
	}
	codes := 0
	for _, line := range strings.Split(writeText(t, c), "\n") {
		if strings.HasPrefix(line, "ratelimit_probes_total{") && !strings.Contains(line, `reason=""`) {
			codes++
		}
	}
	if codes != maxReasons {
		t.Errorf("%d series with a reason, want maxReasons, %d", codes, maxReasons)
	}
}

func TestApplyKeepsStayingTargetsAndForgetsOthers(t *testing.T) {
	a := config.Key{Name: "a", Provider: "cerebras", Models: []string{"m"}}
	b := config.Key{Name: "b", Provider: "cerebras", Models: []string{"m"}}
	c, _, targets := newTestCollector(t, a, b)
	for _, target := range targets {
		c.Record(target.ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: []ratelimit.Observation{{Kind: ratelimit.Limit, Resource: "requests", Window: "day", Value: 9}}}, Outcome: prober.Success, Tokens: 10})
	}
	a.Labels = map[string]string{"team": "new"}
	c.apply((&config.Config{Keys: []config.Key{a}}).Targets(), false)
	// A result for a target that left while it was probed is dropped.
	c.Record(config.TargetID{Key: "b", Model: "m"}, &prober.Result{Reading: ratelimit.Reading{Time: probeTime}, Outcome: prober.Success})

	want := `# HELP ratelimit_limit Rate limit of a window, as the provider's rate-limit headers (or OpenRouter's key endpoint) give it; where they give none, as the admin API or the config does (ratelimit_configured_limit).
# TYPE ratelimit_limit gauge
ratelimit_limit{key="a",model="m",provider="cerebras",resource="requests",team="new",window="day"} 9
# HELP ratelimit_probe_tokens_total Tokens billed to the exporter's own probes, from the usage in their responses.
# TYPE ratelimit_probe_tokens_total counter
ratelimit_probe_tokens_total{key="a",model="m",provider="cerebras",team="new"} 10
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ratelimit_limit", "ratelimit_probe_tokens_total"); err != nil {
		t.Error(err)
	}
}

// The text served from the render cache says what the collector says.
func TestWriteTextMatchesCollect(t *testing.T) {
	keys := []config.Key{
		{Name: "prod", Provider: "cerebras", Models: []string{"a", "b"}, Labels: map[string]string{"team": "search", "env": "p"}},
		{Name: "plain", Provider: "cerebras", Models: []string{"a"}},
		{Name: "never", Provider: "cerebras", Models: []string{"a"}},
		{Name: "odd", Provider: "cerebras", Models: []string{`m"x\y`}, Labels: map[string]string{"team": "a\"b\\c\nd", "zone": "ü ß"}},
	}
	c, reg, targets := newTestCollector(t, keys...)
	for i, target := range targets[:3] {
		c.Record(target.ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime.Add(time.Duration(i) * time.Second), StatusCode: 200, Observations: fullHeaders(t), Dropped: i}, Duration: time.Second, Outcome: prober.Success, Tokens: 10})
		c.SetInterval(target.ID(), time.Duration(i+1)*time.Minute)
	}
	c.Record(targets[2].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime}, Outcome: prober.Timeout})
	c.Record(targets[4].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 429, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Remaining, Resource: "tokens", Window: "", Value: 0},
		{Kind: ratelimit.Limit, Resource: "tokens", Window: "", Value: 1e21},
		{Kind: ratelimit.Reset, Resource: "tokens", Window: "", Value: 1.0000000000000002},
		{Kind: ratelimit.Status, Resource: "unified", Window: "7d", Value: ratelimit.StatusRejected},
		{Kind: ratelimit.Utilization, Resource: "unified", Window: "7d", Value: 1.02},
		{Kind: ratelimit.Balance, Resource: "USD", Window: "", Value: 4.2},
	}, RetryAfter: 90 * time.Second, Cause: ratelimit.CauseQuotaExhausted}, Duration: 1234567 * time.Nanosecond, Outcome: prober.RateLimited, ErrorCode: "token_quota_exceeded"})

	// A limit from an admin API, and a declared one with its estimate.
	c.SetConfigured(SourceAdminAPI, "prod", map[string][]ratelimit.Window{"a": {limitWindow("requests", "day", 1000)}}, probeTime)
	declared := limitWindow("tokens", "hour", 5000)
	setValue(&declared, ratelimit.Remaining, 4000)
	setValue(&declared, ratelimit.Reset, 60)
	c.SetConfigured(SourceConfig, "plain", map[string][]ratelimit.Window{"a": {declared}}, probeTime)

	// Readings from the proxy are rendered by the scrape that follows them.
	c.Observe(targets[3].ID(), "cerebras", &ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: fullHeaders(t)})
	c.Observe(config.TargetID{Key: "prod", Model: "unlisted"}, "cerebras", &ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: fullHeaders(t)})

	var text strings.Builder
	size := -1
	if err := c.WriteText(&text, func(n int) { size = n }); err != nil {
		t.Fatal(err)
	}
	if size != text.Len() {
		t.Errorf("WriteText announced %d bytes and wrote %d", size, text.Len())
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(text.String())); err != nil {
		t.Error(err)
	}
	if got := strings.Count(text.String(), "# TYPE "); got != int(numFamilies) {
		t.Errorf("%d families in the text, want %d", got, numFamilies)
	}
	if !strings.Contains(text.String(), `ratelimit_probe_interval_seconds{key="plain",model="a",provider="cerebras"} 180`) {
		t.Errorf("no interval for plain/a in:\n%s", text.String())
	}

	// One target's text, as /probe serves it: its samples, no other's.
	for _, id := range []config.TargetID{targets[0].ID(), targets[3].ID(), {Key: "prod", Model: "unlisted"}} {
		var one strings.Builder
		size := -1
		if err := c.WriteTargetText(&one, id, func(n int) { size = n }); err != nil {
			t.Fatal(err)
		}
		if size != one.Len() {
			t.Errorf("WriteTargetText(%v) announced %d bytes and wrote %d", id, size, one.Len())
		}
		var want []string
		for _, line := range strings.SplitAfter(text.String(), "\n") {
			if strings.Contains(line, `key="`+id.Key+`",model="`+id.Model+`",`) {
				want = append(want, line)
			}
		}
		var got []string
		for _, line := range strings.SplitAfter(one.String(), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				got = append(got, line)
			}
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("WriteTargetText(%v) wrote samples\n%s\nwant\n%s", id, strings.Join(got, ""), strings.Join(want, ""))
		}
		if _, err := expfmtParser().TextToMetricFamilies(strings.NewReader(one.String())); err != nil {
			t.Errorf("WriteTargetText(%v) wrote invalid text: %v", id, err)
		}
	}
	var none strings.Builder
	if err := c.WriteTargetText(&none, config.TargetID{Key: "prod", Model: "nope"}, nil); err != nil || none.Len() != 0 {
		t.Errorf("WriteTargetText of no target wrote %q, %v; want nothing", none.String(), err)
	}
}

// blockedWriter blocks its first write until released: a scraper that
// stopped reading.
type blockedWriter struct {
	started chan struct{}
	release chan struct{}
	writes  int
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes == 1 {
		close(w.started)
		<-w.release
	}
	return len(p), nil
}

// A scrape that cannot write holds nothing that recording or a reload needs,
// and what it writes is what was published when it started.
func TestWriteTextHoldsNoLockWhileWriting(t *testing.T) {
	keys := make([]config.Key, 50)
	for i := range keys {
		keys[i] = config.Key{Name: "k" + strconv.Itoa(i), Provider: "cerebras", Models: []string{"m"}}
	}
	c, _, targets := newTestCollector(t, keys...)
	obs := fullHeaders(t)
	for _, tg := range targets {
		c.Record(tg.ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: obs}, Outcome: prober.Success})
	}
	var before strings.Builder
	if err := c.WriteText(&before, nil); err != nil {
		t.Fatal(err)
	}

	w := &blockedWriter{started: make(chan struct{}), release: make(chan struct{})}
	var written strings.Builder
	writeDone := make(chan error, 1)
	go func() {
		// Blocked before it writes a byte, after it took what it writes:
		// changes made meanwhile must not reach it, whatever the buffering.
		writeDone <- c.WriteText(writerFunc(func(p []byte) (int, error) {
			written.Write(p)
			return len(p), nil
		}), func(int) { _, _ = w.Write(nil) })
	}()
	select {
	case <-w.started:
	case <-time.After(10 * time.Second):
		t.Fatal("WriteText did not write within 10s")
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		changed := append([]ratelimit.Observation(nil), obs...)
		for i := range changed {
			changed[i].Value++
		}
		for _, tg := range targets {
			c.Record(tg.ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime.Add(time.Minute), StatusCode: 200, Observations: changed}, Outcome: prober.Success})
		}
		c.Observe(targets[1].ID(), "cerebras", &ratelimit.Reading{Time: probeTime.Add(2 * time.Minute), StatusCode: 200, Observations: changed})
		c.apply(targets[:10], false)
		c.SetInterval(targets[0].ID(), time.Hour)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record, Observe, Apply and SetInterval waited for a scrape that does not write")
	}
	close(w.release)
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	if written.String() != before.String() {
		t.Error("the scrape wrote changes made after it started: published text was changed in place")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A reading from the proxy updates the rate-limit series and the time of
// the last reading, counts as source="proxy", and is no probe; targets the
// config does not name are added with their key's labels, and forgotten at
// the next Apply.
func TestObserveFromTheProxy(t *testing.T) {
	key := config.Key{Name: "prod", Provider: "cerebras", Models: []string{"m"}, Labels: map[string]string{"team": "search"}}
	c, reg, targets := newTestCollector(t, key)
	read := func(at time.Time, remaining float64) *ratelimit.Reading {
		return &ratelimit.Reading{Time: at, StatusCode: 200, Observations: []ratelimit.Observation{
			{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: remaining},
		}}
	}
	c.Observe(targets[0].ID(), "cerebras", read(probeTime.Add(time.Second), 7))
	c.Observe(targets[0].ID(), "cerebras", read(probeTime, 9)) // older: counted, not shown
	c.Observe(config.TargetID{Key: "prod", Model: "other"}, "cerebras", read(probeTime, 3))
	c.Observe(config.TargetID{Key: "sha256:0123456789ab", Model: "m"}, "cerebras", read(probeTime, 1))
	want := `# HELP ratelimit_remaining What is left of a window's rate limit, as the provider gives it.
# TYPE ratelimit_remaining gauge
ratelimit_remaining{key="prod",model="m",provider="cerebras",resource="requests",team="search",window="minute"} 7
ratelimit_remaining{key="prod",model="other",provider="cerebras",resource="requests",team="search",window="minute"} 3
ratelimit_remaining{key="sha256:0123456789ab",model="m",provider="cerebras",resource="requests",window="minute"} 1
# HELP ratelimit_observations_total Responses whose rate-limit values were read, by source: probe (the exporter's own probes) or proxy (the applications' traffic through the proxy, at no cost).
# TYPE ratelimit_observations_total counter
ratelimit_observations_total{key="prod",model="m",provider="cerebras",source="probe"} 0
ratelimit_observations_total{key="prod",model="m",provider="cerebras",source="proxy"} 2
ratelimit_observations_total{key="prod",model="other",provider="cerebras",source="proxy"} 1
ratelimit_observations_total{key="sha256:0123456789ab",model="m",provider="cerebras",source="proxy"} 1
# HELP ratelimit_probe_last_success_timestamp_seconds When rate-limit headers were last read (Unix seconds).
# TYPE ratelimit_probe_last_success_timestamp_seconds gauge
ratelimit_probe_last_success_timestamp_seconds{key="prod",model="m",provider="cerebras",team="search"} 1.795000001e+09
ratelimit_probe_last_success_timestamp_seconds{key="prod",model="other",provider="cerebras",team="search"} 1.795e+09
ratelimit_probe_last_success_timestamp_seconds{key="sha256:0123456789ab",model="m",provider="cerebras"} 1.795e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_remaining", "ratelimit_observations_total",
		"ratelimit_probe_last_success_timestamp_seconds", "ratelimit_probe_success"); err != nil {
		t.Error(err)
	}
	c.apply(targets, false)
	if n := testutil.CollectAndCount(c, "ratelimit_remaining"); n != 1 {
		t.Errorf("after Apply: %d ratelimit_remaining series, want the configured one", n)
	}
}

// The proxy's targets have budgets of their own: strangers' fingerprints
// cannot crowd out a configured key's models, what does not fit is counted
// by reason, and a key that left the config does not come back.
func TestObserveBudgets(t *testing.T) {
	key := config.Key{Name: "prod", Provider: "cerebras", Models: []string{"m"}, Labels: map[string]string{"team": "search"}}
	c, _, _ := newTestCollector(t, key)
	read := &ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 1},
	}}
	for i := range maxStrangerTargets + 5 {
		c.Observe(config.TargetID{Key: fmt.Sprintf("%s%012x", config.FingerprintPrefix, i), Model: "m"}, "cerebras", read)
	}
	c.Observe(config.TargetID{Key: "prod", Model: "new-model"}, "cerebras", read)
	if !strings.Contains(writeText(t, c), `ratelimit_remaining{key="prod",model="new-model"`) {
		t.Errorf("strangers' fingerprints crowded out a configured key's new model")
	}
	for i := range maxUnlistedModels + 5 {
		c.Observe(config.TargetID{Key: "prod", Model: fmt.Sprintf("unlisted-%d", i)}, "cerebras", read)
	}
	// A key that a reload removed while its request was in flight.
	c.Observe(config.TargetID{Key: "removed", Model: "m"}, "cerebras", read)

	if n := testutil.CollectAndCount(c, "ratelimit_remaining"); n != maxStrangerTargets+maxUnlistedModels {
		t.Errorf("%d ratelimit_remaining series, want %d", n, maxStrangerTargets+maxUnlistedModels)
	}
	want := `# HELP ratelimit_readings_dropped_total Readings from the proxy or a configured source that were not recorded, by reason: key_not_configured (a key the running config does not have), unlisted_models_budget (a configured key's unlisted models are at their budget), fingerprints_budget (unknown keys' targets are at their budget), configured_models_budget (models only an admin API or the config's limits name are at their budget).
# TYPE ratelimit_readings_dropped_total counter
ratelimit_readings_dropped_total{reason="configured_models_budget"} 0
ratelimit_readings_dropped_total{reason="fingerprints_budget"} 5
ratelimit_readings_dropped_total{reason="key_not_configured"} 1
ratelimit_readings_dropped_total{reason="unlisted_models_budget"} 6
`
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.Collectors()...)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// A proxied 429 without rate-limit headers is counted as a refusal of the
// target, by its cause, and its wait is shown; a target the config does
// not name shows no probe figures.
func TestObserveRateLimitedWithoutHeaders(t *testing.T) {
	c, _, _ := newTestCollector(t, config.Key{Name: "prod", Provider: "cerebras", Models: []string{"m"}})
	c.Observe(config.TargetID{Key: config.FingerprintPrefix + "0123456789ab", Model: "m"}, "cerebras",
		&ratelimit.Reading{Time: probeTime, StatusCode: 429, RetryAfter: time.Minute, Cause: ratelimit.CauseRateLimit})
	var got []string
	for _, line := range strings.Split(writeText(t, c), "\n") {
		if strings.Contains(line, "sha256:") {
			got = append(got, line)
		}
	}
	want := []string{
		`ratelimit_observations_total{key="sha256:0123456789ab",model="m",provider="cerebras",source="proxy"} 0`,
		`ratelimit_header_errors_total{key="sha256:0123456789ab",model="m",provider="cerebras"} 0`,
		`ratelimit_proxy_rate_limited_total{cause="",key="sha256:0123456789ab",model="m",provider="cerebras"} 0`,
		`ratelimit_proxy_rate_limited_total{cause="rate_limit",key="sha256:0123456789ab",model="m",provider="cerebras"} 1`,
		`ratelimit_retry_after_seconds{key="sha256:0123456789ab",model="m",provider="cerebras"} 60`,
		`ratelimit_retry_after_timestamp_seconds{key="sha256:0123456789ab",model="m",provider="cerebras"} 1.79500006e+09`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("series of a stranger's 429:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func writeText(t *testing.T, c *Collector) string {
	t.Helper()
	var b strings.Builder
	if err := c.WriteText(&b, nil); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Behind a gateway that adds its own RateLimit-* headers, two values of one
// figure arrive: the most cautious is shown, the other counted as dropped.
func TestTwoValuesOfOneFigure(t *testing.T) {
	c, reg, targets := newTestCollector(t, config.Key{Name: "k", Provider: "openai", Models: []string{"m"}})
	h := http.Header{}
	h.Set("x-ratelimit-limit-requests", "10000")
	h.Set("x-ratelimit-remaining-requests", "0")
	h.Set("x-ratelimit-reset-requests", "30s")
	h.Set("RateLimit-Limit", "100000")
	h.Set("RateLimit-Remaining", "99999")
	h.Set("RateLimit-Reset", "1")
	obs, dropped := ratelimit.Parser{}.Parse(h, time.Time{})
	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: obs, Dropped: dropped}, Outcome: prober.Success})
	want := counterHelp + `ratelimit_header_errors_total{key="k",model="m",provider="openai"} 3
# HELP ratelimit_limit Rate limit of a window, as the provider's rate-limit headers (or OpenRouter's key endpoint) give it; where they give none, as the admin API or the config does (ratelimit_configured_limit).
# TYPE ratelimit_limit gauge
ratelimit_limit{key="k",model="m",provider="openai",resource="requests",window=""} 10000
# HELP ratelimit_remaining What is left of a window's rate limit, as the provider gives it.
# TYPE ratelimit_remaining gauge
ratelimit_remaining{key="k",model="m",provider="openai",resource="requests",window=""} 0
# HELP ratelimit_reset_seconds Seconds from the probe until the window is full again, as the provider gives it; absolute resets are counted from the response's Date.
# TYPE ratelimit_reset_seconds gauge
ratelimit_reset_seconds{key="k",model="m",provider="openai",resource="requests",window=""} 30
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_limit", "ratelimit_remaining",
		"ratelimit_reset_seconds", "ratelimit_header_errors_total"); err != nil {
		t.Error(err)
	}
}

// A reload that moves a key's name to another provider keeps nothing of
// the other API's: no windows, no counters under the new provider's label.
func TestProviderChangeStartsAfresh(t *testing.T) {
	key := config.Key{Name: "k", Provider: "cerebras", Models: []string{"m"}}
	c, _, targets := newTestCollector(t, key)
	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: fullHeaders(t)}, Outcome: prober.Success, Tokens: 10})
	key.Provider = "anthropic"
	c.apply((&config.Config{Keys: []config.Key{key}}).Targets(), false)
	for name, want := range map[string]int{"ratelimit_limit": 0, "ratelimit_probe_success": 0, "ratelimit_probes_total": 8} {
		if n := testutil.CollectAndCount(c, name); n != want {
			t.Errorf("%s: %d series after the provider changed, want %d", name, n, want)
		}
	}
	want := `# HELP ratelimit_probe_tokens_total Tokens billed to the exporter's own probes, from the usage in their responses.
# TYPE ratelimit_probe_tokens_total counter
ratelimit_probe_tokens_total{key="k",model="m",provider="anthropic"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ratelimit_probe_tokens_total"); err != nil {
		t.Error(err)
	}
}

func expfmtParser() *expfmt.TextParser {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return &p
}

// Split, /metrics has every family but the latest probe's gauges and a
// target's text has those gauges alone: between them, every family once.
func TestSplitProbeGauges(t *testing.T) {
	c, _, targets := newTestCollector(t, config.Key{Name: "prod", Provider: "cerebras", Models: []string{"llama3.1-8b"}})
	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: fullHeaders(t)}, Duration: time.Second, Outcome: prober.Success})
	c.SetInterval(targets[0].ID(), time.Minute)
	familiesOf := func(text string) []string {
		var names []string
		for line := range strings.Lines(text) {
			if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
				names = append(names, strings.Fields(name)[0])
			}
		}
		return names
	}
	var target strings.Builder
	if err := c.WriteTargetText(&target, targets[0].ID(), nil); err != nil {
		t.Fatal(err)
	}
	whole, one := familiesOf(writeText(t, c)), familiesOf(target.String())
	if !slices.Contains(whole, "ratelimit_probe_success") || !slices.Equal(whole, one) {
		t.Fatalf("not split yet: /metrics and /probe should both have every family:\n%v\n%v", whole, one)
	}

	c.SplitProbeGauges()
	target.Reset()
	if err := c.WriteTargetText(&target, targets[0].ID(), nil); err != nil {
		t.Fatal(err)
	}
	gauges := []string{"ratelimit_probe_success", "ratelimit_probe_duration_seconds", "ratelimit_probe_status_code",
		"ratelimit_probe_last_success_timestamp_seconds", "ratelimit_probe_interval_seconds"}
	if got := familiesOf(target.String()); !slices.Equal(got, gauges) {
		t.Errorf("a target's text has %v, want the probe's gauges alone: %v", got, gauges)
	}
	rest := familiesOf(writeText(t, c))
	for _, name := range gauges {
		if slices.Contains(rest, name) {
			t.Errorf("/metrics still has %s", name)
		}
	}
	if len(rest)+len(gauges) != len(whole) {
		t.Errorf("split, %d + %d families, want the %d of before: %v", len(rest), len(gauges), len(whole), rest)
	}
}
