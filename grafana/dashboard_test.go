package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

type dashboard struct {
	Inputs     json.RawMessage `json:"__inputs"`
	UID        string          `json:"uid"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Multi      bool   `json:"multi"`
			IncludeAll bool   `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// Panel is the part of a Grafana panel the tests read.
type Panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID        string `json:"refId"`
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		Datasource   struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

func TestDashboardIsPortable(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	if d.Inputs != nil {
		t.Error("__inputs breaks file provisioning; use the datasource variable")
	}
	if d.UID == "" {
		t.Error("no uid: links to the dashboard would change on every import")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		q, _ := json.Marshal(v.Query)
		vars[v.Name] = v.Type + " " + string(q)
		if v.Name != "datasource" && (!v.Multi || !v.IncludeAll) {
			t.Errorf("variable %s is not multi-select with All", v.Name)
		}
	}
	if !strings.HasPrefix(vars["datasource"], `datasource "prometheus"`) {
		t.Errorf("datasource variable: %s", vars["datasource"])
	}
	for _, name := range []string{"job", "instance", "provider", "key", "model"} {
		if !strings.Contains(vars[name], "label_values(") || !strings.Contains(vars[name], ", "+name+")") {
			t.Errorf("variable %s is not filled by label_values(..., %s): %s", name, name, vars[name])
		}
	}
	// A key or model of another provider is no choice to offer.
	for _, name := range []string{"key", "model"} {
		if !strings.Contains(vars[name], `provider=~\"$provider\"`) {
			t.Errorf("variable %s is not filtered by the provider: %s", name, vars[name])
		}
	}

	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Description == "" || p.FieldConfig.Defaults.Unit == "" && p.Type != "table" {
			t.Errorf("panel %q needs a description and a unit", p.Title)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q has data source %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		for _, target := range p.Targets {
			queries++
			if target.Datasource.UID != "${datasource}" {
				t.Errorf("a query of %q has data source %q", p.Title, target.Datasource.UID)
			}
			filters, never := []string{`job=~"$job"`, `instance=~"$instance"`, `provider=~"$provider"`, `key=~"$key"`, `model=~"$model"`}, []string(nil)
			if organizationFamily.MatchString(target.Expr) {
				// Choosing a key or a model must not hide them.
				filters, never = filters[:3], filters[3:]
			}
			for _, v := range filters {
				if !strings.Contains(target.Expr, v) {
					t.Errorf("a query of %q does not filter by %s: %s", p.Title, v, target.Expr)
				}
			}
			for _, v := range never {
				if strings.Contains(target.Expr, v) {
					t.Errorf("a query of %q filters by %s, a label its series have not: %s", p.Title, v, target.Expr)
				}
			}
		}
	}
	if queries < 15 {
		t.Errorf("%d queries; the dashboard lost panels", queries)
	}
}

// A read says nothing about its window after the window's reset, yet the
// exporter keeps exporting it until the next probe, which may be many
// minutes away. The Headroom row judges remaining only while the read is
// current, and shows which windows' reads are past their reset.
func TestHeadroomLeavesOutReadsPastTheirReset(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	current := regexp.MustCompile(`unless ratelimit_reset_timestamp_seconds\{[^}]*\} <= time\(\)`)
	pastReset := regexp.MustCompile(`ratelimit_reset_timestamp_seconds\{[^}]*\} <= (bool )?time\(\)`)
	row, judged, shown := "", 0, false
	for _, p := range d.Panels {
		if p.Type == "row" {
			row = p.Title
			continue
		}
		if row != "Headroom" {
			continue
		}
		for _, target := range p.Targets {
			switch {
			case p.Type == "table":
				// lists every window's last read, with whether it is current
				if pastReset.MatchString(target.Expr) {
					shown = true
				}
			case strings.Contains(target.Expr, "ratelimit_remaining{"):
				judged++
				if !current.MatchString(target.Expr) {
					t.Errorf("%q counts reads past their reset: %s", p.Title, target.Expr)
				}
			case pastReset.MatchString(target.Expr):
				shown = true
			}
		}
	}
	if judged < 3 {
		t.Errorf("%d Headroom queries read ratelimit_remaining; want the headroom per window, the lowest and the exhausted count", judged)
	}
	if !shown {
		t.Error("no Headroom panel shows which windows' reads are past their reset")
	}
}

// Labels every series a panel shows has, whatever the provider.
var alwaysSet = map[string]bool{"job": true, "instance": true, "provider": true, "key": true, "model": true, "resource": true, "result": true, "source": true,
	"admin": true, // an admin source's name, which the config requires
	"api":   true} // the admin API read: every ratelimit_admin_* series has it

// organizationFamily is a family of an admin source's organization, not of
// a key and model: a spend and its budget, an admin source's reads.
var organizationFamily = regexp.MustCompile(`\bratelimit_(spend|budget|admin_[a-z_]+)\b`)

// Prometheus stores an empty label as no label at all, and the exporter
// sends window="" (OpenAI's requests and tokens, Together, IETF RateLimit-Limit) and
// reason="" (a 429 without an error code); Grafana prints the name of a
// label a series lacks, so "{{resource}}/{{window}}" would read
// "requests/window". A legend may name another label only if its query
// sets that label for the series that lack it, with label_replace on "";
// a label it makes from another (per, from window) needs the non-empty
// case too. Or if every selector of the query keeps only series that have
// it (cause!="").
func TestLegendsNameOnlyLabelsEverySeriesHas(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	placeholder := regexp.MustCompile(`\{\{\s*(.+?)\s*\}\}`)
	setBy := regexp.MustCompile(`"([a-z_]+)", "[^"]+", "([a-z_]+)", "(|\(\.\+\))"\)`)
	checked := 0
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			empty, nonEmpty := map[string]bool{}, map[string]bool{}
			for _, m := range setBy.FindAllStringSubmatch(target.Expr, -1) {
				if m[3] == "" {
					empty[m[1]] = true
				}
				if m[1] == m[2] || m[3] != "" {
					nonEmpty[m[1]] = true
				}
			}
			selectors := metricSelector.FindAllString(target.Expr, -1)
			for _, m := range placeholder.FindAllStringSubmatch(target.LegendFormat, -1) {
				label := m[1]
				if alwaysSet[label] {
					continue
				}
				checked++
				required := len(selectors) > 0
				for _, sel := range selectors {
					required = required && strings.Contains(sel, label+`!=""`)
				}
				if !required && (!empty[label] || !nonEmpty[label]) {
					t.Errorf("%q: legend %q names %s, which the query does not set for every series: %s", p.Title, target.LegendFormat, label, target.Expr)
				}
			}
		}
	}
	if checked < 6 {
		t.Errorf("%d legends name a window or a reason; the per-window panels should", checked)
	}
}

