package server

import (
	"bytes"
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/ratelimit-exporter/ratelimit_exporter/gzipjoin"
	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// The status page and the files it loads.
const (
	StatusPath       = "/status"
	StatusStylePath  = "/status.css"
	StatusScriptPath = "/status.js"
	StatusIconPath   = "/status.svg"
)

// StatusPolicy is the status page's Content-Security-Policy: the page
// loads its own style sheet and script and nothing else; no inline script
// or style runs.
const StatusPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// statusRefresh is how often the page's script fetches the page again.
const statusRefresh = 5 * time.Second

var (
	//go:embed status.html
	statusHTML string
	//go:embed status.css
	statusCSS []byte
	//go:embed status.js
	statusJS []byte
	//go:embed status.svg
	statusIcon []byte

	statusTemplate = template.Must(template.New("status").Parse(statusHTML))
)

// statusSize is the size of the last page, to allocate the next at once.
var statusSize atomic.Int64

// statusPage is what the template renders.
type statusPage struct {
	GeneratedAt             string // RFC 3339 with milliseconds, which every browser parses
	GeneratedAtText         string
	RefreshSeconds          int
	Targets                 []statusTarget
	Failing, Total          int
	Admin                   []snapshot.AdminSource
	StylePath, Script, Icon string
}

type statusTarget struct {
	Key, Model, Provider string
	Labels               string // name=value, sorted by name
	Failing              bool
	Exhausted            bool // a window has nothing left
	Result, Error        string
	StatusCode           int
	ReadAt, Age, Source  string
	Windows              []statusWindow
	Balances             []snapshot.Balance
	least                float64 // the smallest share left of a window; NaN: none known
}

type statusWindow struct {
	Resource, Window string
	HasShare         bool
	Share            string // the share left, for the bar: as exact as the figures
	Percent          string
	Figures          string
	Status           string
	ResetsAt, Reset  string
	ReadAt, Age      string
	Source           string
	Current          bool
	share            float64
}

// statusHandler renders the status page from limits: every key and model,
// failing first, then the least left first.
func statusHandler(limits func(time.Time) snapshot.Report, logger log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var report snapshot.Report
		if limits != nil {
			report = limits(now)
		}
		// Rendered into memory first: a slow reader holds nothing up.
		var page bytes.Buffer
		page.Grow(int(statusSize.Load()))
		if err := statusTemplate.Execute(&page, newStatusPage(report, now)); err != nil {
			level.Error(logger).Log("msg", "Error rendering the status page", "err", err)
			http.Error(w, "Error rendering the status page", http.StatusInternalServerError)
			return
		}
		statusSize.Store(int64(page.Len()))
		// Only writing is left: a slow reader holds no slot of --web.max-requests.
		releaseSlot(r)
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		setStrictHeaders(h)
		_ = writeBody(w, r, gzipjoin.Body{gzipjoin.Text(page.Bytes())})
	})
}

// staticHandler serves one of the status page's embedded files.
func staticHandler(contentType string, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		setStrictHeaders(h)
		_, _ = w.Write(body)
	})
}

