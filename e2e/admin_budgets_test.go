package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Budgets: the binary reads the month's costs with the admin key and
// exports each budget beside its spend, the whole organization's when the
// budget names no project.
func TestAdminBudgetsInTheBinary(t *testing.T) {
	sim, url := startAdminSimulator(t)
	now := time.Now().UTC()
	sim.SetCosts(adminKey, []simulator.DayCost{
		{Day: now, Project: "proj_abc", Currency: "USD", Amount: 12.5},
		{Day: now, Project: "proj_def", Currency: "USD", Amount: 7.5},
	})
	cfg := strings.Replace(adminConfig(url, writeAdminKey(t, adminKey)), "base_url: '"+url+"/v1'}",
		"base_url: '"+url+"/v1', budgets: [{monthly: 500}, {project: proj_abc, monthly: 100}]}", 1)
	e := start(t, nil, "--config.file="+testkit.WriteConfig(t, cfg))
	labels := func(project string) string {
		return fmt.Sprintf(`{admin="openai-org",currency="USD",project=%q,provider="openai"}`, project)
	}
	body := e.waitFor(t,
		`ratelimit_budget`+labels("")+` 500`,
		`ratelimit_budget`+labels("proj_abc")+` 100`,
		`ratelimit_spend`+labels("")+` 20`,
		`ratelimit_spend`+labels("proj_abc")+` 12.5`,
		`ratelimit_admin_success{admin="openai-org",api="costs",provider="openai"} 1`,
	)
	if strings.Contains(body, adminKey) || strings.Contains(e.Logs(), adminKey) {
		t.Error("the admin key shows")
	}
}
