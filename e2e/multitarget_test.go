package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// readmeYAMLBlocks returns the ```yaml blocks of the README section that
// heading opens, without their fences.
func readmeYAMLBlocks(t *testing.T, heading string) []string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q heading", heading)
	}
	// The section ends at the next heading of its level or above.
	level, _, _ := strings.Cut(heading, " ")
	for l := len(level); l > 1; l-- {
		if next := strings.Index(section, "\n"+strings.Repeat("#", l)+" "); next >= 0 {
			section = section[:next]
		}
	}
	var blocks []string
	for {
		var block string
		if _, section, ok = strings.Cut(section, "\n```yaml\n"); !ok {
			return blocks
		}
		if block, section, ok = strings.Cut(section, "\n```\n"); !ok {
			t.Fatalf("a ```yaml block of README section %q does not end", heading)
		}
		blocks = append(blocks, block+"\n")
	}
}

// The README's multi-target scrape configs, run by real Prometheus servers
// against the built exporter in scrape mode: one scrapes every target
// found at /sd, two others split them by hashmod. Every key and model is up
// with its own rate-limit series, the shards split the targets without
// overlap, and all their scrapes together cost one probe per target.
func TestMultiTargetWithPrometheus(t *testing.T) {
	withEachPrometheus(t, multiTarget)
}

func multiTarget(t *testing.T, prometheus string) {
	blocks := readmeYAMLBlocks(t, "## Multi-target: /probe and service discovery")
	if len(blocks) != 2 {
		t.Fatalf("the README's multi-target section has %d yaml blocks, want 2: the scrape config and its hashmod form", len(blocks))
	}
	const otherKey, thirdKey = "sk-test-multitarget-other-9b4e", "sk-test-multitarget-third-3c07"
	sim, simURL := startSimulator(t)
	sim.AddKey(otherKey, simulator.FreeTrial())
	sim.AddKey(thirdKey, simulator.FreeTrial())
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: scrape, min_interval: 1h}
keys:
  - {name: alpha, api_key: %[2]s, base_url: %[1]q, models: [llama3.1-8b, llama-3.3-70b], labels: {team: search}}
  - {name: beta, api_key: %[3]s, base_url: %[1]q, models: [llama3.1-8b]}
  - {name: gamma, api_key: %[4]s, base_url: %[1]q, models: [llama-3.3-70b]}
`, simURL, goodKey, otherKey, thirdKey))
	e := start(t, nil, "--config.file="+cfg)
	address := strings.TrimPrefix(e.URL, "http://")
	all := []string{"alpha/llama-3.3-70b", "alpha/llama3.1-8b", "beta/llama3.1-8b", "gamma/llama-3.3-70b"}

	whole := strings.ReplaceAll(blocks[0], "exporter:10429", address)
	shard := strings.ReplaceAll(blocks[1], "exporter:10429", address)
	if !strings.Contains(shard, `regex: "0"`) {
		t.Fatalf(`the README's hashmod config keeps no regex: "0":%s`, shard)
	}
	servers := map[string]*prometheusServer{
		"whole":   startPrometheusWith(t, prometheus, whole),
		"shard 0": startPrometheusWith(t, prometheus, shard),
		"shard 1": startPrometheusWith(t, prometheus, strings.Replace(shard, `regex: "0"`, `regex: "1"`, 1)),
	}
	// targetsUp lists the key/model of each up series of a server, sorted,
	// once each has been scraped at least three times.
	targetsUp := func(p *prometheusServer) ([]string, error) {
		up, err := p.query(t, `count_over_time(up{job="ratelimit"}[1m]) >= 3 and up == 1`)
		if err != nil {
			return nil, err
		}
		var got []string
		for _, s := range up {
			got = append(got, s.Metric["key"]+"/"+s.Metric["model"])
		}
		slices.Sort(got)
		return got, nil
	}
	eventually(t, 60*time.Second, "every target up and scraped three times by the whole server", func() error {
		got, err := targetsUp(servers["whole"])
		if err == nil && !slices.Equal(got, all) {
			err = fmt.Errorf("targets up: %v, want %v", got, all)
		}
		return err
	})
	eventually(t, 30*time.Second, "the shards split the targets", func() error {
		var shards [2][]string
		for i, name := range []string{"shard 0", "shard 1"} {
			var err error
			if shards[i], err = targetsUp(servers[name]); err != nil {
				return err
			}
		}
		union := slices.Sorted(slices.Values(append(slices.Clone(shards[0]), shards[1]...)))
		if len(shards[0]) == 0 || len(shards[1]) == 0 || !slices.Equal(union, all) {
			return fmt.Errorf("shards %v and %v, want each of %v in exactly one", shards[0], shards[1], all)
		}
		return nil
	})

	p := servers["whole"]
	remaining, err := p.query(t, `ratelimit_remaining{job="ratelimit",resource="requests",window="minute"}`)
	if err != nil {
		t.Fatal(err)
	}
	var withSeries []string
	for _, s := range remaining {
		withSeries = append(withSeries, s.Metric["key"]+"/"+s.Metric["model"])
		if s.Metric["key"] == "alpha" && s.Metric["team"] != "search" {
			t.Errorf("alpha's series lost its team label: %v", s.Metric)
		}
	}
	slices.Sort(withSeries)
	if !slices.Equal(withSeries, all) {
		t.Errorf("requests/minute remaining for %v, want one series for each of %v", withSeries, all)
	}
	for _, expr := range []string{`{exported_key!=""}`, `{exported_model!=""}`, `go_goroutines`, `{job="ratelimit",key=""}`} {
		if got, err := p.query(t, expr); err != nil || len(got) != 0 {
			t.Errorf("%s: %d series (%v), want none from /probe", expr, len(got), err)
		}
	}
	// /probe serves its target's series and no other's, and that is what
	// Prometheus took in.
	code, body := e.get(t, "/probe?key=beta&model=llama3.1-8b")
	samples := 0
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		samples++
		if !strings.Contains(line, `key="beta",model="llama3.1-8b",`) {
			t.Errorf("/probe?key=beta&model=llama3.1-8b served another target's sample: %s", line)
		}
	}
	if code != 200 || samples == 0 {
		t.Errorf("/probe?key=beta&model=llama3.1-8b: %d with %d samples", code, samples)
	}
	scraped, err := p.query(t, `scrape_samples_scraped{key="beta"} == `+fmt.Sprint(samples))
	if err != nil || len(scraped) != 1 {
		t.Errorf("scrape_samples_scraped of beta is not the %d samples of its /probe: %v %v", samples, scraped, err)
	}
	if code, body := e.get(t, "/probe?key=beta&model=gpt-4o"); code != 400 || !strings.HasPrefix(body, "parameter model:") {
		t.Errorf("/probe of a model beta does not have: %d %q", code, body)
	}
	// Three servers scraped each target three times or more, each scrape
	// within min_interval of the first: one probe per target.
	if got := sim.Requests(); got != len(all) {
		t.Errorf("the simulator had %d probes, want %d: one per target, shared by every scrape", got, len(all))
	}
}
