package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// runTargets measures the multi-target endpoints at 1,000 keys x 3 models:
// /sd as Prometheus's HTTP SD fetches it, /probe twice for every target as
// Prometheus scrapes them, and in scrape mode an HA pair scraping the same
// targets at the same moment, which must cost one probe a target.
func runTargets() error {
	s, err := newSetup(1000)
	if err != nil {
		return err
	}
	defer s.close()
	dir, exporterBin, sim, simURL, key := s.dir, s.exporter, s.sim, s.simURL, benchKey

	// Interval mode: every target probed once, then /sd and /probe serve
	// what is held.
	cfg, err := writeConfig(dir, "targets.yml", "interval", "1h", simURL+"/v1", 1000, models, key)
	if err != nil {
		return err
	}
	e, err := startExporter(exporterBin, cfg)
	if err != nil {
		return err
	}
	defer e.stop()
	for deadline := time.Now().Add(60 * time.Second); ; {
		body, _, err := scrape(e.url+"/metrics", 0)
		if err != nil {
			return err
		}
		if strings.Count(body, "\nratelimit_probe_success{") == 3000 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every target was probed within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}

	var sdTimes []time.Duration
	var sdBody string
	for range 50 {
		body, d, err := scrape(e.url+"/sd", 0)
		if err != nil {
			return err
		}
		sdTimes, sdBody = append(sdTimes, d), body
	}
	var groups []struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(sdBody), &groups); err != nil {
		return fmt.Errorf("/sd: %w", err)
	}
	if len(groups) != 3000 {
		return fmt.Errorf("/sd lists %d targets, want 3000", len(groups))
	}

	// Every target twice, in the order /sd gives them, as Prometheus
	// scrapes them (the first round also warms the connection).
	probeURL := func(labels map[string]string) string {
		return e.url + "/probe?key=" + url.QueryEscape(labels["__param_key"]) + "&model=" + url.QueryEscape(labels["__param_model"])
	}
	var probeTimes []time.Duration
	cpuBefore := cpuSeconds(e.cmd.Process.Pid)
	for range 2 {
		for _, g := range groups {
			body, d, err := scrape(probeURL(g.Labels), 0)
			if err != nil {
				return err
			}
			if !strings.Contains(body, "ratelimit_remaining{") {
				return fmt.Errorf("%s has no ratelimit_remaining", probeURL(g.Labels))
			}
			probeTimes = append(probeTimes, d)
		}
	}
	cpuPerProbe := (cpuSeconds(e.cmd.Process.Pid) - cpuBefore) / float64(len(probeTimes))
	oneTarget, _, err := scrape(probeURL(groups[0].Labels), 0)
	if err != nil {
		return err
	}
	e.stop()

	// Scrape mode, 200 keys behind a 100ms upstream: two Prometheus servers
	// scrape every target at once, 16 targets at a time.
	sim.SetLatency(100 * time.Millisecond)
	if cfg, err = writeConfig(dir, "ha.yml", "scrape", "30s", simURL+"/v1", 200, models[:1], key); err != nil {
		return err
	}
	e2, err := startExporter(exporterBin, cfg)
	if err != nil {
		return err
	}
	defer e2.stop()
	before := sim.Requests()
	jobs := make(chan int, 200)
	for i := range 200 {
		jobs <- i
	}
	close(jobs)
	var (
		mu      sync.Mutex
		haTimes []time.Duration
		haErr   error
		wg      sync.WaitGroup
	)
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				u := fmt.Sprintf("%s/probe?key=key-%04d&model=%s", e2.url, i, models[0])
				var pair sync.WaitGroup
				for range 2 {
					pair.Go(func() {
						body, d, err := scrape(u, 10)
						if err == nil && !strings.Contains(body, "ratelimit_probe_success{") {
							err = fmt.Errorf("%s: no probe result", u)
						}
						mu.Lock()
						defer mu.Unlock()
						haTimes = append(haTimes, d)
						if err != nil && haErr == nil {
							haErr = err
						}
					})
				}
				pair.Wait()
			}
		})
	}
	wg.Wait()
	haProbes := sim.Requests() - before
	sim.SetLatency(0)
	if haErr != nil {
		return haErr
	}

	sdMedian, sdP99 := percentiles(sdTimes)
	probeMedian, probeP99 := percentiles(probeTimes)
	haMedian, haP99 := percentiles(haTimes)
	fmt.Printf("\n%-66s %14s %s\n", "multi-target endpoints, 1,000 keys x 3 models", "", "")
	fmt.Printf("%-66s %14s\n", fmt.Sprintf("/sd, 3,000 target groups (%.0f KB), median of 50", float64(len(sdBody))/1e3), ms(sdMedian))
	fmt.Printf("%-66s %14s\n", "  p99", ms(sdP99))
	fmt.Printf("%-66s %14s\n", fmt.Sprintf("/probe, interval mode, each target twice (%d B each), median", len(oneTarget)), ms(probeMedian))
	fmt.Printf("%-66s %14s\n", "  p99", ms(probeP99))
	fmt.Printf("%-66s %11.0f µs\n", "  exporter CPU per /probe", cpuPerProbe*1e6)
	fmt.Printf("%-66s %14d %s\n", "HA pair: 200 targets scraped by two at once, scrape mode: probes", haProbes, "(one a target: 200)")
	fmt.Printf("%-66s %14s\n", "  /probe with a 100ms upstream, median", ms(haMedian))
	fmt.Printf("%-66s %14s\n", "  p99", ms(haP99))
	return nil
}
