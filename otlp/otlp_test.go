package otlp

import (
	"bytes"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

const canaryKey = "sk-test-canary-otlp-unit-6d0b"

// sources returns a registry of the exporter's own metrics and readings
// of one key, and the text /metrics would serve of them.
func sources(t *testing.T) (*prometheus.Registry, *collector.Collector, string) {
	t.Helper()
	registry := prometheus.NewPedanticRegistry()
	reloads := prometheus.NewCounter(prometheus.CounterOpts{Name: "ratelimit_exporter_test_reloads_total", Help: "Test counter."})
	reloads.Add(3)
	registry.MustRegister(reloads)

	cfg := &config.Config{Keys: []config.Key{{Name: "prod", Provider: "cerebras", APIKey: canaryKey, Models: []string{"m1", "m2"}, Labels: map[string]string{"team": "search"}}}}
	readings := collector.New()
	readings.Apply(cfg)
	for i, target := range cfg.Targets() {
		readings.Record(target.ID(), &prober.Result{Reading: ratelimit.Reading{Time: time.Unix(1795000000, 0), StatusCode: 200, Observations: []ratelimit.Observation{
			{Kind: ratelimit.Limit, Resource: "requests", Window: "minute", Value: 100},
			{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: float64(90 - i)},
			{Kind: ratelimit.Reset, Resource: "requests", Window: "minute", Value: 12.5},
		}}, Duration: time.Second, Outcome: prober.Success})
	}

	var text bytes.Buffer
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	if err := readings.WriteText(&text, nil); err != nil {
		t.Fatal(err)
	}
	return registry, readings, text.String()
}

func setPushEnv(t *testing.T, endpoint string, more ...string) {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
	for i := 0; i+1 < len(more); i += 2 {
		t.Setenv(more[i], more[i+1])
	}
}

func start(t *testing.T, o Options) *Pusher {
	t.Helper()
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	p, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		t.Fatal("Start pushes nothing")
	}
	return p
}

// Every series of /metrics is pushed, labels as attributes, with its value;
// the resource names the service as the standard variables say, and the
// request goes gzipped to /v1/metrics with the configured headers.
func TestPushesWhatMetricsServes(t *testing.T) {
	receiver := testkit.NewOTLPReceiver(t)
	setPushEnv(t, receiver.URL,
		"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip",
		"OTEL_EXPORTER_OTLP_HEADERS", "x-scope-orgid=tenant-1,authorization=Bearer%20t0ken",
		"OTEL_SERVICE_NAME", "limits-eu",
		"OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
	registry, readings, text := sources(t)
	p := start(t, Options{Registry: registry, Readings: readings, Version: "1.2.3"})
	defer p.Stop(time.Second)

	want := testkit.TextPoints(t, text, "ratelimit_")
	if len(want) < 10 {
		t.Fatalf("only %d series to compare:\n%s", len(want), text)
	}
	req, ok := receiver.WaitFor(10*time.Second, func(r testkit.OTLPRequest) bool {
		return len(testkit.OTLPPoints(r.Metrics, "ratelimit_")) > 0
	})
	if !ok {
		t.Fatal("no push in 10s")
	}
	if got := testkit.OTLPPoints(req.Metrics, "ratelimit_"); !maps.Equal(got, want) {
		t.Errorf("pushed series:\n%v\nwant, from /metrics:\n%v", got, want)
	}
	if req.Path != "/v1/metrics" || req.Header.Get("Content-Encoding") != "gzip" ||
		req.Header.Get("X-Scope-Orgid") != "tenant-1" || req.Header.Get("Authorization") != "Bearer t0ken" {
		t.Errorf("path %s, headers %v", req.Path, req.Header)
	}
	resource := map[string]string{}
	for _, kv := range req.Metrics.GetResourceMetrics()[0].GetResource().GetAttributes() {
		resource[kv.GetKey()] = kv.GetValue().GetValue().(*commonpb.AnyValue_StringValue).StringValue
	}
	if resource["service.name"] != "limits-eu" || resource["service.version"] != "1.2.3" || resource["deployment.environment.name"] != "test" {
		t.Errorf("resource: %v", resource)
	}
	if bytes.Contains(req.Body, []byte(canaryKey)) {
		t.Error("the key was pushed")
	}
}

// Stop pushes what the last interval had not yet pushed.
func TestStopPushesOnceMore(t *testing.T) {
	receiver := testkit.NewOTLPReceiver(t)
	setPushEnv(t, receiver.URL, "OTEL_METRIC_EXPORT_INTERVAL", "3600000")
	registry, readings, _ := sources(t)
	p := start(t, Options{Registry: registry, Readings: readings})
	p.Stop(5 * time.Second)
	if n := len(receiver.Requests()); n != 1 {
		t.Fatalf("%d pushes, want the one of Stop", n)
	}
}

// refusing starts an endpoint that answers every push with status and
// says on the channel returned when it has had n.
func refusing(t *testing.T, status, n int) (string, <-chan struct{}) {
	t.Helper()
	reached := make(chan struct{})
	var count atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) == int32(n) {
			close(reached)
		}
		http.Error(w, "refused", status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, reached
}

func waitOrFail(t *testing.T, reached <-chan struct{}) {
	t.Helper()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the endpoint was not reached")
	}
}