func setStrictHeaders(h http.Header) {
	h.Set("Content-Security-Policy", StatusPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// newStatusPage orders the report's targets for the page: those whose last
// probe failed first, then by the smallest share left of any window, then
// those with no share known; ties by key and model. Within a target, the
// window with the least left comes first.
func newStatusPage(report snapshot.Report, now time.Time) statusPage {
	page := statusPage{
		GeneratedAt:     jsTime(now),
		GeneratedAtText: now.UTC().Format("2006-01-02 15:04:05 UTC"),
		RefreshSeconds:  int(statusRefresh / time.Second),
		Total:           len(report.Targets),
		Admin:           report.Admin,
		// Relative, so that the page works behind a proxy's path prefix.
		StylePath: strings.TrimPrefix(StatusStylePath, "/"),
		Script:    strings.TrimPrefix(StatusScriptPath, "/"),
		Icon:      strings.TrimPrefix(StatusIconPath, "/"),
	}
	page.Targets = make([]statusTarget, 0, len(report.Targets))
	for i := range report.Targets {
		t := newStatusTarget(&report.Targets[i], now)
		if t.Failing {
			page.Failing++
		}
		page.Targets = append(page.Targets, t)
	}
	slices.SortStableFunc(page.Targets, func(a, b statusTarget) int {
		if a.Failing != b.Failing {
			if a.Failing {
				return -1
			}
			return 1
		}
		if c := compareShares(a.least, b.least); c != 0 {
			return c
		}
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Model, b.Model)
	})
	return page
}

// compareShares orders shares left, least first, unknown (NaN) last.
func compareShares(a, b float64) int {
	switch an, bn := math.IsNaN(a), math.IsNaN(b); {
	case an && bn:
		return 0
	case an:
		return 1
	case bn:
		return -1
	}
	return cmp.Compare(a, b)
}

// failing says whether a target's last probe failed: a target not probed,
// or not probed yet, has not failed.
func failing(t *snapshot.Target) bool {
	return !t.OK && t.Result != snapshot.ResultNotProbed && t.Result != snapshot.ResultPending
}

func newStatusTarget(t *snapshot.Target, now time.Time) statusTarget {
	out := statusTarget{
		Key: t.Key, Model: t.Model, Provider: t.Provider,
		Failing: failing(t), Result: t.Result, Error: t.Error, StatusCode: t.StatusCode,
		Source: t.Source, Balances: t.Balances, least: math.NaN(),
	}
	if len(t.Labels) > 0 {
		names := make([]string, 0, len(t.Labels))
		for name := range t.Labels {
			names = append(names, name)
		}
		slices.Sort(names)
		for i, name := range names {
			names[i] = name + "=" + t.Labels[name]
		}
		out.Labels = strings.Join(names, ", ")
	}
	if t.ReadAt != nil {
		out.ReadAt, out.Age = jsTime(*t.ReadAt), ago(now.Sub(*t.ReadAt))
	}
	for i := range t.Windows {
		w := newStatusWindow(&t.Windows[i], now)
		if w.HasShare && !(w.share >= out.least) { // also when least is NaN
			out.least = w.share
		}
		out.Windows = append(out.Windows, w)
	}
	out.Exhausted = out.least == 0
	slices.SortStableFunc(out.Windows, func(a, b statusWindow) int {
		as, bs := math.NaN(), math.NaN()
		if a.HasShare {
			as = a.share
		}
		if b.HasShare {
			bs = b.share
		}
		if c := compareShares(as, bs); c != 0 {
			return c
		}
		if c := strings.Compare(a.Resource, b.Resource); c != 0 {
			return c
		}
		return strings.Compare(a.Window, b.Window)
	})
	return out
}

func newStatusWindow(w *snapshot.Window, now time.Time) statusWindow {
	out := statusWindow{Resource: w.Resource, Window: w.Window, Status: w.Status, Source: w.Source, Current: w.Current}
	if share, ok := w.Left(); ok {
		out.HasShare, out.share = true, share
		out.Share = strconv.FormatFloat(share, 'g', -1, 64)
		out.Percent = strconv.FormatFloat(math.Floor(share*100), 'f', 0, 64) + "%"
	}
	remaining, estimated := w.Remaining, false
	if remaining == nil && w.RemainingEstimate != nil {
		remaining, estimated = w.RemainingEstimate, true
	}
	var figures []string
	switch {
	case remaining != nil && w.Limit != nil:
		figures = append(figures, number(*remaining)+" of "+number(*w.Limit)+" left")
	case remaining != nil:
		figures = append(figures, number(*remaining)+" left, limit unknown")
	case w.Limit != nil:
		figures = append(figures, "limit "+number(*w.Limit)+", remaining unknown")
	}
	if estimated {
		figures = append(figures, "estimated")
	}
	if w.Utilization != nil {
		figures = append(figures, strconv.FormatFloat(*w.Utilization*100, 'f', -1, 64)+"% used")
	}
	out.Figures = strings.Join(figures, ", ")
	if w.ResetsAt != nil {
		out.ResetsAt, out.Reset = jsTime(*w.ResetsAt), resetText(w.ResetsAt.Sub(now))
	}
	if w.ReadAt != nil {
		out.ReadAt, out.Age = jsTime(*w.ReadAt), ago(now.Sub(*w.ReadAt))
	}
	return out
}

// jsTime formats t as every browser's Date.parse reads it.
func jsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// resetText says when a window resets, d from now; status.js writes the
// same text as it counts down.
func resetText(d time.Duration) string {
	if d > 0 {
		return "in " + span(d)
	}
	return "reset " + span(-d) + " ago"
}

func ago(d time.Duration) string { return span(max(d, 0)) + " ago" }

// span writes d in whole seconds, as status.js's span does: 42s, 3m 12s,
// 2h 5m 0s, 3d 4h 5m.
func span(d time.Duration) string {
	s := int64(d / time.Second)
	days, hours, minutes, seconds := s/86400, s/3600%24, s/60%60, s%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh %dm", days, hours, minutes)
	case hours > 0:
		return fmt.Sprintf("%dh %dm %ds", hours, minutes, seconds)
	case minutes > 0:
		return fmt.Sprintf("%dm %ds", minutes, seconds)
	}
	return fmt.Sprintf("%ds", seconds)
}

// number writes v with thousands separated: 1,000,000; 0.25.
func number(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) >= 1e15 || v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
	digits := strconv.FormatInt(int64(math.Abs(v)), 10)
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
