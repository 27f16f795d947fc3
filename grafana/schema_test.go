package grafana

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	sdkdashboard "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// registerPlugins teaches the foundation SDK every core panel and data
// source type (https://github.com/grafana/grafana-foundation-sdk, go/cog/plugins); without it a panel's options, fieldConfig.defaults.custom
// and targets decode into untyped bags that accept anything.
var registerPlugins = sync.OnceFunc(plugins.RegisterDefaultPlugins)

// schemaProblems decodes a classic-JSON dashboard strictly with Grafana's
// own types (grafana-foundation-sdk v0.0.22, generated from Grafana's
// schemas) and returns every field Grafana does not know, each naming the
// panel it is in.
func schemaProblems(raw []byte) []string {
	registerPlugins()
	var problems []string
	var d sdkdashboard.Dashboard
	for _, p := range notDefaulted("dashboard", d.UnmarshalJSONStrict(raw)) {
		// The whole-dashboard error names a panel by its index only; each
		// panel is decoded again below to name it by id and title.
		if !strings.HasPrefix(p, "dashboard: panels[") {
			problems = append(problems, p)
		}
	}
	var top struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return append(problems, err.Error())
	}
	var panels []json.RawMessage
	for _, p := range top.Panels {
		panels = append(panels, p)
		var row struct {
			Panels []json.RawMessage `json:"panels"`
		}
		if json.Unmarshal(p, &row) == nil {
			panels = append(panels, row.Panels...) // a collapsed row's panels
		}
	}
	for _, p := range panels {
		problems = append(problems, panelProblems(p)...)
	}
	return problems
}

