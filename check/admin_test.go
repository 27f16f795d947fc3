package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"

	"github.com/ratelimit-exporter/ratelimit_exporter/adminpoll"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

func limitWindow(resource, window string, limit float64) ratelimit.Window {
	w := ratelimit.Window{Resource: resource, Window: window}
	i := ratelimit.KindIndex[ratelimit.Limit]
	w.Values[i], w.Has[i] = limit, true
	return w
}

// adminReport is a check of an OpenAI key with an admin source: the probe
// reads the headers' windows, the admin API the same windows named and a
// model no key probes; an Anthropic source fails for one workspace.
func adminReport(t *testing.T) snapshot.Report {
	t.Helper()
	cfg := &config.Config{
		Probe: config.Probe{Concurrency: 2, Timeout: config.Duration(7 * time.Second)},
		Keys: []config.Key{
			{Name: "prod", Provider: "openai", Models: []string{"gpt-4o-mini"}, Admin: "oai", Project: "proj_abc"},
			{Name: "team", Provider: "anthropic", Models: []string{"claude-haiku-4-5"}, Admin: "ant", Workspace: "wrkspc_01"},
		},
	}
	answers := map[string]prober.Result{
		"prod": {Outcome: prober.Success, Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Observations: []ratelimit.Observation{
			obs(ratelimit.Limit, "requests", "", 500), obs(ratelimit.Remaining, "requests", "", 499), obs(ratelimit.Reset, "requests", "", 0.12),
		}}},
		"team": {Reading: ratelimit.Reading{Time: probeTime, StatusCode: 401}, Outcome: prober.Unauthorized, Err: errors.New("HTTP 401 (authentication_error)")},
	}
	report := Run(context.Background(), cfg, &fakeProber{answers: answers}, func() time.Time { return probeTime.Add(500 * time.Millisecond) })
	addAdmin(&report, cfg, []adminpoll.Read{
		{Admin: "oai", Provider: "openai", Keys: map[string]map[string][]ratelimit.Window{"prod": {
			"gpt-4o-mini": {limitWindow("requests", "day", 10000), limitWindow("requests", "minute", 500)},
			"o3":          {limitWindow("tokens", "minute", 30000)},
		}}, Failed: map[string]error{}},
		{Admin: "ant", Provider: "anthropic", Keys: map[string]map[string][]ratelimit.Window{},
			Failed: map[string]error{"wrkspc_01": errors.New("anthropic workspace rate limits: page 1: HTTP 401: the admin key was refused")}},
	})
	return report
}