// Resources vary by provider: Anthropic's input_tokens, OpenRouter's
// credits and free_model_requests, Fireworks' tokens_prompt, IETF policy
// names. The Remaining vs limit row splits them by a pattern and its
// negation, so that every resource has a panel, none two.
func TestRemainingVsLimitShowsEveryResource(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	matcher := regexp.MustCompile(`ratelimit_remaining\{[^}]*resource(=~|!~|=|!=)"([^"]*)"`)
	matches, negations := map[string]bool{}, map[string]bool{}
	row := ""
	for _, p := range d.Panels {
		if p.Type == "row" {
			row = p.Title
			continue
		}
		if row != "Remaining vs limit" {
			continue
		}
		for _, target := range p.Targets {
			m := matcher.FindStringSubmatch(target.Expr)
			switch {
			case m == nil && strings.Contains(target.Expr, "ratelimit_remaining{"):
				return // a panel shows every resource
			case m == nil:
			case m[1] == "=~":
				matches[m[2]] = true
			case m[1] == "!~":
				negations[m[2]] = true
			default:
				t.Errorf("%q picks resources by %s%q: a new provider's resource would show nowhere", p.Title, m[1], m[2])
			}
		}
	}
	for pattern := range matches {
		if negations[pattern] {
			return
		}
	}
	t.Errorf("the Remaining vs limit row shows resources %v and leaves out %v: some resources show nowhere or twice", matches, negations)
}

