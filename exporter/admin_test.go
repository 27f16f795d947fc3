package exporter

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

const adminKey = "sk-admin-test-canary-exporter-3b7e"

func adminConfig(url, extraKeys string) string {
	return `probe: {mode: scrape}
admin:
  - {name: oai, provider: openai, admin_key: ` + adminKey + `, base_url: '` + url + `/v1'}
keys:
  - {name: prod, provider: openai, api_key: sk-test-exporter-prod, base_url: '` + url + `/v1', admin: oai, project: proj_abc}
` + extraKeys
}

func metricsText(t *testing.T, e *Exporter) string {
	t.Helper()
	var b strings.Builder
	if err := e.Readings().WriteText(&b, nil); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// An admin source's limits reach the metrics, a model no key probes
// included; a reload that adds a key of the same project gives it those
// limits at once, without reading again; a reload whose admin source
// cannot be prepared is refused and changes nothing.
func TestAdminSourceThroughReloads(t *testing.T) {
	sim := simulator.NewDialect(simulator.OpenAI)
	sim.SetAdminLimits(adminKey, "proj_abc",
		simulator.AdminLimit{Models: []string{"gpt-4o-mini"}, Values: map[string]float64{"max_requests_per_1_minute": 500}},
		simulator.AdminLimit{Models: []string{"o3"}, Values: map[string]float64{"max_requests_per_1_minute": 50}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	e := newExporter(t)
	if err := e.Apply(parse(t, adminConfig(srv.URL, ""))); err != nil {
		t.Fatal(err)
	}
	const o3 = `ratelimit_limit{key="prod",model="o3",provider="openai",resource="requests",window="minute"} 50`
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(metricsText(t, e), o3); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in\n%s", o3, metricsText(t, e))
		}
	}
	reads := sim.AdminRequests()
	// The JSON view tells how the source went; the targets, in scrape
	// mode and never scraped, are not probed yet, so the report is not OK.
	report := e.Limits(time.Now())
	b, err := json.Marshal(report.Admin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `[{"name":"oai","provider":"openai","ok":true,"read":["proj_abc"],"read_at":"`) || len(report.Admin) != 1 {
		t.Errorf("admin sources %s, want oai read", b)
	}
	if report.OK || len(report.Targets) != 2 || report.Targets[0].Result != snapshot.ResultPending || report.Targets[1].Result != snapshot.ResultNotProbed {
		t.Errorf("ok %v, targets %+v: want gpt-4o-mini pending, o3 not probed, and not OK", report.OK, report.Targets)
	}

	second := "  - {name: prod2, provider: openai, api_key: sk-test-exporter-prod2, base_url: '" + srv.URL + "/v1', admin: oai, project: proj_abc}\n"
	if err := e.Apply(parse(t, adminConfig(srv.URL, second))); err != nil {
		t.Fatal(err)
	}
	const o3Second = `ratelimit_limit{key="prod2",model="o3",provider="openai",resource="requests",window="minute"} 50`
	if text := metricsText(t, e); !strings.Contains(text, o3Second) || !strings.Contains(text, o3) {
		t.Errorf("right after the reload, no %s or %s in\n%s", o3Second, o3, text)
	}

	refused := parse(t, adminConfig(srv.URL, ""))
	refused.Admin[0].HTTPClient.TLSConfig.CAFile = "/nonexistent/ca.pem" // gone since the config loaded
	if err := e.Apply(refused); err == nil || !strings.Contains(err.Error(), "admin oai: http_client") {
		t.Errorf("a config whose admin client cannot be built: %v", err)
	}
	if text := metricsText(t, e); !strings.Contains(text, o3Second) {
		t.Errorf("after the refused reload, no %s in\n%s", o3Second, text)
	}
	if n := sim.AdminRequests(); n != reads {
		t.Errorf("%d admin reads after the first, want none: the reloads kept what it read", n-reads)
	}
	if strings.Contains(metricsText(t, e), adminKey) {
		t.Error("the metrics hold the admin key")
	}
}
