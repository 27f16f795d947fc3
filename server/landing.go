package server

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/history"
)

// recentProbesMarker marks where the landing page lists the recent probes.
const recentProbesMarker = "<!-- recent probes -->"

const recentProbesCSS = `table.probes { border-collapse: collapse; margin-bottom: 1em; }
table.probes th, table.probes td { text-align: left; padding: 0.2em 0.8em 0.2em 0; }
table.probes td.failed { color: #c00; }`

// recentProbes lists the history's entries; html/template escapes each
// value, a model name from the proxy's traffic included.
var recentProbes = template.Must(template.New("recent").Funcs(template.FuncMap{
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"duration": func(e *history.Entry) string {
		if e.Source == history.Proxy {
			return ""
		}
		return e.Result.Duration.Round(time.Millisecond).String()
	},
}).Parse(`{{define "rows"}}<table class="probes">
<tr><th>Time</th><th>Key</th><th>Model</th><th>Source</th><th>Result</th><th>Duration</th><th></th></tr>
{{range .}}<tr><td>{{time .Started}}</td><td>{{.Target.Key}}</td><td>{{.Target.Model}}</td><td>{{.Source}}</td><td{{if .Failed}} class="failed"{{end}}>{{.Outcome}}</td><td>{{duration .}}</td><td><a href="/probe/log?id={{.ID}}">log</a></td></tr>
{{end}}</table>{{end}}
<h2>Last failure of each target</h2>
{{if .Failures}}{{template "rows" .Failures}}{{else}}<p>No configured target's last failed probe is kept.</p>{{end}}
<h2>Recent probes</h2>
{{if not .On}}<p>The history is off (<code>--history.limit=0</code>).</p>{{else if .Recent}}{{template "rows" .Recent}}{{else}}<p>No probe has ended yet.</p>{{end}}
`))

// landingWithHistory serves the toolkit's landing page with the recent
// probes and the last failure of each target listed where
// recentProbesMarker is.
func landingWithHistory(landing http.Handler, h *history.History) http.Handler {
	var page capture
	landing.ServeHTTP(&page, &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}})
	before, after, _ := strings.Cut(page.body.String(), recentProbesMarker)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" || h == nil {
			landing.ServeHTTP(w, r)
			return
		}
		recent, failures := h.Recent(), h.Failures()
		slices.SortFunc(failures, func(a, b *history.Entry) int { return b.Started.Compare(a.Started) })
		var out bytes.Buffer
		out.WriteString(before)
		if err := recentProbes.Execute(&out, struct {
			On               bool
			Recent, Failures []*history.Entry
		}{h.Limit() > 0, recent, failures}); err != nil {
			http.Error(w, "Rendering the landing page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		out.WriteString(after)
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		_, _ = w.Write(out.Bytes())
	})
}

// capture is a ResponseWriter that keeps the body.
type capture struct {
	header http.Header
	body   bytes.Buffer
}

func (c *capture) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}
func (c *capture) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *capture) WriteHeader(int)             {}