// 429s come with the provider's reason (request_quota_exceeded,
// token_quota_exceeded, queue_exceeded, ...): quota or overload.
func TestRateLimitedProbesByReason(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	byReason := regexp.MustCompile(`by \([^)]*\breason\b[^)]*\) \(.*ratelimit_probes_total\{[^}]*result="rate_limited"`)
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			if byReason.MatchString(target.Expr) && strings.Contains(target.LegendFormat, "{{reason}}") {
				return
			}
		}
	}
	t.Error("no panel shows rate-limited probes by reason")
}

// Every query parses as PromQL, with its variables as Grafana fills them.
// promtool has no query linter, but `promtool check rules` parses each
// rule's expression; the end-to-end test in e2e/ runs them
// against a real Prometheus.
func TestQueriesAreValidPromQL(t *testing.T) {
	promtool := testkit.RequireTool(t, "promtool")
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$job", ".*", "$instance", ".*", "$provider", ".*", "$key", ".*", "$model", ".*",
		"$__rate_interval", "1m")
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			rules = append(rules, rule{fmt.Sprintf("dashboard:query_%d", len(rules)), vars.Replace(target.Expr)})
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			// label_values(selector, label): the selector is PromQL.
			m := regexp.MustCompile(`^label_values\((.*), \w+\)$`).FindStringSubmatch(q["query"].(string))
			if m == nil {
				t.Errorf("variable %s: %v", v.Name, q["query"])
				continue
			}
			rules = append(rules, rule{"dashboard:variable_" + v.Name, vars.Replace(m[1])})
		}
	}
	file, _ := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	path := filepath.Join(t.TempDir(), "queries.yml") // JSON is YAML
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// Every family of the README's metrics reference that is per key or per
// admin source (its labels start with key or admin, or "same" as the row
// above) shows on the dashboard: a figure a key or an organization exports
// and no panel shows is one nobody looks at. The exporter's own families
// (by reason, route, build) are neither.
func TestDashboardShowsEveryFamilyOfAKeyOrAnAdminSource(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, metrics, ok := strings.Cut(string(readme), "\n## Metrics\n")
	if !ok {
		t.Fatal(`README.md has no "## Metrics" section`)
	}
	metrics, _, _ = strings.Cut(metrics, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `(ratelimit_[a-z_]+)` \\| [a-z]+ \\| ([^|]*) \\|")
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			for _, name := range regexp.MustCompile(`\bratelimit_[a-z_]+`).FindAllString(target.Expr, -1) {
				shown[name] = true
			}
		}
	}
	perKey, perAdmin, labels := 0, 0, ""
	for _, m := range row.FindAllStringSubmatch(metrics, -1) {
		if l := strings.TrimSpace(m[2]); l != "same" {
			labels = l
		}
		switch {
		case strings.HasPrefix(labels, "key,"):
			perKey++
		case strings.HasPrefix(labels, "admin,"):
			perAdmin++
		default:
			continue
		}
		if !shown[m[1]] {
			t.Errorf("%s (labels %s) is in the README's metrics reference, and on no panel of the dashboard", m[1], labels)
		}
	}
	if perKey < 13 || perAdmin < 2 {
		t.Errorf("%d per-key and %d per-admin families in the README's metrics reference; the table's form changed", perKey, perAdmin)
	}
}

// Panels sit side by side, never over one another: Grafana would push one
// down, away from the row it was placed in.
func TestPanelsDoNotOverlap(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	taken := map[[2]int]string{}
	place := func(p Panel) {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%q has grid position %+v, outside the 24 columns", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[[2]int{x, y}]; ok {
					t.Errorf("%q overlaps %q at column %d, line %d", p.Title, other, x, y)
					return
				}
				taken[[2]int{x, y}] = p.Title
			}
		}
	}
	for _, p := range d.Panels {
		place(p)
	}
}
