package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-kit/log/level"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/gzipjoin"
)

// The multi-target endpoints: Prometheus discovers every key and model at
// SDPath and scrapes each at ProbePath, so that it owns the schedule and
// can shard targets over several servers.
const (
	ProbePath = "/probe"
	SDPath    = "/sd"
)

// probeHandler serves one target's series: ?key=NAME&model=MODEL, both
// configured names; a key with one model may leave out the model. In scrape mode it first refreshes that target, sharing
// the probe with every other scraper.
func probeHandler(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := probeTarget(r.URL.Query(), o.Targets())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if debug, _ := strconv.ParseBool(r.URL.Query().Get("debug")); debug {
			serveDebug(w, r, o, id)
			return
		}
		if o.RefreshTarget != nil {
			ctx, cancel := scrapeContext(r, o.TimeoutOffset)
			o.RefreshTarget(ctx, id)
			cancel()
		}
		serveText(w, r, nil, func(b gzipjoin.Body) gzipjoin.Body { return o.Observations.AppendTargetBody(b, id) }, o.WriteTimeout, o.Logger)
	})
}

// probeTarget reads the target a /probe request names. Its errors name the
// parameter and never repeat a value that is not a configured name: a key
// parameter could hold a secret pasted by mistake.
func probeTarget(query url.Values, targets []config.Target) (config.TargetID, error) {
	key, err := oneParameter(query, "key")
	if err != nil {
		return config.TargetID{}, err
	}
	if key == "" {
		return config.TargetID{}, errors.New("missing parameter key: /probe?key=NAME&model=MODEL takes a configured key name and one of its models")
	}
	model, err := oneParameter(query, "model")
	if err != nil {
		return config.TargetID{}, err
	}
	var models []string
	for _, t := range targets {
		if t.Key.Name == key {
			models = append(models, t.Model)
		}
	}
	if len(models) == 0 {
		return config.TargetID{}, errors.New("parameter key: no configured key has this name")
	}
	if slices.Contains(models, model) {
		return config.TargetID{Key: key, Model: model}, nil
	}
	if model == "" && len(models) == 1 {
		return config.TargetID{Key: key, Model: models[0]}, nil // no doubt which
	}
	if model == "" {
		return config.TargetID{}, fmt.Errorf("missing parameter model: key %q has models %s", key, quoteAll(models))
	}
	if len(models) == 1 && models[0] == "" {
		return config.TargetID{}, fmt.Errorf("parameter model: key %q is probed once for all models; give no model parameter", key)
	}
	return config.TargetID{}, fmt.Errorf("parameter model: key %q has no model of this name; its models are %s", key, quoteAll(models))
}

// oneParameter returns the value of the parameter name, "" if absent; a
// parameter given twice is an error, as its meaning would be unclear.
func oneParameter(query url.Values, name string) (string, error) {
	switch values := query[name]; len(values) {
	case 0:
		return "", nil
	case 1:
		return values[0], nil
	default:
		return "", fmt.Errorf("parameter %s is given %d times; give it once", name, len(values))
	}
}

func quoteAll(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	return strings.Join(quoted, ", ")
}

// targetGroup is one entry of Prometheus's HTTP service discovery format.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// sdHandler lists every configured key and model as a target of
// ProbePath, in Prometheus's HTTP SD format.
func sdHandler(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		address, scheme, metricsPath := r.Host, "", ""
		if r.TLS != nil {
			scheme = "https"
		}
		if u := o.ExternalURL; u != nil {
			address, scheme = u.Host, u.Scheme
			if prefix := strings.TrimRight(u.Path, "/"); prefix != "" {
				metricsPath = prefix + ProbePath
			}
		}
		if address == "" {
			http.Error(w, "The request names no host to give as the targets' address; set --web.external-url", http.StatusBadRequest)
			return
		}
		targets := o.Targets()
		groups := make([]targetGroup, 0, len(targets))
		for _, t := range targets {
			labels := make(map[string]string, len(t.Key.Labels)+7)
			for name, value := range t.Key.Labels {
				labels[name] = value
			}
			// Empty values are left out: Prometheus drops empty labels, and
			// an absent model parameter is what /probe expects of a key
			// probed once for all models.
			for name, value := range map[string]string{
				"key": t.Key.Name, "model": t.Model, "provider": t.Key.Provider,
				"__param_key": t.Key.Name, "__param_model": t.Model,
				"__scheme__": scheme, "__metrics_path__": metricsPath,
			} {
				if value != "" {
					labels[name] = value
				}
			}
			groups = append(groups, targetGroup{Targets: []string{address}, Labels: labels})
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(groups); err != nil {
			level.Debug(o.Logger).Log("msg", "Error writing the service discovery answer", "err", err)
		}
	})
}

// CheckExternalURL returns an error unless u can be given to Prometheus as
// the exporter's address: an absolute http or https URL with a host and
// nothing after its path; Prometheus's scrape config holds credentials.
func CheckExternalURL(u *url.URL) error {
	if _, err := config.CheckHTTPURL(u.String()); err != nil {
		return fmt.Errorf("--web.external-url %q %w", u.Redacted(), err)
	}
	return nil
}
