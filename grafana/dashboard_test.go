package grafana

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
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
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
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
	for _, name := range []string{"job", "instance", "key", "model"} {
		if !strings.Contains(vars[name], "label_values(") || !strings.Contains(vars[name], ", "+name+")") {
			t.Errorf("variable %s is not filled by label_values(..., %s): %s", name, name, vars[name])
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
			for _, v := range []string{`job=~"$job"`, `instance=~"$instance"`, `key=~"$key"`, `model=~"$model"`} {
				if !strings.Contains(target.Expr, v) {
					t.Errorf("a query of %q does not filter by %s: %s", p.Title, v, target.Expr)
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