func panelProblems(raw json.RawMessage) []string {
	var head struct {
		ID    int    `json:"id"`
		Type  string `json:"type"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return []string{err.Error()}
	}
	name := fmt.Sprintf("panel %d %q (%s)", head.ID, head.Title, head.Type)
	var p sdkdashboard.PanelOrRowPanel
	problems := notDefaulted(name, p.UnmarshalJSONStrict(raw))
	if len(problems) > 0 || head.Type == "row" {
		return problems
	}
	// PanelOrRowPanel keeps no panel when the decoder returns its empty
	// (typed nil) error list, so read the targets from a Panel of its own.
	var panel sdkdashboard.Panel
	_ = panel.UnmarshalJSONStrict(raw) // reported above
	// The SDK falls back to loose decoding for what it has no type for:
	// a panel type it does not know, and a target whose data source type
	// it does not know. Refuse both, so nothing escapes the schema.
	if _, ok := cog.ConfigForPanelcfgVariant(head.Type); !ok {
		problems = append(problems, name+": panel type Grafana's schema does not know")
	}
	for i, target := range panel.Targets {
		if _, ok := target.(*prometheus.Dataquery); !ok {
			problems = append(problems, fmt.Sprintf("%s: targets[%d]: not a Prometheus query (%s)", name, i, target.DataqueryType()))
		}
	}
	return problems
}

// notDefaulted lists the strict decoder's errors, each prefixed with where,
// leaving out a required field that is missing where Grafana fills it in
// itself: a panel plugin's options (Grafana merges the plugin's defaults
// into what the JSON gives) and a variable's current value (set when the
// variable is refreshed on load). The SDK marks those required because
// they always have a value once loaded, not because the JSON must hold it.
func notDefaulted(where string, err error) []string {
	if err == nil {
		return nil
	}
	var errs cog.BuildErrors
	if !errors.As(err, &errs) {
		return []string{where + ": " + err.Error()}
	}
	var problems []string
	for _, e := range errs {
		if e.Message == missingRequired && defaulted.MatchString(e.Path) {
			continue
		}
		problems = append(problems, where+": "+e.Error())
	}
	return problems
}

const missingRequired = "required field is missing from input"

var defaulted = regexp.MustCompile(`(^|\.)(options|fieldConfig\.defaults\.custom)\.|^templating\.list\[\d+\]\.current\.`)

func TestDashboardMatchesGrafanaSchema(t *testing.T) {
	for _, p := range schemaProblems(Dashboard) {
		t.Error(p)
	}
}

// Each breakage is a field or panel Grafana does not know; the check must
// report it, naming the panel (or the dashboard) and the field.
func TestSchemaCheckFires(t *testing.T) {
	firstOfType := func(d lintDashboard, typ string) map[string]any {
		for _, p := range d["panels"].([]any) {
			if object(p)["type"] == typ {
				return object(p)
			}
		}
		t.Fatalf("no %s panel", typ)
		return nil
	}
	firstTarget := func(d lintDashboard) map[string]any { return object(targets(dataPanels(d)[0])[0]) }
	custom := func(p map[string]any) map[string]any {
		return object(object(object(p["fieldConfig"])["defaults"])["custom"])
	}
	for _, c := range []struct {
		name    string
		breakIt func(d lintDashboard)
		want    []string // each must appear in one reported problem
	}{
		{"field on the dashboard", func(d lintDashboard) { d["refreshRate"] = "1m" },
			[]string{"dashboard: Dashboard: unexpected field 'refreshRate'"}},
		{"field on a panel", func(d lintDashboard) { dataPanels(d)[0]["colour"] = "red" },
			[]string{`"Headroom per window" (bargauge): Panel: unexpected field 'colour'`}},
		{"field on a row", func(d lintDashboard) { firstOfType(d, "row")["folded"] = true },
			[]string{`panel 1 "Headroom" (row): RowPanel: unexpected field 'folded'`}},
		{"field on a panel in a collapsed row", func(d lintDashboard) {
			row := firstOfType(d, "row")
			row["collapsed"] = true
			row["panels"] = []any{map[string]any{"id": 99, "type": "text", "title": "Hidden", "colour": "red"}}
		}, []string{`panel 99 "Hidden" (text): Panel: unexpected field 'colour'`}},
		{"misspelt timeseries option", func(d lintDashboard) { object(firstOfType(d, "timeseries")["options"])["legnd"] = map[string]any{} },
			[]string{`(timeseries): options`, `unexpected field 'legnd'`}},
		{"unknown stat option", func(d lintDashboard) { object(firstOfType(d, "stat")["options"])["sparkline"] = true },
			[]string{`(stat): options`, `unexpected field 'sparkline'`}},
		{"unknown bargauge option", func(d lintDashboard) { object(firstOfType(d, "bargauge")["options"])["gradient"] = true },
			[]string{`(bargauge): options`, `unexpected field 'gradient'`}},
		{"unknown table option", func(d lintDashboard) { object(firstOfType(d, "table")["options"])["pageSize"] = 10 },
			[]string{`(table): options`, `unexpected field 'pageSize'`}},
		{"unknown state-timeline option", func(d lintDashboard) { object(firstOfType(d, "state-timeline")["options"])["mergeValue"] = true },
			[]string{`(state-timeline): options`, `unexpected field 'mergeValue'`}},
		{"option of the wrong type", func(d lintDashboard) { object(firstOfType(d, "stat")["options"])["colorMode"] = 3 },
			[]string{`(stat): options`, `colorMode`}},
		{"unknown custom field config", func(d lintDashboard) { custom(firstOfType(d, "timeseries"))["lineWidht"] = 2 },
			[]string{`(timeseries): fieldConfig.defaults.custom`, `unexpected field 'lineWidht'`}},
		{"field on a target", func(d lintDashboard) { firstTarget(d)["exprr"] = "up" },
			[]string{`(bargauge): targets[0]`, `unexpected field 'exprr'`}},
		{"target of no known data source", func(d lintDashboard) { delete(firstTarget(d), "datasource") },
			[]string{`(bargauge): targets[0]: not a Prometheus query`}},
		{"panel type Grafana does not ship", func(d lintDashboard) { dataPanels(d)[0]["type"] = "bar-gauge" },
			[]string{`(bar-gauge): panel type Grafana's schema does not know`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := parseLintDashboard(t)
			c.breakIt(d)
			raw, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			problems := schemaProblems(raw)
			all := strings.Join(problems, "\n")
			for _, want := range c.want {
				if !strings.Contains(all, want) {
					t.Errorf("no problem reports %q; got:\n%s", want, all)
				}
			}
			if len(problems) > 0 {
				t.Logf("%s", all)
			}
		})
	}
}
