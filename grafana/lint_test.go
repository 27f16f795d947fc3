package grafana

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Grafana's dashboard-linter (github.com/grafana/dashboard-linter) checks
// the conventions the community's dashboards and mixins follow. CI cannot
// install it (the Go module proxy does not serve it, nor, for its newer
// versions, the Grafana module it needs), so its rules that apply to a
// Prometheus dashboard are written down below, one function each. Each is
// shown to fire on a dashboard broken for it (TestLintRulesFire). Its
// target-promql and template-label-promql rules (queries parse) are
// TestQueriesAreValidPromQL, with promtool.

// lintDashboard is the dashboard as generic JSON, so that a test can break
// any field of it.
type lintDashboard = map[string]any

// lintRule returns what is wrong with a dashboard by one rule.
type lintRule struct {
	name  string
	check func(d lintDashboard) []string
}

var lintRules = []lintRule{
	// The dashboard is provisioned from a file: edits in the UI would be
	// lost at the next provisioning, so it must not offer them.
	{"dashboard-editable-rule", func(d lintDashboard) []string {
		if d["editable"] != false {
			return []string{fmt.Sprintf("editable is %v, want false", d["editable"])}
		}
		return nil
	}},
	// A datasource variable named datasource, labelled "Data source", of
	// Prometheus data sources.
	{"template-datasource-rule", func(d lintDashboard) []string {
		v := variable(d, "datasource")
		if v == nil {
			return []string{"no datasource variable"}
		}
		var problems []string
		if v["type"] != "datasource" || v["query"] != "prometheus" {
			problems = append(problems, fmt.Sprintf("datasource variable is %v of %v, want a datasource variable of prometheus", v["type"], v["query"]))
		}
		if label, _ := v["label"].(string); !strings.EqualFold(label, "Data source") {
			problems = append(problems, fmt.Sprintf("datasource variable is labelled %q, want \"Data source\"", label))
		}
		return problems
	}},
	{"template-job-rule", func(d lintDashboard) []string { return selectorVariableProblems(d, "job") }},
	// A query variable filled once at load misses keys and models that
	// appear later; refresh 2 fills it again when the time range changes.
	{"template-on-time-change-reload-rule", func(d lintDashboard) []string {
		var problems []string
		for _, v := range object(d["templating"])["list"].([]any) {
			if v := object(v); v["type"] == "query" && v["refresh"] != float64(2) {
				problems = append(problems, fmt.Sprintf("variable %v has refresh %v, want 2 (on time range change)", v["name"], v["refresh"]))
			}
		}
		return problems
	}},
	{"template-instance-rule", func(d lintDashboard) []string { return selectorVariableProblems(d, "instance") }},
	// Every panel reads the chosen data source.
	{"panel-datasource-rule", func(d lintDashboard) []string {
		var problems []string
		for _, p := range dataPanels(d) {
			uid, _ := object(p["datasource"])["uid"].(string)
			if uid != "$datasource" && uid != "${datasource}" {
				problems = append(problems, fmt.Sprintf("panel %q reads data source %q, want ${datasource}", p["title"], uid))
			}
		}
		return problems
	}},
	{"panel-title-description-rule", func(d lintDashboard) []string {
		var problems []string
		for _, p := range dataPanels(d) {
			if title, _ := p["title"].(string); strings.TrimSpace(title) == "" {
				problems = append(problems, "a panel has no title")
			}
			if desc, _ := p["description"].(string); strings.TrimSpace(desc) == "" {
				problems = append(problems, fmt.Sprintf("panel %q has no description", p["title"]))
			}
		}
		return problems
	}},
	// A number without a unit is a guess for the reader.
	{"panel-units-rule", func(d lintDashboard) []string {
		var problems []string
		for _, p := range dataPanels(d) {
			unit, _ := object(object(p["fieldConfig"])["defaults"])["unit"].(string)
			if !slices.Contains(knownUnits, unit) {
				problems = append(problems, fmt.Sprintf("panel %q has unit %q, want one of Grafana's units", p["title"], unit))
			}
		}
		return problems
	}},
	{"panel-no-targets-rule", func(d lintDashboard) []string {
		var problems []string
		for _, p := range dataPanels(d) {
			if len(targets(p)) == 0 {
				problems = append(problems, fmt.Sprintf("panel %q has no queries", p["title"]))
			}
		}
		return problems
	}},
	// rate() over a fixed range shows nothing, or too much smoothing, at
	// some scrape interval and zoom; $__rate_interval fits both. increase()
	// over a stated day is a figure per day, not a rate: it is left alone.
	{"target-rate-interval-rule", func(d lintDashboard) []string {
		var problems []string
		for _, expr := range expressions(d) {
			for _, m := range rateCall.FindAllStringSubmatch(expr, -1) {
				if m[2] != "$__rate_interval" {
					problems = append(problems, fmt.Sprintf("%s over [%s], want [$__rate_interval]: %s", m[1], m[2], expr))
				}
			}
		}
		return problems
	}},
	{"target-job-rule", func(d lintDashboard) []string { return selectorProblems(d, `job=~"$job"`) }},
	{"target-instance-rule", func(d lintDashboard) []string { return selectorProblems(d, `instance=~"$instance"`) }},
	// A counter's raw value says nothing; its rate or increase does.
	{"target-counter-agg-rule", func(d lintDashboard) []string {
		var problems []string
		for _, expr := range expressions(d) {
			for _, loc := range counterSelector.FindAllStringIndex(expr, -1) {
				before := strings.TrimRight(expr[:loc[0]], " ")
				if !strings.HasSuffix(before, "rate(") && !strings.HasSuffix(before, "increase(") {
					problems = append(problems, fmt.Sprintf("counter %s is not inside rate() or increase(): %s", expr[loc[0]:loc[1]], expr))
				}
			}
		}
		return problems
	}},
}