// The table shows the admin API's limits beside the probe's windows,
// marked, with the models no key probes; and says which admin source read
// which project or workspace.
func TestTableWithAdminSources(t *testing.T) {
	var out strings.Builder
	if err := Write(&out, "table", adminReport(t)); err != nil {
		t.Fatal(err)
	}
	want := `KEY   PROVIDER   MODEL             RESOURCE  WINDOW       REMAINING OF LIMIT                                  RESETS IN
prod  openai     gpt-4o-mini       requests  (not given)  499 of 500               ████████████████████ 100%  now
prod  openai     gpt-4o-mini       requests  day          limit 10000 (admin API)                             -
prod  openai     gpt-4o-mini       requests  minute       limit 500 (admin API)                               -
prod  openai     o3                tokens    minute       limit 30000 (admin API)                             -
team  anthropic  claude-haiku-4-5  -         -            nothing read                                        -

1 of 2 key and model pairs read no rate limits:
  team claude-haiku-4-5 (anthropic): unauthorized: HTTP 401 (authentication_error)

Admin sources (limits marked "admin API"):
  oai (openai): read the rate limits of proj_abc
  ant (anthropic): read no rate limits of wrkspc_01: anthropic workspace rate limits: page 1: HTTP 401: the admin key was refused
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}

// In JSON, an admin API's windows say their source; a model no key probes
// is not_probed; the report is not OK when a source failed.
func TestJSONWithAdminSources(t *testing.T) {
	report := adminReport(t)
	var out strings.Builder
	if err := Write(&out, "json", report); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK      bool
		Targets []json.RawMessage
		Admin   []json.RawMessage
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatal(err)
	}
	if got.OK || len(got.Targets) != 3 || len(got.Admin) != 2 {
		t.Fatalf("ok %v, %d targets, %d admin sources:\n%s", got.OK, len(got.Targets), len(got.Admin), out.String())
	}
	compact := func(raw json.RawMessage) string {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for i, want := range map[int]string{
		0: `{"key":"prod","provider":"openai","model":"gpt-4o-mini","ok":true,"result":"success","status_code":200,"read_at":"2026-11-22T12:00:00Z","source":"probe","windows":[{"resource":"requests","window":"","remaining":499,"limit":500,"reset_seconds":0.12,"resets_at":"2026-11-22T12:00:00.12Z","source":"probe","read_at":"2026-11-22T12:00:00Z","current":false},` +
			`{"resource":"requests","window":"day","limit":10000,"source":"admin_api","read_at":"2026-11-22T12:00:00.5Z","current":true},` +
			`{"resource":"requests","window":"minute","limit":500,"source":"admin_api","read_at":"2026-11-22T12:00:00.5Z","current":true}]}`,
		1: `{"key":"prod","provider":"openai","model":"o3","ok":true,"result":"not_probed","status_code":0,"windows":[{"resource":"tokens","window":"minute","limit":30000,"source":"admin_api","read_at":"2026-11-22T12:00:00.5Z","current":true}]}`,
	} {
		if got := compact(got.Targets[i]); got != want {
			t.Errorf("target %d:\n%s\nwant\n%s", i, got, want)
		}
	}
	for i, want := range []string{
		`{"name":"oai","provider":"openai","ok":true,"read":["proj_abc"],"read_at":"2026-11-22T12:00:00.5Z"}`,
		`{"name":"ant","provider":"anthropic","ok":false,"read":[],"failed":[{"scope":"wrkspc_01","error":"anthropic workspace rate limits: page 1: HTTP 401: the admin key was refused"}],"read_at":"2026-11-22T12:00:00.5Z"}`,
	} {
		if got := compact(got.Admin[i]); got != want {
			t.Errorf("admin %d:\n%s\nwant\n%s", i, got, want)
		}
	}
}

// --config.check says where each admin source sends its key, how often,
// and for which keys.
func TestConfigCommandShowsAdminSources(t *testing.T) {
	cfg, err := config.Parse([]byte(`admin:
  - {name: oai, provider: openai, admin_key: sk-admin-test-check-1, budgets: [{monthly: 100}]}
  - {name: ant, provider: anthropic, admin_key: sk-admin-test-check-2, base_url: 'http://127.0.0.1:9', interval: 30m}
keys:
  - {name: prod, provider: openai, api_key: sk-a, admin: oai, project: proj_abc}
  - {name: team, provider: anthropic, api_key: sk-b, admin: ant}
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if code := ConfigCommand(func() (*config.Config, error) { return cfg, nil }, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := "Config is valid: 2 keys, 2 key and model pairs to probe, interval mode, every 1m0s\n" +
		"  prod: openai https://api.openai.com/v1, models [gpt-4o-mini]\n" +
		"  team: anthropic https://api.anthropic.com, models [claude-haiku-4-5]\n" +
		"  admin source oai: openai https://api.openai.com/v1, every 1h0m0s, limits of keys [prod], 1 budgets\n" +
		"  admin source ant: anthropic http://127.0.0.1:9, every 30m0s, limits of keys [team], 0 budgets\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if strings.Contains(out.String(), "sk-admin-test-check") {
		t.Error("the admin key is shown")
	}
}

// A check whose probes all read rate limits fails when an admin source
// did not read one of its projects, and passes when it did.
func TestAdminFailureFailsTheCheck(t *testing.T) {
	cfg := &config.Config{Keys: []config.Key{{Name: "prod", Provider: "openai", Admin: "oai", Project: "proj_abc"}}}
	for _, tc := range []struct {
		failed map[string]error
		ok     bool
	}{
		{map[string]error{}, true},
		{map[string]error{"proj_abc": errors.New("openai project rate limits: page 1: HTTP 401: the admin key was refused")}, false},
	} {
		report := snapshot.Report{OK: true, Targets: []snapshot.Target{}}
		addAdmin(&report, cfg, []adminpoll.Read{{Admin: "oai", Provider: "openai", Failed: tc.failed}})
		if report.OK != tc.ok {
			t.Errorf("failed %v: OK %v, want %v", tc.failed, report.OK, tc.ok)
		}
	}
}
