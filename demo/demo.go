// Package demo runs the simulator on loopback with a few keys and changing
// traffic, and gives the config that probes it: live metrics with no API key.
package demo

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Simulator keys. They are valid only inside the demo's simulator.
const (
	ProdKey    = "sk-demo-prod-0000000000000000"
	TrialKey   = "sk-demo-trial-000000000000000"
	RevokedKey = "sk-demo-revoked-0000000000000"
)

const configTemplate = `probe:
  interval: 15s
  timeout: 5s
keys:
  - name: prod
    api_key: %[2]s
    base_url: %[1]s
    models: [llama3.1-8b, llama-3.3-70b]
    labels: {team: search}
  - name: trial
    api_key: %[3]s
    base_url: %[1]s
    models: [llama3.1-8b]
    labels: {team: research}
  - name: revoked
    api_key: %[4]s
    base_url: %[1]s
    models: [llama3.1-8b]
`

// Demo is a running simulator and the traffic that drains it.
type Demo struct {
	URL    string // base URL of the simulated API
	Config []byte // exporter config that probes it
	server *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Start serves the simulator on a loopback port and starts the traffic.
func Start() (*Demo, error) {
	sim := simulator.New("llama3.1-8b", "llama-3.3-70b")
	sim.SetLatency(80 * time.Millisecond)
	sim.AddKey(ProdKey, simulator.Limits{
		"requests": {"minute": 1000, "hour": 50000, "day": 1000000},
		"tokens":   {"minute": 1000000, "hour": 30000000, "day": 500000000},
	})
	sim.AddKey(TrialKey, simulator.Limits{
		"requests": {"minute": 30, "hour": 900, "day": 14400},
		"tokens":   {"minute": 60000, "hour": 1000000, "day": 1000000},
	})
	// RevokedKey is never added: its probes get 401.

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: starting the simulator: %w", err)
	}
	url := "http://" + listener.Addr().String() + "/v1"
	ctx, cancel := context.WithCancel(context.Background())
	d := &Demo{
		URL:    url,
		Config: fmt.Appendf(nil, configTemplate, url, ProdKey, TrialKey, RevokedKey),
		server: &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second},
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() { _ = d.server.Serve(listener) }()
	go func() {
		defer close(d.done)
		traffic(ctx, sim)
	}()
	return d, nil
}

// Load parses the demo config; it suits config.NewReloader.
func (d *Demo) Load() (*config.Config, error) {
	return config.Parse(d.Config, "<demo>")
}

// Stop ends the traffic and the simulator.
func (d *Demo) Stop() {
	d.cancel()
	<-d.done
	_ = d.server.Close()
}

// traffic drains the buckets as real applications would: prod in a slow
// wave, trial in bursts that empty its minute window now and then.
func traffic(ctx context.Context, sim *simulator.Simulator) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t := now.Sub(start).Seconds()
			wave := 1 + math.Sin(2*math.Pi*t/600)
			sim.Consume(ProdKey, "llama3.1-8b", 6*wave, 9000*wave*(0.8+0.4*rand.Float64()))
			sim.Consume(ProdKey, "llama-3.3-70b", 2*wave, 4000*wave*(0.8+0.4*rand.Float64()))
			if math.Mod(t, 300) < 60 { // one busy minute in five
				sim.Consume(TrialKey, "llama3.1-8b", 1, 900*rand.Float64())
			}
		}
	}
}
