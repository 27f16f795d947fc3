package e2e

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// typesOf lists the families of an exposition, in order.
func typesOf(text string) []string {
	var names []string
	for line := range strings.Lines(text) {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names = append(names, strings.Fields(name)[0])
		}
	}
	return names
}

// The built exporter with --probe.on-request-only: nothing but a /probe
// request (or its debug form) probes, counted at the simulator; /probe
// answers with the five probe gauges alone and /metrics with everything
// else, the readings of that probe and their reading times among them; a
// reload to interval mode starts no timer. Until this test nothing ran the
// flag through exporter.New: the scheduler's and the collector's halves
// were each tested, their wiring not. Test by the attacking reviewer.
func TestProbeOnRequestOnlyBinary(t *testing.T) {
	sim, e, cfg := startTwoKeys(t, "scrape", func(s string) string {
		return strings.Replace(s, "min_interval: 0s", "min_interval: 1h", 1)
	}, "--probe.on-request-only")
	for _, path := range []string{"/metrics", "/status", "/api/v1/limits", "/sd", "/"} {
		if status, _ := e.get(t, path, "X-Prometheus-Scrape-Timeout-Seconds", "5"); status != http.StatusOK {
			t.Errorf("%s: %d", path, status)
		}
	}
	if n := sim.Requests(); n != 0 {
		t.Fatalf("%d probes for /metrics, /status, /api/v1/limits, /sd and /, want none", n)
	}

	gauges := []string{"ratelimit_probe_success", "ratelimit_probe_duration_seconds", "ratelimit_probe_status_code",
		"ratelimit_probe_last_success_timestamp_seconds", "ratelimit_probe_interval_seconds"}
	const target = "/probe?key=good&model=llama3.1-8b"
	for range 2 {
		status, body := e.get(t, target, "X-Prometheus-Scrape-Timeout-Seconds", "5")
		if got := typesOf(body); status != http.StatusOK || !slices.Equal(got, gauges) {
			t.Errorf("%s: %d with %v, want the probe's gauges alone: %v\n%s", target, status, got, gauges, body)
		}
	}
	if n := sim.Requests(); n != 1 {
		t.Errorf("two /probe requests within min_interval sent %d probes, want 1", n)
	}
	_, metrics := e.get(t, "/metrics", "X-Prometheus-Scrape-Timeout-Seconds", "5")
	for _, name := range gauges {
		if strings.Contains(metrics, "\n"+name+"{") {
			t.Errorf("/metrics has %s, which /probe alone serves", name)
		}
	}
	good := `key="good",model="llama3.1-8b",provider="cerebras",resource="requests",team="search",window="minute"`
	for _, want := range []string{"ratelimit_limit{" + good + "} 1000", "ratelimit_reading_timestamp_seconds{" + good + "} ",
		`ratelimit_probes_total{cause="",key="good",model="llama3.1-8b",provider="cerebras",reason="",result="success",team="search"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics after the probe lacks %s", want)
		}
	}
	if _, body := e.get(t, "/probe?key=good&model=llama-3.3-70b&debug=true"); !strings.Contains(body, "ratelimit_probe_success") {
		t.Errorf("/probe?debug=true shows no probe:\n%s", body)
	}
	if n := sim.Requests(); n != 2 {
		t.Errorf("/probe?debug=true of a target not yet probed: %d probes in all, want 2", n)
	}

	// A reload to interval mode starts no timer here. A second exporter,
	// without the flag, on the same config shape and its own simulator,
	// shows that several intervals have passed.
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	interval := strings.Replace(strings.Replace(string(text), "mode: scrape", "mode: interval", 1), "min_interval: 1h", "min_interval: 0s", 1)
	if err := os.WriteFile(cfg, []byte(interval), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, body := e.do(t, http.MethodPost, "/-/reload"); status != http.StatusOK {
		t.Fatalf("reload to interval mode: %d %s", status, body)
	}
	before := sim.Requests()
	control, _, _ := startTwoKeys(t, "interval", nil)
	eventually(t, 30*time.Second, "the exporter without the flag probes each target 3 times", func() error {
		if n := control.Requests(); n < 9 {
			return fmt.Errorf("%d probes", n)
		}
		return nil
	})
	if n := sim.Requests() - before; n != 0 {
		t.Errorf("in interval mode, while the other exporter probed %d times, this one probed %d times, want none", control.Requests(), n)
	}
}
