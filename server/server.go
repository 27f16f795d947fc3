// Package server wires the exporter's HTTP endpoints.
package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// Options are what the endpoints need.
type Options struct {
	MetricsPath string
	Registry    *prometheus.Registry
	// Refresh brings the metrics up to date before a scrape; ctx carries
	// the scrape's deadline. It may be nil.
	Refresh func(ctx context.Context)
	// TimeoutOffset is taken off Prometheus's scrape timeout to leave time
	// to send the response.
	TimeoutOffset time.Duration
	Reload        func() error
	// Dashboard is served at DashboardPath when not empty.
	Dashboard []byte
	Ready     func() bool
	Logger    log.Logger
}

// DashboardPath is where the Grafana dashboard is served.
const DashboardPath = "/grafana/dashboard.json"

// Handler returns the mux that serves every endpoint.
func Handler(o Options) (http.Handler, error) {
	mux := http.NewServeMux()
	metrics := promhttp.InstrumentMetricHandler(o.Registry, promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{
		ErrorLog:      promLogger{o.Logger},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.Handle("GET "+o.MetricsPath, scrapeHandler(metrics, o.Refresh, o.TimeoutOffset))

	if len(o.Dashboard) > 0 {
		mux.HandleFunc("GET "+DashboardPath, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(o.Dashboard)
		})
	}

	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !o.Ready() {
			http.Error(w, "Not ready: no configuration loaded", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
			return
		}
		if err := o.Reload(); err != nil {
			level.Error(o.Logger).Log("msg", "Error reloading config", "err", err)
			http.Error(w, fmt.Sprintf("Failed to reload config; the running config is kept:\n%s", err), http.StatusInternalServerError)
			return
		}
		level.Info(o.Logger).Log("msg", "Reloaded config file")
		fmt.Fprintln(w, "Reloaded")
	})

	if o.MetricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "Rate Limit Exporter",
			Description: "Prometheus exporter for the rate limits of LLM API keys",
			Version:     version.Info(),
			Profiling:   "false",
			Links: []web.LandingLinks{
				{Address: o.MetricsPath, Text: "Metrics", Description: "Rate limits of every configured key and model"},
				{Address: DashboardPath, Text: "Grafana dashboard", Description: "Import it into Grafana, or provision it from a file"},
				{Address: "/-/healthy", Text: "Health", Description: "200 while the exporter serves"},
				{Address: "/-/ready", Text: "Readiness", Description: "200 once a configuration is loaded"},
			},
			ExtraHTML: `<p>Reload the configuration with <code>POST /-/reload</code> or SIGHUP.</p>`,
		})
		if err != nil {
			return nil, err
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}

// scrapeHandler refreshes the metrics within the scrape's deadline, then serves them.
func scrapeHandler(metrics http.Handler, refresh func(context.Context), offset time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refresh != nil {
			ctx := r.Context()
			if timeout, ok := ScrapeTimeout(r, offset); ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			refresh(ctx)
		}
		metrics.ServeHTTP(w, r)
	})
}

// ScrapeTimeout returns Prometheus's scrape timeout from the
// X-Prometheus-Scrape-Timeout-Seconds header less offset. When the offset
// would leave nothing, the full timeout is used.
func ScrapeTimeout(r *http.Request, offset time.Duration) (time.Duration, bool) {
	v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return 0, false
	}
	seconds, err := strconv.ParseFloat(v, 64)
	if err != nil || !(seconds > 0 && seconds <= 24*3600) { // also refuses NaN
		return 0, false
	}
	timeout := time.Duration(seconds * float64(time.Second))
	if offset < timeout {
		timeout -= offset
	}
	return timeout, true
}

// promLogger adapts the logger to promhttp's Println.
type promLogger struct{ logger log.Logger }

func (l promLogger) Println(v ...any) {
	level.Error(l.logger).Log("msg", fmt.Sprint(v...))
}
