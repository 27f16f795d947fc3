package check

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// The windows that give no limit: a subscription's used shares and
// statuses, a provisioned deployment's utilization beside remaining-only
// windows, a balance per currency, and a provider that only says it served.
func newWindowsReport(t *testing.T) snapshot.Report {
	t.Helper()
	cfg := &config.Config{
		Probe: config.Probe{Concurrency: 2, Timeout: config.Duration(7 * time.Second)},
		Keys: []config.Key{
			{Name: "max", Provider: "anthropic", Models: []string{"claude-sonnet-4-5"}},
			{Name: "ptu", Provider: "azure_openai", Models: []string{"gpt-4o"}},
			{Name: "ds", Provider: "deepseek", Models: []string{""}},
			{Name: "gem", Provider: "gemini", Models: []string{"gemini-2.5-flash"}},
		},
	}
	read := func(obs ...ratelimit.Observation) ratelimit.Reading {
		return ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: obs}
	}
	answers := map[string]prober.Result{
		"max": {Outcome: prober.Success, Reading: read(
			obs(ratelimit.Reset, "unified", "", 9000), obs(ratelimit.Status, "unified", "", ratelimit.StatusAllowed),
			obs(ratelimit.Reset, "unified", "5h", 9000), obs(ratelimit.Status, "unified", "5h", ratelimit.StatusAllowed),
			obs(ratelimit.Utilization, "unified", "5h", 0.42),
			obs(ratelimit.Reset, "unified", "7d", 3*86400+3600), obs(ratelimit.Status, "unified", "7d", ratelimit.StatusAllowedWarning),
			obs(ratelimit.Utilization, "unified", "7d", 0.815),
		)},
		"ptu": {Outcome: prober.Success, Reading: read(
			obs(ratelimit.Utilization, "deployment", "", 0.684),
			obs(ratelimit.Remaining, "requests", "", 249), obs(ratelimit.Remaining, "tokens", "", 249980),
		)},
		"ds": {Outcome: prober.Success, Free: true, Reading: read(
			obs(ratelimit.Balance, "CNY", "", 110.5), obs(ratelimit.Balance, "USD", "", 15.25),
		)},
		"gem": {Outcome: prober.Success, Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Served: true}},
	}
	return Run(context.Background(), cfg, &fakeProber{answers: answers}, func() time.Time { return probeTime.Add(500 * time.Millisecond) })
}

func TestTableNewWindows(t *testing.T) {
	report := newWindowsReport(t)
	var out strings.Builder
	if err := Write(&out, "table", report); err != nil {
		t.Fatal(err)
	}
	want := `KEY  PROVIDER      MODEL              RESOURCE    WINDOW       REMAINING OF LIMIT                                      RESETS IN
ds   deepseek      (all)              balance     -            110.5 CNY                                               -
ds   deepseek      (all)              balance     -            15.25 USD                                               -
gem  gemini        gemini-2.5-flash   -           -            served: no window empty                                 -
max  anthropic     claude-sonnet-4-5  unified     (not given)  allowed                                                 2h30m
max  anthropic     claude-sonnet-4-5  unified     5h           42% used, allowed            ████████████░░░░░░░░  58%  2h30m
max  anthropic     claude-sonnet-4-5  unified     7d           81.5% used, allowed_warning  ████░░░░░░░░░░░░░░░░  19%  3d1h
ptu  azure_openai  gpt-4o             deployment  (not given)  68.4% used                   ██████░░░░░░░░░░░░░░  32%  -
ptu  azure_openai  gpt-4o             requests    (not given)  249 of ?                                                -
ptu  azure_openai  gpt-4o             tokens      (not given)  249980 of ?                                             -

All 4 key and model pairs read their rate limits.
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestJSONNewWindows(t *testing.T) {
	report := newWindowsReport(t)
	var out strings.Builder
	if err := Write(&out, "json", report); err != nil {
		t.Fatal(err)
	}
	var got struct{ Targets []map[string]any }
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{
		`{"balances":[{"amount":110.5,"currency":"CNY"},` +
			`{"amount":15.25,"currency":"USD"}],"key":"ds","model":"","ok":true,"provider":"deepseek","read_at":"2026-11-22T12:00:00Z","result":"success","source":"probe","status_code":200,"windows":[]}`,
		`{"key":"gem","model":"gemini-2.5-flash","ok":true,"provider":"gemini","read_at":"2026-11-22T12:00:00Z","result":"success","served":true,"source":"probe","status_code":200,"windows":[]}`,
		`{"key":"max","model":"claude-sonnet-4-5","ok":true,"provider":"anthropic","read_at":"2026-11-22T12:00:00Z","result":"success","source":"probe","status_code":200,"windows":[{"current":true,"read_at":"2026-11-22T12:00:00Z","reset_seconds":9000,"resets_at":"2026-11-22T14:30:00Z","resource":"unified","source":"probe","status":"allowed","window":""},` +
			`{"current":true,"read_at":"2026-11-22T12:00:00Z","reset_seconds":9000,"resets_at":"2026-11-22T14:30:00Z","resource":"unified","source":"probe","status":"allowed","utilization":0.42,"window":"5h"},` +
			`{"current":true,"read_at":"2026-11-22T12:00:00Z","reset_seconds":262800,"resets_at":"2026-11-25T13:00:00Z","resource":"unified","source":"probe","status":"allowed_warning","utilization":0.815,"window":"7d"}]}`,
	} {
		target, _ := json.Marshal(got.Targets[i])
		if string(target) != want {
			t.Errorf("target %d:\n%s\nwant\n%s", i, target, want)
		}
	}
}
