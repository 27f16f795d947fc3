package collector

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

func setValue(w *ratelimit.Window, k ratelimit.Kind, v float64) {
	i := ratelimit.KindIndex[k]
	w.Values[i], w.Has[i] = v, true
}

func limitWindow(resource, window string, limit float64) ratelimit.Window {
	w := ratelimit.Window{Resource: resource, Window: window}
	setValue(&w, ratelimit.Limit, limit)
	return w
}

const (
	limitHelp           = "# HELP ratelimit_limit Rate limit of a window, as the provider's rate-limit headers (or OpenRouter's key endpoint) give it; where they give none, as the admin API or the config does (ratelimit_configured_limit).\n# TYPE ratelimit_limit gauge\n"
	configuredLimitHelp = "# HELP ratelimit_configured_limit Rate limit of a window as a source other than the responses' headers gives it: admin_api (the provider's admin API) or config (a limit the config declares). ratelimit_limit shows the headers' value where they give one.\n# TYPE ratelimit_configured_limit gauge\n"
	estimateHelp        = "# HELP ratelimit_remaining_estimate An estimate of what is left of a window the config declares: its limit minus what the proxy counted in the current window. Absent until a whole window has been counted.\n# TYPE ratelimit_remaining_estimate gauge\n"
	resetTimestampHelp  = "# HELP ratelimit_reset_timestamp_seconds When the window is full again: probe time plus reset_seconds (Unix seconds).\n# TYPE ratelimit_reset_timestamp_seconds gauge\n"
)

// An admin API's limits and a probe's headers are one series per window:
// the headers' limit where they give one, the admin API's where they do
// not; ratelimit_configured_limit says what the admin API said of each.
func TestAdminLimitsBesideHeaders(t *testing.T) {
	c, reg, targets := newTestCollector(t, config.Key{Name: "k", Provider: "cerebras", Models: []string{"m"}})
	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Limit, Resource: "requests", Window: "minute", Value: 30},
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 29},
	}}, Outcome: prober.Success})
	c.SetConfigured(SourceAdminAPI, "k", map[string][]ratelimit.Window{"m": {
		limitWindow("requests", "minute", 60), // the admin API disagrees: both are shown
		limitWindow("requests", "day", 14400),
	}}, probeTime)

	labels := func(window string) string {
		return `{key="k",model="m",provider="cerebras",resource="requests",window="` + window + `"}`
	}
	source := func(window string) string {
		return `{key="k",model="m",provider="cerebras",resource="requests",source="admin_api",window="` + window + `"}`
	}
	want := limitHelp +
		"ratelimit_limit" + labels("day") + " 14400\n" +
		"ratelimit_limit" + labels("minute") + " 30\n" +
		configuredLimitHelp +
		"ratelimit_configured_limit" + source("day") + " 14400\n" +
		"ratelimit_configured_limit" + source("minute") + " 60\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_limit", "ratelimit_configured_limit", "ratelimit_remaining_estimate"); err != nil {
		t.Error(err)
	}
	checkTextMatches(t, c, reg)
}

// OpenAI's headers name no window; the admin API's limit of the same value
// names it, and the two are one series. Two candidates name nothing.
func TestAdminLimitNamesTheHeadersWindow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		admin    []ratelimit.Window
		declared []ratelimit.Window // what the config says, if anything
		named    bool               // the headers give a requests/minute window too
		window   string
	}{
		{name: "one match", admin: []ratelimit.Window{limitWindow("requests", "minute", 500), limitWindow("requests", "day", 10000)}, window: "minute"},
		{name: "no match", admin: []ratelimit.Window{limitWindow("requests", "minute", 600)}},
		{name: "two matches", admin: []ratelimit.Window{limitWindow("requests", "minute", 500), limitWindow("requests", "day", 500)}},
		{name: "another resource", admin: []ratelimit.Window{limitWindow("tokens", "minute", 500)}},
		// The admin API and the config name the same window: one match.
		{name: "two sources agree", admin: []ratelimit.Window{limitWindow("requests", "minute", 500)},
			declared: []ratelimit.Window{limitWindow("requests", "minute", 500)}, window: "minute"},
		// The headers name that window already: naming the other one
		// after it would make two series of one window.
		{name: "the window is the headers' already", admin: []ratelimit.Window{limitWindow("requests", "minute", 500)}, named: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, reg, targets := newTestCollector(t, config.Key{Name: "k", Provider: "openai", Models: []string{"m"}})
			obs := []ratelimit.Observation{
				{Kind: ratelimit.Limit, Resource: "requests", Value: 500},
				{Kind: ratelimit.Remaining, Resource: "requests", Value: 499},
			}
			if tc.named {
				obs = append(obs, ratelimit.Observation{Kind: ratelimit.Limit, Resource: "requests", Window: "minute", Value: 100})
			}
			c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: obs}, Outcome: prober.Success})
			c.SetConfigured(SourceAdminAPI, "k", map[string][]ratelimit.Window{"m": tc.admin}, probeTime)
			if tc.declared != nil {
				c.SetConfigured(SourceConfig, "k", map[string][]ratelimit.Window{"m": tc.declared}, probeTime)
			}
			text := writeText(t, c)
			want := `ratelimit_remaining{key="k",model="m",provider="openai",resource="requests",window="` + tc.window + `"} 499`
			if !strings.Contains(text, want) {
				t.Errorf("no %s in:\n%s", want, text)
			}
			checkTextMatches(t, c, reg)
		})
	}
}

