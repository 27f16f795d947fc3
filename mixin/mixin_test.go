// Package mixin holds the tests of mixin.libsonnet, the exporter's
// monitoring mixin.
package mixin

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-jsonnet"
	"gopkg.in/yaml.v3"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// output is what the mixin gives, as JSON values.
type output struct {
	Rules      map[string]any `json:"rules"`
	Alerts     map[string]any `json:"alerts"`
	Dashboards map[string]any `json:"dashboards"`
}

// evaluate renders the mixin with config merged into its _config.
func evaluate(t *testing.T, config string) output {
	t.Helper()
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{})
	text, err := vm.EvaluateAnonymousSnippet("mixin_test.jsonnet", `
local mixin = (import 'mixin.libsonnet') + { _config+:: `+config+` };
{ rules: mixin.prometheusRules, alerts: mixin.prometheusAlerts, dashboards: mixin.grafanaDashboards }`)
	if err != nil {
		t.Fatal(err)
	}
	var out output
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// readFile reads a YAML or JSON file of the repository as JSON values.
func readFile(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil { // JSON is YAML
		t.Fatalf("%s: %v", path, err)
	}
	asJSON, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(asJSON, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// With its default _config the mixin is the shipped files, field for field.
func TestMixinIsTheShippedFiles(t *testing.T) {
	out := evaluate(t, "{}")
	// The recording rules are rules.yml's groups, then cloud.rules.yml's.
	rules := readFile(t, "prometheus/rules.yml")
	rules["groups"] = append(rules["groups"].([]any), readFile(t, "prometheus/cloud.rules.yml")["groups"].([]any)...)
	for _, c := range []struct {
		name string
		got  map[string]any
		want map[string]any
		file string
	}{
		{"prometheusRules", out.Rules, rules, "prometheus/rules.yml and cloud.rules.yml"},
		{"prometheusAlerts", out.Alerts, readFile(t, "prometheus/alerts.yml"), "prometheus/alerts.yml"},
		{"grafanaDashboards['ratelimit-exporter.json']", object(out.Dashboards["ratelimit-exporter.json"]), readFile(t, "grafana/dashboard.json"), "grafana/dashboard.json"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			got, _ := json.MarshalIndent(c.got, "", " ")
			wantText, _ := json.MarshalIndent(c.want, "", " ")
			t.Errorf("the mixin's %s differs from %s:\n%s\nwant\n%s", c.name, c.file, got, wantText)
		}
	}
	if len(out.Dashboards) != 1 {
		t.Errorf("%d dashboards, want 1", len(out.Dashboards))
	}
}

// rawSelector is a selector of one of the exporter's own metrics, with its
// matchers if any; recording rules' names (window:ratelimit_...) are not.
var rawSelector = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:])(ratelimit_[a-z_]+(?:\{[^}]*\})?)`)

// recorded is a recording rule's name (level:metric:operations) in an
// expression: its rule carries the selector.
var recorded = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:])[a-z_]+:ratelimit_[a-z_]+:[a-z0-9_]+`)

