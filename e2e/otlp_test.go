package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// otlpConfig probes the good key (api_key in the config) and the revoked
// one (in a file) once an hour: the series stay still between a scrape and
// the push that follows it.
func otlpConfig(t *testing.T, url string) string {
	t.Helper()
	return testkit.WriteConfig(t, fmt.Sprintf(`probe: {interval: 1h}
keys:
  - {name: good, api_key: %s, base_url: %s, models: [llama3.1-8b, llama-3.3-70b], labels: {team: search}}
  - {name: revoked, api_key_file: %s, base_url: %[2]s}
`, goodKey, url, revokedKeyFile(t)))
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, the binary pushes every series of
// /metrics, labels as attributes, with the headers of
// OTEL_EXPORTER_OTLP_HEADERS, and no key in any byte it sends.
func TestOTLPPushMatchesMetrics(t *testing.T) {
	_, url := startSimulator(t)
	receiver := testkit.NewOTLPReceiver(t)
	e := start(t, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + receiver.URL,
		"OTEL_EXPORTER_OTLP_HEADERS=x-scope-orgid=e2e-tenant",
		"OTEL_METRIC_EXPORT_INTERVAL=100",
		"OTEL_SERVICE_NAME=limits-e2e",
	}, "--config.file="+otlpConfig(t, url))
	metrics := e.waitFor(t,
		`ratelimit_probe_success{key="good",model="llama-3.3-70b",provider="cerebras",team="search"} 1`,
		`ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras",team="search"} 1`,
		`ratelimit_probe_status_code{key="revoked",model="llama3.1-8b",provider="cerebras"} 401`)
	want := rateLimitSeries(testkit.TextPoints(t, metrics, "ratelimit_"))

	// A push gathered after that scrape carries the same series; the
	// exporter's own counters (scrapes, say) may have moved, so they are
	// compared by name only.
	since := len(receiver.Requests())
	var got map[string]float64
	req, ok := receiver.WaitFor(10*time.Second, func(r testkit.OTLPRequest) bool {
		if since > 0 {
			since--
			return false
		}
		got = rateLimitSeries(testkit.OTLPPoints(r.Metrics, "ratelimit_"))
		return maps.Equal(got, want)
	})
	if !ok {
		t.Fatalf("no push in 10s with the series of /metrics; the last pushed:\n%v\nwant:\n%v", got, want)
	}
	if len(want) < 30 {
		t.Errorf("only %d series compared", len(want))
	}
	if req.Path != "/v1/metrics" || req.Header.Get("X-Scope-Orgid") != "e2e-tenant" {
		t.Errorf("pushed to %s with headers %v", req.Path, req.Header)
	}
	if !bytes.Contains(req.Body, []byte("limits-e2e")) {
		t.Error("OTEL_SERVICE_NAME is not in the resource")
	}
	for key, v := range testkit.OTLPPoints(req.Metrics, "ratelimit_exporter_") {
		if _, ok := testkit.TextPoints(t, metrics, "ratelimit_exporter_")[key]; !ok {
			t.Errorf("pushed %s %v, not in /metrics", key, v)
		}
	}

	requests := receiver.Requests()
	for _, r := range requests {
		var headers strings.Builder
		r.Header.Write(&headers)
		for _, key := range []string{goodKey, revokedKey} {
			if bytes.Contains(r.Body, []byte(key)) || strings.Contains(headers.String(), key) {
				t.Fatalf("a push carries the key %s", key)
			}
		}
	}
	t.Logf("%d pushes checked for keys; %d rate-limit series compared", len(requests), len(want))
}

// rateLimitSeries leaves out the exporter's own metrics.
func rateLimitSeries(points map[string]float64) map[string]float64 {
	maps.DeleteFunc(points, func(key string, _ float64) bool { return strings.HasPrefix(key, "ratelimit_exporter_") })
	return points
}

// SIGTERM pushes once more before the exit: an hourly push loses nothing.
func TestOTLPPushOnSIGTERM(t *testing.T) {
	_, url := startSimulator(t)
	receiver := testkit.NewOTLPReceiver(t)
	e := start(t, []string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=" + receiver.URL + "/otlp", "OTEL_METRIC_EXPORT_INTERVAL=3600000"},
		"--config.file="+otlpConfig(t, url))
	e.waitFor(t, `ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras",team="search"} 1`)
	if err := e.Stop(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	requests := receiver.Requests()
	if len(requests) != 1 || requests[0].Path != "/otlp" ||
		testkit.OTLPPoints(requests[0].Metrics, "ratelimit_probe_success")[`ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras",team="search"}`] != 1 {
		t.Fatalf("%d pushes after SIGTERM, want 1 to /otlp with the probe's success", len(requests))
	}
}

// A protocol the exporter does not speak stops the start with the reason.
func TestOTLPRefusesGRPC(t *testing.T) {
	code, out := runOnce(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"},
		"--config.file="+otlpConfig(t, "http://127.0.0.1:9/v1"), "--web.listen-address=127.0.0.1:0")
	if code != 1 || !strings.Contains(out, `msg="Error starting the OTLP push" err="OTEL_EXPORTER_OTLP_PROTOCOL is \"grpc\": only http/protobuf is supported (OTLP over HTTP)"`) {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// A collector that takes pushes and never answers delays no scrape, no
// probe and no health check.
func TestOTLPHangingEndpointBlocksNothing(t *testing.T) {
	_, url := startSimulator(t)
	reached := make(chan struct{}, 1)
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case reached <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hanging.Close()
	defer close(release)
	e := start(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + hanging.URL, "OTEL_METRIC_EXPORT_INTERVAL=50", "OTEL_EXPORTER_OTLP_TIMEOUT=60000"},
		"--config.file="+otlpConfig(t, url))
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("no push reached the endpoint")
	}
	for _, path := range []string{"/-/ready", "/-/healthy", "/metrics", "/probe?key=good&model=llama3.1-8b"} {
		began := time.Now()
		code, _ := e.get(t, path)
		if took := time.Since(began); code != http.StatusOK || took > 2*time.Second {
			t.Errorf("%s: %d in %v while a push hangs", path, code, took)
		}
	}
}