// A model the admin API lists and no key probes shows its limits, and no
// probe figures; it goes when the admin API stops listing it, and stays
// over a reload that keeps the key.
func TestAdminListsAModelNoKeyProbes(t *testing.T) {
	key := config.Key{Name: "k", Provider: "openai", Models: []string{"m"}, Labels: map[string]string{"team": "a"}}
	c, reg, _ := newTestCollector(t, key)
	c.SetConfigured(SourceAdminAPI, "k", map[string][]ratelimit.Window{"other": {limitWindow("tokens", "minute", 90000)}}, probeTime)

	want := limitHelp + `ratelimit_limit{key="k",model="other",provider="openai",resource="tokens",team="a",window="minute"} 90000
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_limit"); err != nil {
		t.Error(err)
	}
	text := writeText(t, c)
	for _, absent := range []string{`ratelimit_probes_total{cause="",key="k",model="other"`, `ratelimit_probe_tokens_total{key="k",model="other"`} {
		if strings.Contains(text, absent) {
			t.Errorf("probe figures for a model no key probes: %s in\n%s", absent, text)
		}
	}
	checkTextMatches(t, c, reg)

	c.Apply(&config.Config{Keys: []config.Key{key}})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_limit"); err != nil {
		t.Errorf("after a reload that keeps the key: %v", err)
	}
	renamed := key
	renamed.Provider = "anthropic"
	c.Apply(&config.Config{Keys: []config.Key{renamed}})
	if n := testutil.CollectAndCount(c, "ratelimit_limit"); n != 0 {
		t.Errorf("%d ratelimit_limit series after the key moved to another provider, want 0", n)
	}

	c.Apply(&config.Config{Keys: []config.Key{key}})
	c.SetConfigured(SourceAdminAPI, "k", map[string][]ratelimit.Window{"other": {limitWindow("tokens", "minute", 90000)}}, probeTime)
	c.SetConfigured(SourceAdminAPI, "k", map[string][]ratelimit.Window{}, probeTime.Add(time.Hour))
	if n := testutil.CollectAndCount(c, "ratelimit_limit"); n != 0 {
		t.Errorf("%d ratelimit_limit series once the admin API lists the model no more, want 0", n)
	}
	if strings.Contains(writeText(t, c), `model="other"`) {
		t.Errorf("the model the admin API no longer lists is still shown:\n%s", writeText(t, c))
	}

	// A key the config does not have is ignored.
	c.SetConfigured(SourceAdminAPI, "gone", map[string][]ratelimit.Window{"x": {limitWindow("tokens", "minute", 1)}}, probeTime)
	if strings.Contains(writeText(t, c), `key="gone"`) {
		t.Error("a key the config does not have was shown")
	}
}

// The models only a configured source names are bounded per key.
func TestConfiguredModelsBudget(t *testing.T) {
	c, _, _ := newTestCollector(t, config.Key{Name: "k", Provider: "openai", Models: []string{"m"}})
	byModel := map[string][]ratelimit.Window{}
	for i := range maxConfiguredModels + 3 {
		byModel[fmt.Sprintf("model-%04d", i)] = []ratelimit.Window{limitWindow("tokens", "minute", 1)}
	}
	c.SetConfigured(SourceAdminAPI, "k", byModel, probeTime)
	if n := testutil.CollectAndCount(c, "ratelimit_limit"); n != maxConfiguredModels {
		t.Errorf("%d ratelimit_limit series, want %d", n, maxConfiguredModels)
	}
	if got := testutil.ToFloat64(c.dropped.WithLabelValues(DropConfiguredModels)); got != 3 {
		t.Errorf("%v models dropped, want 3", got)
	}

	// The models that go give their places to the ones that come.
	renamed := map[string][]ratelimit.Window{}
	for i := range maxConfiguredModels {
		renamed[fmt.Sprintf("renamed-%04d", i)] = []ratelimit.Window{limitWindow("tokens", "minute", 1)}
	}
	c.SetConfigured(SourceAdminAPI, "k", renamed, probeTime)
	if n := testutil.CollectAndCount(c, "ratelimit_limit"); n != maxConfiguredModels {
		t.Errorf("%d ratelimit_limit series after the models changed, want %d", n, maxConfiguredModels)
	}
	if text := writeText(t, c); strings.Contains(text, `model="model-`) || !strings.Contains(text, `model="renamed-0999"`) {
		t.Error("the models that left stay, or the ones that came are not all shown")
	}
}

// A declared window: its limit, the estimate of what is left and its end,
// where the headers give no figure of that window; ratelimit_limit prefers
// the admin API's limit to the config's.
func TestDeclaredWindowEstimate(t *testing.T) {
	c, reg, targets := newTestCollector(t, config.Key{Name: "k", Provider: "deepseek", Models: []string{"m"}})
	declared := limitWindow("requests", "minute", 60)
	setValue(&declared, ratelimit.Remaining, 42)
	setValue(&declared, ratelimit.Reset, 30)
	c.SetConfigured(SourceConfig, "k", map[string][]ratelimit.Window{"m": {declared, limitWindow("tokens", "day", 1e6)}}, probeTime)
	c.SetConfigured(SourceAdminAPI, "k", map[string][]ratelimit.Window{"m": {limitWindow("tokens", "day", 2e6)}}, probeTime)

	w := func(resource, window string) string {
		return `{key="k",model="m",provider="deepseek",resource="` + resource + `",window="` + window + `"}`
	}
	src := func(resource, window, source string) string {
		return `{key="k",model="m",provider="deepseek",resource="` + resource + `",source="` + source + `",window="` + window + `"}`
	}
	want := limitHelp +
		"ratelimit_limit" + w("requests", "minute") + " 60\n" +
		"ratelimit_limit" + w("tokens", "day") + " 2e+06\n" +
		configuredLimitHelp +
		"ratelimit_configured_limit" + src("requests", "minute", "config") + " 60\n" +
		"ratelimit_configured_limit" + src("tokens", "day", "admin_api") + " 2e+06\n" +
		"ratelimit_configured_limit" + src("tokens", "day", "config") + " 1e+06\n" +
		estimateHelp +
		"ratelimit_remaining_estimate" + w("requests", "minute") + " 42\n" +
		resetTimestampHelp +
		"ratelimit_reset_timestamp_seconds" + w("requests", "minute") + " 1.79500003e+09\n"
	names := []string{"ratelimit_limit", "ratelimit_configured_limit", "ratelimit_remaining_estimate", "ratelimit_reset_timestamp_seconds", "ratelimit_remaining"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// A header's reset of the window wins over the count's.
	c.Observe(targets[0].ID(), "deepseek", &ratelimit.Reading{Time: probeTime.Add(time.Second), StatusCode: 200, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Reset, Resource: "requests", Window: "minute", Value: 5},
	}})
	if !strings.Contains(writeText(t, c), "ratelimit_reset_timestamp_seconds"+w("requests", "minute")+" 1.795000006e+09") {
		t.Errorf("the header's reset did not win:\n%s", writeText(t, c))
	}
	checkTextMatches(t, c, reg)
}