// Each _config setting changes what it says it changes, and what comes out
// is still valid for Prometheus.
func TestMixinConfig(t *testing.T) {
	const selector = `job="ratelimit", namespace="llm"`
	out := evaluate(t, `{
    ratelimitSelector: 'job="ratelimit", namespace="llm"',
    nearlyExhaustedRatio: 0.2,
    staleProbeIntervals: 5,
    staleMinimumSeconds: 600,
    runbookURLBase: 'https://runbooks.example.com/ratelimit#',
  }`)
	// The clouds' rules read other exporters' series: they come out as
	// cloud.rules.yml has them, whatever the selector.
	var own []any
	for _, g := range out.Rules["groups"].([]any) {
		if object(g)["name"] != "ratelimit.cloud.rules" {
			own = append(own, g)
		} else if want := readFile(t, "prometheus/cloud.rules.yml")["groups"].([]any)[0]; !reflect.DeepEqual(g, want) {
			t.Errorf("the selector changed the clouds' rules:\n%v", g)
		}
	}
	if len(own) == len(out.Rules["groups"].([]any)) {
		t.Error("the mixin has no group ratelimit.cloud.rules")
	}
	exprs := map[string]string{}
	rules := append(rulesOf(map[string]any{"groups": own}), rulesOf(out.Alerts)...)
	for _, rule := range rules {
		name, _ := rule["alert"].(string)
		if name == "" {
			name, _ = rule["record"].(string)
		}
		exprs[name], _ = rule["expr"].(string)
		selectors := rawSelector.FindAllStringSubmatch(exprs[name], -1)
		for _, m := range selectors {
			if !strings.Contains(m[1], selector) {
				t.Errorf("%s: %s lacks the selector %s", name, m[1], selector)
			}
		}
		if len(selectors) == 0 && !recorded.MatchString(exprs[name]) {
			t.Errorf("%s selects none of the exporter's metrics: %s", name, exprs[name])
		}
		if annotations := object(rule["annotations"]); rule["alert"] != nil {
			if want := "https://runbooks.example.com/ratelimit#" + strings.ToLower(name); annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %v, want %s", name, annotations["runbook_url"], want)
			}
		}
	}
	for name, want := range map[string]string{
		"RateLimitNearlyExhausted":             "window:ratelimit_remaining:ratio <= 0.2",
		"window:ratelimit_reset:seconds_until": "clamp_min(window:ratelimit_reset_timestamp_seconds:freshest - time(), 0)",
		"window:ratelimit_remaining:deriv1h":   "deriv(window:ratelimit_remaining:freshest[1h])",
	} {
		if got := exprs[name]; got != want {
			t.Errorf("%s: expr %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(exprs["window:ratelimit_remaining:ratio"], `ratelimit_configured_limit{job="ratelimit", namespace="llm", source="config"}`) {
		t.Errorf("window:ratelimit_remaining:ratio: the selector was not merged with the source matcher:\n%s", exprs["window:ratelimit_remaining:ratio"])
	}
	if got := strings.Count(exprs["RateLimitDataStale"], `clamp_min(5 * max by (job, key, provider, model) (ratelimit_probe_interval_seconds{job="ratelimit", namespace="llm"}), 600)`); got != 2 {
		t.Errorf("RateLimitDataStale has %d stale thresholds of 5 intervals and 600s, want 2:\n%s", got, exprs["RateLimitDataStale"])
	}
	if !strings.Contains(exprs["RateLimitQuotaRefused"], `ratelimit_probes_total{job="ratelimit", namespace="llm", cause=~"quota_exhausted|spend_limit"}`) {
		t.Errorf("RateLimitQuotaRefused: the selector was not merged with the cause matcher:\n%s", exprs["RateLimitQuotaRefused"])
	}
	// The freshest replica is chosen among the selected series only.
	if want := `ratelimit_reading_timestamp_seconds{job="ratelimit", namespace="llm"}
  == ignoring (instance, pod) group_left
max without (instance, pod) (ratelimit_reading_timestamp_seconds{job="ratelimit", namespace="llm"})`; !strings.Contains(exprs["replica:ratelimit_reading_timestamp_seconds:freshest"], want) {
		t.Errorf("replica:ratelimit_reading_timestamp_seconds:freshest lacks the selector:\n%s", exprs["replica:ratelimit_reading_timestamp_seconds:freshest"])
	}
	for _, want := range []string{`ratelimit_spend{job="ratelimit", namespace="llm"} / (ratelimit_budget{job="ratelimit", namespace="llm"} > 0)`,
		`month(ratelimit_admin_last_success_timestamp_seconds{job="ratelimit", namespace="llm", api="costs"})`} {
		if !strings.Contains(exprs["budget:ratelimit_spend:ratio"], want) {
			t.Errorf("budget:ratelimit_spend:ratio lacks %s:\n%s", want, exprs["budget:ratelimit_spend:ratio"])
		}
	}
	for _, rule := range rules {
		if rule["alert"] == "RateLimitDataStale" && !strings.Contains(fmt.Sprint(object(rule["annotations"])["description"]), "more than 5 probe intervals") {
			t.Errorf("RateLimitDataStale's description does not say 5 intervals: %v", object(rule["annotations"])["description"])
		}
	}

	// promtool parses every expression of what came out.
	promtool := testkit.RequireTool(t, "promtool")
	dir := t.TempDir()
	var files []string
	for name, groups := range map[string]map[string]any{"rules.json": out.Rules, "alerts.json": out.Alerts} {
		data, _ := json.Marshal(groups)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	if out, err := exec.Command(promtool, append([]string{"check", "rules"}, files...)...).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the configured mixin: %v\n%s", err, out)
	}
}

func object(v any) map[string]any { m, _ := v.(map[string]any); return m }

// rulesOf lists the rules of every group of a rule file.
func rulesOf(file map[string]any) []map[string]any {
	var rules []map[string]any
	groups, _ := file["groups"].([]any)
	for _, g := range groups {
		list, _ := object(g)["rules"].([]any)
		for _, r := range list {
			rules = append(rules, object(r))
		}
	}
	return rules
}

// The alerts follow the monitoring mixins' conventions: a summary is one
// plain sentence (no template: the same text for every firing, fit for a
// notification's title), capitalised and ending in a period; the
// description carries the detail, the key among it (for a budget, which no
// key has, the admin source and the project); every alert has a runbook,
// and each runbook_url names a README section that exists.
func TestAlertsFollowMixinConventions(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if heading, ok := strings.CutPrefix(line, "### "); ok {
			anchors[strings.ToLower(heading)] = true
		}
	}
	const base = "https://github.com/ratelimit-exporter/ratelimit_exporter/blob/main/README.md#"
	alerts := rulesOf(readFile(t, "prometheus/alerts.yml"))
	if len(alerts) == 0 {
		t.Fatal("no alerts in prometheus/alerts.yml")
	}
	for _, rule := range alerts {
		name := rule["alert"]
		annotations := object(rule["annotations"])
		summary, _ := annotations["summary"].(string)
		switch {
		case summary == "":
			t.Errorf("%s has no summary", name)
		case strings.Contains(summary, "{{"):
			t.Errorf("%s: summary %q is a template; put the detail in the description", name, summary)
		case summary[:1] != strings.ToUpper(summary[:1]) || !strings.HasSuffix(summary, "."):
			t.Errorf("%s: summary %q is not a sentence: capitalised, ending in a period", name, summary)
		}
		description, _ := annotations["description"].(string)
		expr, _ := rule["expr"].(string)
		switch {
		case strings.HasPrefix(expr, "budget:"):
			if !strings.Contains(description, "{{ $labels.admin }}") || !strings.Contains(description, "$labels.project") {
				t.Errorf("%s: the description %q does not name the admin source and the project", name, description)
			}
		case strings.Contains(expr, "ratelimit_admin_"):
			if !strings.Contains(description, "{{ $labels.admin }}") {
				t.Errorf("%s: the description %q does not name the admin source", name, description)
			}
		case !strings.Contains(description, "{{ $labels.key }}"):
			t.Errorf("%s: the description %q does not name the key", name, description)
		}
		runbook, _ := annotations["runbook_url"].(string)
		if anchor, ok := strings.CutPrefix(runbook, base); !ok || !anchors[anchor] || anchor != strings.ToLower(fmt.Sprint(name)) {
			t.Errorf("%s: runbook_url %q is not the README section ### %s", name, runbook, name)
		}
	}
}