// knownUnits are the Grafana units the dashboard may use.
var knownUnits = []string{"short", "none", "percent", "percentunit", "s", "ms", "reqps", "ops", "dateTimeAsIso", "dateTimeFromNow", "bytes"}

var (
	rateCall        = regexp.MustCompile(`\b(rate|irate)\([^\[]*\[([^\]]*)\]`)
	counterSelector = regexp.MustCompile(`\bratelimit_[a-z_]+_total\b`)
	// metricSelector is a metric name of the exporter, or a recorded one
	// made from them (cloud:ratelimit_used:per_minute), and its matchers.
	metricSelector = regexp.MustCompile(`\b(?:[a-z_]+:)?ratelimit_[a-z_]+(?::[a-z0-9_]+)?(\{[^}]*\})?`)
)

// selectorVariableProblems checks a variable that filters every query:
// a multi-select query of the chosen data source, whose All is ".+" so
// that it matches any value but never a series without the label.
func selectorVariableProblems(d lintDashboard, name string) []string {
	v := variable(d, name)
	if v == nil {
		return []string{"no " + name + " variable"}
	}
	var problems []string
	if v["type"] != "query" {
		problems = append(problems, fmt.Sprintf("%s variable is of type %v, want query", name, v["type"]))
	}
	if uid, _ := object(v["datasource"])["uid"].(string); uid != "$datasource" && uid != "${datasource}" {
		problems = append(problems, fmt.Sprintf("%s variable reads data source %q, want ${datasource}", name, uid))
	}
	if label, _ := v["label"].(string); !strings.EqualFold(label, name) {
		problems = append(problems, fmt.Sprintf("%s variable is labelled %q", name, label))
	}
	if v["multi"] != true || v["includeAll"] != true {
		problems = append(problems, name+" variable is not multi-select with All")
	}
	if v["allValue"] != ".+" {
		problems = append(problems, fmt.Sprintf("%s variable's allValue is %v, want .+", name, v["allValue"]))
	}
	return problems
}

// selectorProblems lists the selectors of the exporter's metrics, in every
// query, that lack matcher.
func selectorProblems(d lintDashboard, matcher string) []string {
	var problems []string
	for _, expr := range expressions(d) {
		for _, sel := range metricSelector.FindAllString(expr, -1) {
			if !strings.Contains(sel, matcher) {
				problems = append(problems, fmt.Sprintf("%s lacks %s", sel, matcher))
			}
		}
	}
	return problems
}

func object(v any) map[string]any { m, _ := v.(map[string]any); return m }

func variable(d lintDashboard, name string) map[string]any {
	for _, v := range object(d["templating"])["list"].([]any) {
		if object(v)["name"] == name {
			return object(v)
		}
	}
	return nil
}