// An endpoint that refuses every push gets its errors logged once, not at
// every push.
func TestFailingEndpointLogsOnce(t *testing.T) {
	url, reached := refusing(t, http.StatusBadRequest, 5)
	setPushEnv(t, url, "OTEL_METRIC_EXPORT_INTERVAL", "10")
	registry, readings, _ := sources(t)
	var logs testkit.SyncBuffer
	p := start(t, Options{Registry: registry, Readings: readings, Logger: log.NewLogfmtLogger(&logs)})
	waitOrFail(t, reached)
	p.Stop(time.Second)
	if n := strings.Count(logs.String(), "level=error"); n != 1 {
		t.Errorf("%d errors logged, want 1:\n%s", n, logs.String())
	}
}

// An endpoint that answers with a large body, as a web server that is not
// a collector may, gets a log line of a bounded size: the SDK's error holds
// up to 4 MiB of the body.
func TestFailingEndpointsBodyIsCut(t *testing.T) {
	reached := make(chan struct{})
	var count atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<html>" + strings.Repeat("not a collector\x1b[31m ", 50000)))
		if count.Add(1) == 2 {
			close(reached)
		}
	}))
	t.Cleanup(srv.Close)
	setPushEnv(t, srv.URL, "OTEL_METRIC_EXPORT_INTERVAL", "10")
	registry, readings, _ := sources(t)
	var logs testkit.SyncBuffer
	p := start(t, Options{Registry: registry, Readings: readings, Logger: log.NewLogfmtLogger(&logs)})
	waitOrFail(t, reached)
	p.Stop(time.Second)
	out := logs.String()
	if !strings.Contains(out, "404 Not Found (body: <html>not a collector") || !strings.Contains(out, "bytes left out") || len(out) > 4<<10 {
		t.Errorf("%d bytes logged, want the start of the body and a bound:\n%.2000s", len(out), out)
	}
}

// A push that an endpoint keeps retrying costs Stop no more than its grace.
func TestStopGivesUpAfterGrace(t *testing.T) {
	url, reached := refusing(t, http.StatusServiceUnavailable, 1)
	setPushEnv(t, url, "OTEL_METRIC_EXPORT_INTERVAL", "10", "OTEL_EXPORTER_OTLP_TIMEOUT", "60000")
	registry, readings, _ := sources(t)
	p := start(t, Options{Registry: registry, Readings: readings})
	waitOrFail(t, reached)
	began := time.Now()
	p.Stop(200 * time.Millisecond)
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Stop took %v with a grace of 200ms", took)
	}
}

// --otlp.endpoint is used as is, and wins over the variables.
func TestFlagEndpointWins(t *testing.T) {
	receiver := testkit.NewOTLPReceiver(t)
	setPushEnv(t, "http://127.0.0.1:1")
	registry, readings, _ := sources(t)
	p := start(t, Options{Endpoint: receiver.URL + "/custom/path", Registry: registry, Readings: readings})
	defer p.Stop(time.Second)
	if req, ok := receiver.WaitFor(10*time.Second, func(testkit.OTLPRequest) bool { return true }); !ok || req.Path != "/custom/path" {
		t.Fatalf("pushed: %v, to %q", ok, req.Path)
	}
}

// collectFails is the collector that a push must not collect: Collect
// holds the lock that each probe's Record needs while the gatherer takes
// every series (measured: Record waited up to 640ms behind a gather of
// 1,000 keys × 3 models), where the rendered text is taken in microseconds.
type collectFails struct {
	*collector.Collector
	t *testing.T
}

func (c collectFails) Collect(chan<- prometheus.Metric) {
	c.t.Error("a push collected the readings series by series")
}

// A push gathers the readings from the text /metrics serves, the same
// series, and never through Collect.
func TestGatherReadsTheText(t *testing.T) {
	registry, readings, text := sources(t)
	families, err := Gatherer(registry, collectFails{readings, t}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var gathered bytes.Buffer
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&gathered, mf); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := testkit.TextPoints(t, gathered.String(), "ratelimit_"), testkit.TextPoints(t, text, "ratelimit_"); !maps.Equal(got, want) {
		t.Errorf("gathered:\n%v\nwant, from /metrics:\n%v", got, want)
	}
}
