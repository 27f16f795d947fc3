// Package check probes every configured key and model once and reports
// what each probe read, for a person at a terminal: the check command.
package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// Prober sends one probe.
type Prober interface {
	Probe(ctx context.Context, t config.Target) prober.Result
}

// Run probes every target of cfg once, at most cfg.Probe.Concurrency at a
// time, each within cfg.Probe.Timeout, and reports them sorted by key and
// model. now stamps the report.
func Run(ctx context.Context, cfg *config.Config, p Prober, now func() time.Time) snapshot.Report {
	targets := cfg.Targets()
	report := snapshot.Report{SchemaVersion: snapshot.Version, Targets: make([]snapshot.Target, len(targets)), OK: true}
	slots := make(chan struct{}, max(cfg.Probe.Concurrency, 1))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			probeCtx, cancel := context.WithTimeout(ctx, time.Duration(cfg.Probe.Timeout))
			defer cancel()
			r := p.Probe(probeCtx, t)
			report.Targets[i] = targetOf(t, &r, now())
		})
	}
	wg.Wait()
	slices.SortStableFunc(report.Targets, snapshot.Compare)
	report.OK = report.Healthy()
	report.GeneratedAt = now()
	return report
}

// targetOf is what the probe r of t read, as the report shows it at now.
func targetOf(t config.Target, r *prober.Result, now time.Time) snapshot.Target {
	out := snapshot.Target{Key: t.Key.Name, Provider: t.Key.Provider, Model: t.Model, OK: r.Success(),
		Result: string(r.Outcome), StatusCode: r.StatusCode, Windows: []snapshot.Window{}}
	if !out.OK {
		out.Error = r.Failure()
		return out
	}
	at := r.Time.UTC()
	out.ReadAt, out.Source = &at, snapshot.SourceProbe
	out.Served = r.Served && len(r.Observations) == 0
	windows, _ := ratelimit.Windows(r.Observations, nil)
	out.AddWindows(windows, r.Time, snapshot.SourceProbe, now)
	return out
}

// Formats are the values of --output.
var Formats = []string{"table", "json"}

// Write writes the report in format, "table" or "json".
func Write(w io.Writer, format string, r snapshot.Report) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "table":
		return writeTable(w, r)
	}
	return fmt.Errorf("--output=%q: want one of %s", format, strings.Join(Formats, ", "))
}

// barCells is the width of the bar of what is left.
const barCells = 20

func writeTable(w io.Writer, r snapshot.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tPROVIDER\tMODEL\tRESOURCE\tWINDOW\tREMAINING OF LIMIT\t\tRESETS IN")
	var failed []snapshot.Target
	probed := 0
	for _, t := range r.Targets {
		if t.Result != snapshot.ResultNotProbed {
			probed++
		}
		if !t.OK {
			failed = append(failed, t)
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\tnothing read\t\t-\n", t.Key, t.Provider, modelName(t.Model))
		}
		if t.Served && len(t.Windows) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\tserved: no window empty\t\t-\n", t.Key, t.Provider, modelName(t.Model))
		}
		for _, win := range t.Windows {
			window := win.Window
			if window == "" {
				window = "(not given)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Key, t.Provider, modelName(t.Model), win.Resource, window,
				figures(win), bar(win), resetsIn(win, r.GeneratedAt))
		}
		for _, b := range t.Balances {
			fmt.Fprintf(tw, "%s\t%s\t%s\tbalance\t-\t%s %s\t\t-\n", t.Key, t.Provider, modelName(t.Model),
				strconv.FormatFloat(b.Amount, 'f', -1, 64), b.Currency)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(failed) == 0 {
		fmt.Fprintf(w, "\nAll %d key and model pairs read their rate limits.\n", probed)
	} else {
		fmt.Fprintf(w, "\n%d of %d key and model pairs read no rate limits:\n", len(failed), probed)
		for _, t := range failed {
			fmt.Fprintf(w, "  %s %s (%s): %s: %s\n", t.Key, modelName(t.Model), t.Provider, t.Result, t.Error)
		}
	}
	if len(r.Admin) > 0 {
		fmt.Fprintln(w, "\nAdmin sources (limits marked \"admin API\"):")
	}
	for _, a := range r.Admin {
		for _, scope := range a.Read {
			fmt.Fprintf(w, "  %s (%s): read the rate limits of %s\n", a.Name, a.Provider, scopeName(scope))
		}
		for _, f := range a.Failed {
			fmt.Fprintf(w, "  %s (%s): read no rate limits of %s: %s\n", a.Name, a.Provider, scopeName(f.Scope), f.Error)
		}
	}
	return nil
}

// modelName shows the model of a key probed once for all its models.
func modelName(model string) string {
	if model == "" {
		return "(all)"
	}
	return model
}

// figures says what the provider gave of a window: what remains of the
// limit, the share used, the status, as many as it gave.
func figures(w snapshot.Window) string {
	text := func(v *float64) string {
		if v == nil {
			return "?"
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	if w.Source == snapshot.SourceAdminAPI {
		return "limit " + text(w.Limit) + " (admin API)"
	}
	var parts []string
	if w.Remaining != nil || w.Limit != nil || w.Utilization == nil && w.Status == "" {
		parts = append(parts, text(w.Remaining)+" of "+text(w.Limit))
	}
	if w.Utilization != nil {
		parts = append(parts, strconv.FormatFloat(math.Round(*w.Utilization*1000)/10, 'f', -1, 64)+"% used")
	}
	if w.Status != "" {
		parts = append(parts, w.Status)
	}
	return strings.Join(parts, ", ")
}

// bar draws what is left of the limit, or of a share used, with its share;
// nothing when the share is unknown.
func bar(w snapshot.Window) string {
	share, ok := w.Left()
	if !ok {
		return ""
	}
	full := int(math.Round(share * barCells))
	return strings.Repeat("█", full) + strings.Repeat("░", barCells-full) + fmt.Sprintf(" %3.0f%%", share*100)
}

// resetsIn is how long from now until the window is full again, short.
func resetsIn(w snapshot.Window, now time.Time) string {
	if w.ResetsAt == nil {
		return "-"
	}
	d := w.ResetsAt.Sub(now)
	switch {
	case d < time.Millisecond:
		return "now"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	d = d.Round(time.Hour)
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%dh", days, int((d-time.Duration(days)*24*time.Hour)/time.Hour))
}
