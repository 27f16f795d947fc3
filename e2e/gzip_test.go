package e2e

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// A real Prometheus asks for gzip and reads the body that the exporter
// joins from segments held compressed, blocks of targets family by family:
// every sample of 100 keys × 3 models arrives, and the member's checksum,
// combined from the segments', holds (Prometheus refuses a body whose
// checksum does not, and the target is down).
func TestPrometheusReadsTheJoinedGzipBody(t *testing.T) {
	withEachPrometheus(t, prometheusReadsGzip)
}

func prometheusReadsGzip(t *testing.T, prometheus string) {
	models := []string{"llama3.1-8b", "llama-3.3-70b", "qwen-3-32b"}
	sim := simulator.New(models...)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	var keys strings.Builder
	for i := range 100 {
		key := fmt.Sprintf("sk-test-gzip-%03d-4b1e", i)
		sim.AddKey(key, simulator.Limits{"requests": {"minute": 1000 + float64(i), "day": 1e6}, "tokens": {"minute": 1e6, "day": 1e8}})
		fmt.Fprintf(&keys, "  - {name: key-%03d, api_key: %s, base_url: '%s/v1', models: [%s]}\n", i, key, srv.URL, strings.Join(models, ", "))
	}
	// Scrape mode, probed once an hour at most: after the first scrape the
	// samples stay, so Prometheus's count and the text's can be compared.
	e := start(t, nil, "--config.file="+testkit.WriteConfig(t, "probe: {mode: scrape, min_interval: 1h, timeout: 5s}\nkeys:\n"+keys.String()))
	scrapes, target := recordScrapes(t, e.URL)
	prom := startPrometheusWith(t, prometheus, fmt.Sprintf(`scrape_configs:
  - job_name: gzip
    scrape_timeout: 1s
    static_configs:
      - targets: [%q]
`, target))

	var text string
	want := 0
	eventually(t, 60*time.Second, "every rate-limit sample in Prometheus", func() error {
		// Plain text, not gzip: the other way the body is written.
		_, text = e.get(t, "/metrics", "Accept-Encoding", "identity")
		want = 0
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "ratelimit_") {
				want++
			}
		}
		if n := strings.Count(text, "\nratelimit_probe_success{"); n != 300 {
			return fmt.Errorf("the exporter's text has %d targets, want 300", n)
		}
		got, err := prom.query(t, `count({__name__=~"ratelimit_.+", job="gzip"})`)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Value[1] != fmt.Sprint(want) {
			return fmt.Errorf("Prometheus has %v rate-limit samples, the text %d", got, want)
		}
		return nil
	})
	acceptEncoding, contentEncoding := scrapes.lastEncoding()
	if !strings.Contains(acceptEncoding, "gzip") || contentEncoding != "gzip" {
		t.Errorf("Prometheus asked for Accept-Encoding %q and was given Content-Encoding %q, want gzip both", acceptEncoding, contentEncoding)
	}
	const line = `ratelimit_limit{key="key-099",model="qwen-3-32b",provider="cerebras",resource="requests",window="minute"} 1099`
	if !strings.Contains(text, line+"\n") {
		t.Fatalf("the text lacks %s", line)
	}
	got, err := prom.query(t, `ratelimit_limit{job="gzip",key="key-099",model="qwen-3-32b",resource="requests",window="minute"}`)
	if err != nil || len(got) != 1 || got[0].Value[1] != "1099" {
		t.Errorf("Prometheus has %v (%v) for the last target's limit, want 1099", got, err)
	}
	t.Logf("%d rate-limit samples, %d bytes of text", want, len(text))
}
