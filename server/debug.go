package server

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/history"
)

// ProbeLogPath shows the log of one probe of the history: ?id=N.
const ProbeLogPath = "/probe/log"

// serveDebug answers /probe?debug=true: the log of the target's latest
// probe (in scrape mode, one this request sent if it was due), its
// settings without secrets, and the metrics /probe serves.
func serveDebug(w http.ResponseWriter, r *http.Request, o Options, id config.TargetID) {
	var entry *history.Entry
	found := false
	if o.Debug != nil {
		ctx, cancel := scrapeContext(r, o.TimeoutOffset)
		entry, found = o.Debug(ctx, id)
		cancel()
	}
	var out bytes.Buffer
	out.WriteString("Logs for the last probe of this target (in scrape mode, this request refreshed it as any /probe does; in interval mode, it sent no probe of its own):\n")
	if found {
		entry.WriteLog(&out)
	} else {
		out.WriteString("No probe of this target is kept: none has ended since it was configured, or its last one succeeded and has left the recent probes (--history.limit).\n")
	}
	writeTargetConfig(&out, o, id)
	out.WriteString("\n\nMetrics that would have been returned:\n")
	if err := o.Observations.AppendTargetBody(nil, id).WriteText(&out); err != nil {
		fmt.Fprintf(&out, "Error rendering the metrics: %v\n", err)
	}
	// Only writing is left: a slow reader holds no slot of --web.max-requests.
	releaseSlot(r)
	writeLogText(w, out.Bytes())
}

// writeLogText answers with a probe's log: plain text that holds what
// came from traffic, such as a model name with markup, so no browser may
// take it for anything else.
func writeLogText(w http.ResponseWriter, text []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(text)
}

// writeTargetConfig writes id's settings, secrets hidden, if it is configured.
func writeTargetConfig(out *bytes.Buffer, o Options, id config.TargetID) {
	out.WriteString("\n\nTarget configuration:\n")
	for _, t := range o.Targets() {
		if t.ID() == id {
			settings, err := yaml.Marshal(struct {
				Key   *config.Key `yaml:"key"`
				Model string      `yaml:"model"`
			}{t.Key, t.Model})
			if err != nil {
				settings = []byte(fmt.Sprintf("Error marshalling the settings: %v\n", err))
			}
			out.Write(settings)
			return
		}
	}
	out.WriteString("Not configured now.\n")
}

// probeLogHandler serves ProbeLogPath: the log of a probe or proxy
// reading the history still keeps, and its target's settings.
func probeLogHandler(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
		if err != nil {
			http.Error(w, "The id parameter must be the number of a probe, as the landing page links it.", http.StatusBadRequest)
			return
		}
		var entry *history.Entry
		found := false
		if o.History != nil {
			entry, found = o.History.Get(id)
		}
		if !found {
			http.Error(w, fmt.Sprintf("Probe %d is not kept: the history keeps the last --history.limit probes and proxy readings, and the last failed probe of each configured target. The landing page lists those kept.", id), http.StatusNotFound)
			return
		}
		var out bytes.Buffer
		fmt.Fprintf(&out, "Log of %s %d of key %s, model %s, at %s:\n", entry.Source, entry.ID, entry.Target.Key, entry.Target.Model, entry.Started.UTC().Format(time.RFC3339))
		entry.WriteLog(&out)
		writeTargetConfig(&out, o, entry.Target)
		writeLogText(w, out.Bytes())
	})
}
