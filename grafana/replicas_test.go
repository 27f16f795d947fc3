package grafana

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// Replicas behind one Service each serve their own readings of a window;
// the panels show the freshest one (by ratelimit_reading_timestamp_seconds)
// once, and a declared window's estimate as the limit less every replica's
// count. promtool evaluates the panels' queries, recorded under the names
// testdata/replicas_test.yml reads, on three replicas' series: one stale,
// one fresh, one gone.
func TestPanelsTakeTheFreshestReplica(t *testing.T) {
	promtool := testkit.RequireTool(t, "promtool")
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	queries := map[string]string{ // recorded name: panel title and query refId
		"dashboard:headroom":           "Headroom per window/A",
		"dashboard:lowest_headroom":    "Lowest headroom/A",
		"dashboard:exhausted":          "Windows exhausted/A",
		"dashboard:past_reset":         "Windows past their reset/A",
		"dashboard:table_past_reset":   "Last read of each window/A",
		"dashboard:table_headroom":     "Last read of each window/B",
		"dashboard:table_full_again":   "Last read of each window/C",
		"dashboard:table_read_ago":     "Last read of each window/D",
		"dashboard:oldest":             "Oldest data/A",
		"dashboard:remaining":          "Remaining requests vs limit/A",
		"dashboard:estimate":           "Remaining requests vs limit/C",
		"dashboard:time_until_full":    "Time until each window is full again/A",
		"dashboard:probes_unnecessary": "Probes the traffic made unnecessary, last 24h/A",
	}
	vars := strings.NewReplacer("$job", ".*", "$instance", ".+", "$provider", ".*", "$key", ".*", "$model", ".*")
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for record, query := range queries {
		title, ref, _ := strings.Cut(query, "/")
		found := false
		for _, p := range d.Panels {
			if p.Title != title {
				continue
			}
			for _, target := range p.Targets {
				if target.RefID == ref {
					rules = append(rules, rule{record, vars.Replace(target.Expr)})
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("no panel %q with a query %s", title, ref)
		}
	}
	dir := t.TempDir()
	file, _ := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err := os.WriteFile(filepath.Join(dir, "dashboard.rules.yml"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	test, err := os.ReadFile("testdata/replicas_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "replicas_test.yml"), test, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "replicas_test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}