// checkTextMatches checks that the text a scrape writes is what Collect
// gives.
func checkTextMatches(t *testing.T, c *Collector, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(writeText(t, c))); err != nil {
		t.Errorf("the text differs from Collect: %v", err)
	}
}

// Each window says when its figures were read: a probe's and a later proxy
// reading's windows at the reading's time, a window only the config gives
// at the count's, one only the admin API gives at its read, a balance not
// at all (its series have a currency, not a window).
func TestReadingTimestampPerWindow(t *testing.T) {
	c, reg, targets := newTestCollector(t, config.Key{Name: "k", Provider: "deepseek", Models: []string{"m"}})
	c.Record(targets[0].ID(), &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 29},
		{Kind: ratelimit.Balance, Resource: "USD", Value: 4.2},
	}}, Outcome: prober.Success})
	declared := limitWindow("tokens", "minute", 1000)
	setValue(&declared, ratelimit.Remaining, 900)
	c.SetConfigured(SourceConfig, "k", map[string][]ratelimit.Window{"m": {declared}}, probeTime.Add(2*time.Second))
	c.SetConfigured(SourceAdminAPI, "k", map[string][]ratelimit.Window{"m": {limitWindow("requests", "day", 14400)}}, probeTime.Add(-time.Hour))

	w := func(resource, window string) string {
		return `{key="k",model="m",provider="deepseek",resource="` + resource + `",window="` + window + `"}`
	}
	const help = "# HELP ratelimit_reading_timestamp_seconds When the window's figures were read (Unix seconds): by a probe, from the proxy's traffic, or, for a window only the config or an admin API gives, when that source last gave it. Replicas each serve their own: take the freshest.\n# TYPE ratelimit_reading_timestamp_seconds gauge\n"
	want := help +
		"ratelimit_reading_timestamp_seconds" + w("requests", "day") + " 1.7949964e+09\n" +
		"ratelimit_reading_timestamp_seconds" + w("requests", "minute") + " 1.795e+09\n" +
		"ratelimit_reading_timestamp_seconds" + w("tokens", "minute") + " 1.795000002e+09\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_reading_timestamp_seconds"); err != nil {
		t.Error(err)
	}

	c.Observe(targets[0].ID(), "deepseek", &ratelimit.Reading{Time: probeTime.Add(5 * time.Second), StatusCode: 200, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 20},
	}})
	if !strings.Contains(writeText(t, c), "ratelimit_reading_timestamp_seconds"+w("requests", "minute")+" 1.795000005e+09") {
		t.Errorf("the proxy's later reading did not move the window's reading time:\n%s", writeText(t, c))
	}
	checkTextMatches(t, c, reg)
}
