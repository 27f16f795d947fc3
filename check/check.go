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
)

// Prober sends one probe.
type Prober interface {
	Probe(ctx context.Context, t config.Target) prober.Result
}

// Target is what one probe of a key and model read.
type Target struct {
	Key        string   `json:"key"`
	Provider   string   `json:"provider"`
	Model      string   `json:"model"`
	OK         bool     `json:"ok"` // the probe read rate limits
	Result     string   `json:"result"`
	StatusCode int      `json:"status_code"`
	Error      string   `json:"error,omitempty"` // why not OK; never holds the key
	Windows    []Window `json:"windows"`
}

// Window is one resource and window of a target. A figure the provider did
// not give is absent (nil).
type Window struct {
	Resource     string     `json:"resource"`
	Window       string     `json:"window"`
	Remaining    *float64   `json:"remaining,omitempty"`
	Limit        *float64   `json:"limit,omitempty"`
	ResetSeconds *float64   `json:"reset_seconds,omitempty"`
	ResetsAt     *time.Time `json:"resets_at,omitempty"`
}

// Report is the outcome of a check.
type Report struct {
	CheckedAt time.Time `json:"checked_at"`
	OK        bool      `json:"ok"` // every probe read rate limits
	Targets   []Target  `json:"targets"`
}

// Run probes every target of cfg once, at most cfg.Probe.Concurrency at a
// time, each within cfg.Probe.Timeout, and reports them sorted by key and
// model. now stamps the report.
func Run(ctx context.Context, cfg *config.Config, p Prober, now func() time.Time) Report {
	targets := cfg.Targets()
	report := Report{Targets: make([]Target, len(targets)), OK: true}
	slots := make(chan struct{}, max(cfg.Probe.Concurrency, 1))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			probeCtx, cancel := context.WithTimeout(ctx, time.Duration(cfg.Probe.Timeout))
			defer cancel()
			r := p.Probe(probeCtx, t)
			report.Targets[i] = targetOf(t, &r)
		})
	}
	wg.Wait()
	slices.SortStableFunc(report.Targets, func(a, b Target) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Model, b.Model)
	})
	for _, t := range report.Targets {
		report.OK = report.OK && t.OK
	}
	report.CheckedAt = now()
	return report
}

func targetOf(t config.Target, r *prober.Result) Target {
	out := Target{Key: t.Key.Name, Provider: t.Key.Provider, Model: t.Model, OK: r.Success(),
		Result: string(r.Outcome), StatusCode: r.StatusCode, Windows: []Window{}}
	if !out.OK {
		switch {
		case r.Err != nil:
			out.Error = r.Err.Error()
		case r.StatusCode != 0:
			out.Error = "HTTP " + strconv.Itoa(r.StatusCode) + " without rate-limit headers"
		}
		if r.ErrorCode != "" && !strings.Contains(out.Error, r.ErrorCode) {
			out.Error += " (" + r.ErrorCode + ")"
		}
	}
	windows, _ := ratelimit.Windows(r.Observations, nil)
	for _, w := range windows {
		cw := Window{Resource: w.Resource, Window: w.Window}
		figure := func(kind ratelimit.Kind) *float64 {
			if k := ratelimit.KindIndex[kind]; w.Has[k] {
				v := w.Values[k]
				return &v
			}
			return nil
		}
		cw.Limit, cw.Remaining, cw.ResetSeconds = figure(ratelimit.Limit), figure(ratelimit.Remaining), figure(ratelimit.Reset)
		if cw.ResetSeconds != nil {
			at := r.Time.Add(time.Duration(*cw.ResetSeconds * float64(time.Second))).UTC()
			cw.ResetsAt = &at
		}
		out.Windows = append(out.Windows, cw)
	}
	return out
}

// Formats are the values of --output.
var Formats = []string{"table", "json"}

// Write writes the report in format, "table" or "json".
func Write(w io.Writer, format string, r Report) error {
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

func writeTable(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tPROVIDER\tMODEL\tRESOURCE\tWINDOW\tREMAINING OF LIMIT\t\tRESETS IN")
	var failed []Target
	for _, t := range r.Targets {
		if !t.OK {
			failed = append(failed, t)
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\tnothing read\t\t-\n", t.Key, t.Provider, modelName(t.Model))
			continue
		}
		for _, win := range t.Windows {
			window := win.Window
			if window == "" {
				window = "(not given)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Key, t.Provider, modelName(t.Model), win.Resource, window,
				remainingOfLimit(win), bar(win), resetsIn(win, r.CheckedAt))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(failed) == 0 {
		_, err := fmt.Fprintf(w, "\nAll %d key and model pairs read their rate limits.\n", len(r.Targets))
		return err
	}
	fmt.Fprintf(w, "\n%d of %d key and model pairs read no rate limits:\n", len(failed), len(r.Targets))
	for _, t := range failed {
		fmt.Fprintf(w, "  %s %s (%s): %s: %s\n", t.Key, modelName(t.Model), t.Provider, t.Result, t.Error)
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

func remainingOfLimit(w Window) string {
	text := func(v *float64) string {
		if v == nil {
			return "?"
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	return text(w.Remaining) + " of " + text(w.Limit)
}

// bar draws what is left of the limit, with its share; nothing when the
// share is unknown.
func bar(w Window) string {
	if w.Remaining == nil || w.Limit == nil || !(*w.Limit > 0) {
		return ""
	}
	share := math.Min(math.Max(*w.Remaining / *w.Limit, 0), 1)
	full := int(math.Round(share * barCells))
	return strings.Repeat("█", full) + strings.Repeat("░", barCells-full) + fmt.Sprintf(" %3.0f%%", share*100)
}

// resetsIn is how long from now until the window is full again, short.
func resetsIn(w Window, now time.Time) string {
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