// dataPanels are the panels that show data: every panel but rows.
func dataPanels(d lintDashboard) []map[string]any {
	var panels []map[string]any
	for _, p := range d["panels"].([]any) {
		if object(p)["type"] != "row" {
			panels = append(panels, object(p))
		}
	}
	return panels
}

func targets(p map[string]any) []any { t, _ := p["targets"].([]any); return t }

// expressions are every panel's queries.
func expressions(d lintDashboard) []string {
	var exprs []string
	for _, p := range dataPanels(d) {
		for _, t := range targets(p) {
			if expr, ok := object(t)["expr"].(string); ok {
				exprs = append(exprs, expr)
			}
		}
	}
	return exprs
}

func parseLintDashboard(t *testing.T) lintDashboard {
	t.Helper()
	var d lintDashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDashboardPassesLintRules(t *testing.T) {
	d := parseLintDashboard(t)
	for _, rule := range lintRules {
		for _, problem := range rule.check(d) {
			t.Errorf("%s: %s", rule.name, problem)
		}
	}
}

// Each rule fires on the dashboard broken for it, and only then.
func TestLintRulesFire(t *testing.T) {
	firstPanel := func(d lintDashboard) map[string]any { return dataPanels(d)[0] }
	firstTarget := func(d lintDashboard) map[string]any { return object(targets(firstPanel(d))[0]) }
	breakages := map[string]func(d lintDashboard){
		"dashboard-editable-rule":             func(d lintDashboard) { d["editable"] = true },
		"template-datasource-rule":            func(d lintDashboard) { variable(d, "datasource")["query"] = "loki" },
		"template-job-rule":                   func(d lintDashboard) { variable(d, "job")["allValue"] = ".*" },
		"template-instance-rule":              func(d lintDashboard) { variable(d, "instance")["multi"] = false },
		"template-on-time-change-reload-rule": func(d lintDashboard) { variable(d, "model")["refresh"] = float64(1) },
		"panel-datasource-rule": func(d lintDashboard) {
			firstPanel(d)["datasource"] = map[string]any{"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
		},
		"panel-title-description-rule": func(d lintDashboard) { delete(firstPanel(d), "description") },
		"panel-units-rule":             func(d lintDashboard) { object(object(firstPanel(d)["fieldConfig"])["defaults"])["unit"] = "" },
		"panel-no-targets-rule":        func(d lintDashboard) { firstPanel(d)["targets"] = []any{} },
		"target-rate-interval-rule": func(d lintDashboard) {
			firstTarget(d)["expr"] = `sum(rate(ratelimit_probes_total{job=~"$job", instance=~"$instance"}[5m]))`
		},
		"target-job-rule": func(d lintDashboard) {
			firstTarget(d)["expr"] = `ratelimit_remaining{instance=~"$instance"}`
		},
		"target-instance-rule": func(d lintDashboard) {
			firstTarget(d)["expr"] = `ratelimit_remaining{job=~"$job"} / ratelimit_limit{job=~"$job", instance=~"$instance"}`
		},
		"target-counter-agg-rule": func(d lintDashboard) {
			firstTarget(d)["expr"] = `ratelimit_probes_total{job=~"$job", instance=~"$instance"}`
		},
	}
	for _, rule := range lintRules {
		breakIt, ok := breakages[rule.name]
		if !ok {
			t.Errorf("%s: no breakage shows that it can fire", rule.name)
			continue
		}
		d := parseLintDashboard(t)
		breakIt(d)
		if problems := rule.check(d); len(problems) == 0 {
			t.Errorf("%s did not fire on a dashboard broken for it", rule.name)
		}
	}
}

// A recorded series' selector is checked as the exporter's own: the rule
// named level:ratelimit_...:operation is the metric name, its matchers are
// read with it, and it must filter by job and instance too.
func TestLintRulesReadRecordedNames(t *testing.T) {
	for expr, want := range map[string]bool{
		`sum(cloud:ratelimit_used:per_minute{job=~"$job", instance=~"$instance"})`: false,
		`sum(cloud:ratelimit_used:per_minute{instance=~"$instance"})`:              true,
	} {
		d := parseLintDashboard(t)
		object(targets(dataPanels(d)[0])[0])["expr"] = expr
		for _, rule := range lintRules {
			if rule.name == "target-job-rule" {
				if problems := rule.check(d); (len(problems) > 0) != want {
					t.Errorf("target-job-rule on %s: %v, want a problem: %v", expr, problems, want)
				}
			}
		}
	}
}
