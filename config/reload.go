package config

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Reloader holds the running config and swaps it only for one that loaded
// and validated cleanly, so a bad reload keeps what runs.
type Reloader struct {
	load     func() (*Config, error)
	onChange func(*Config) error

	reloadMu sync.Mutex // serializes Reload, so changes apply in order
	mu       sync.RWMutex
	current  *Config

	lastSuccessful prometheus.Gauge
	lastSuccessAt  prometheus.Gauge
}

// NewReloader loads the config with load, such as Source.Load. onChange, if
// not nil, runs with each config that loads, the first one included, before
// it becomes the running one; an error from it refuses the config, so it
// must change nothing before it can fail.
func NewReloader(load func() (*Config, error), onChange func(*Config) error, reg prometheus.Registerer) (*Reloader, error) {
	r := &Reloader{
		load:     load,
		onChange: onChange,
		lastSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ratelimit_exporter_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		lastSuccessAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ratelimit_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	if reg != nil {
		reg.MustRegister(r.lastSuccessful, r.lastSuccessAt)
	}
	return r, nil
}

// Config returns the running config.
func (r *Reloader) Config() *Config {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// Reload loads the config again and, when it is valid, makes it the running one.
func (r *Reloader) Reload() error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	cfg, err := r.load()
	if err == nil && r.onChange != nil {
		err = r.onChange(cfg)
	}
	if err != nil {
		r.lastSuccessful.Set(0)
		return err
	}
	r.mu.Lock()
	r.current = cfg
	r.mu.Unlock()
	r.lastSuccessful.Set(1)
	r.lastSuccessAt.SetToCurrentTime()
	return nil
}
