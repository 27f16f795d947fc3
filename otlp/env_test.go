package otlp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// No endpoint, or the SDK disabled: no push, and nothing checked.
func TestNoPushWithoutEndpoint(t *testing.T) {
	for name, env := range map[string][]string{
		"nothing set":       nil,
		"only other values": {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_SERVICE_NAME", "x"},
		"disabled":          {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_SDK_DISABLED", "true"},
	} {
		t.Run(name, func(t *testing.T) {
			for i := 0; i+1 < len(env); i += 2 {
				t.Setenv(env[i], env[i+1])
			}
			p, err := Start(Options{Logger: log.NewNopLogger()})
			if p != nil || err != nil {
				t.Errorf("Start: %v, %v; want no push", p, err)
			}
			p.Stop(time.Second) // a nil Pusher stops too
		})
	}
}

// A setting the SDK would ignore, or log at every push, stops the start;
// the error names the variable and never echoes a header or an endpoint.
func TestBadSettings(t *testing.T) {
	const secret = "s3cr3t-canary"
	for _, tc := range []struct {
		flag string
		env  []string
		want string
	}{
		{env: []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
			want: `OTEL_EXPORTER_OTLP_PROTOCOL is "grpc": only http/protobuf is supported (OTLP over HTTP)`},
		{env: []string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
			want: `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL is "http/json": only http/protobuf is supported (OTLP over HTTP)`},
		{flag: "collector:4318/" + secret,
			want: `--otlp.endpoint: not an http:// or https:// URL with a host`},
		{env: []string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "grpc://" + secret + "@collector:4317"},
			want: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: not an http:// or https:// URL with a host`},
		{env: []string{"OTEL_EXPORTER_OTLP_HEADERS", "x-org=1,Authorization: Bearer " + secret},
			want: `OTEL_EXPORTER_OTLP_HEADERS: header 2 is not name=value`},
		{env: []string{"OTEL_EXPORTER_OTLP_HEADERS", "x-org=1,Authorization: Bearer=" + secret},
			want: `OTEL_EXPORTER_OTLP_HEADERS: header 2 is not name=value`},
		{env: []string{"OTEL_EXPORTER_OTLP_METRICS_HEADERS", "authorization=Bearer %" + secret},
			want: `OTEL_EXPORTER_OTLP_METRICS_HEADERS: header 1 (authorization): the value is not URL-encoded`},
		{env: []string{"OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"},
			want: `OTEL_EXPORTER_OTLP_COMPRESSION is "zstd": want gzip or none`},
		{env: []string{"OTEL_METRIC_EXPORT_INTERVAL", "10s"},
			want: `OTEL_METRIC_EXPORT_INTERVAL is "10s": want a whole number of milliseconds above 0`},
		{env: []string{"OTEL_EXPORTER_OTLP_TIMEOUT", "0"},
			want: `OTEL_EXPORTER_OTLP_TIMEOUT is "0": want a whole number of milliseconds above 0`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if tc.flag == "" {
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			}
			for i := 0; i+1 < len(tc.env); i += 2 {
				t.Setenv(tc.env[i], tc.env[i+1])
			}
			p, err := Start(Options{Endpoint: tc.flag, Registry: prometheus.NewRegistry(), Readings: collector.New(), Logger: log.NewNopLogger()})
			defer p.Stop(time.Second)
			if p != nil || err == nil || err.Error() != tc.want {
				t.Fatalf("Start: %v, %v\nwant error: %s", p, err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Error("the error echoes the value")
			}
		})
	}
}

// The metrics-specific protocol wins over the general one.
func TestMetricsProtocolWins(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf")
	if err := checkEnv(""); err != nil {
		t.Fatal(err)
	}
}

func TestErrorLogAtMostOncePerInterval(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	l := newErrorLog(log.NewLogfmtLogger(&out), clock, time.Minute)
	lines := func() int { return strings.Count(out.String(), "\n") }

	l.Handle(errors.New("first")) // logged
	l.Handle(errors.New("second"))
	clock.Advance(59 * time.Second)
	l.Handle(errors.New("third")) // still within the minute
	if lines() != 1 || !strings.Contains(out.String(), "err=first errors_not_logged=0") {
		t.Fatalf("after a minute:\n%s", out.String())
	}
	clock.Advance(time.Second)
	l.Handle(errors.New("fourth")) // a minute after the first: logged, with the two left out
	if lines() != 2 || !strings.Contains(out.String(), "err=fourth errors_not_logged=2") {
		t.Fatalf("a minute later:\n%s", out.String())
	}
}

// The SDK's own log lines lose their key-value pairs, which may hold a
// header's value.
func TestSDKLogDropsValues(t *testing.T) {
	var out bytes.Buffer
	logger := log.NewLogfmtLogger(&out)
	sdk := newLogr(logger, newErrorLog(logger, clockwork.NewFakeClock(), time.Minute))
	sdk.Error(errors.New("missing '="), "parse headers", "input", "Authorization: Bearer s3cr3t")
	sdk.V(1).Info("invalid value, ignoring", "value", "s3cr3t")
	sdk.V(4).Info("exporting", "value", "s3cr3t")
	want := `level=error msg="OTLP push" err="parse headers: missing '=" errors_not_logged=0 next_log_after=1m0s
level=warn msg="OpenTelemetry SDK: invalid value, ignoring"
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

// The start's log says where the push goes, without the endpoint's password.
func TestStartLogHidesThePassword(t *testing.T) {
	const secret = "s3cr3t-canary"
	for name, tc := range map[string]struct{ flag, env, want string }{
		"flag":     {flag: "http://tenant:" + secret + "@127.0.0.1:1/v1/metrics", want: "endpoint=http://tenant:xxxxx@127.0.0.1:1/v1/metrics"},
		"variable": {env: "https://tenant:" + secret + "@127.0.0.1:1/", want: "endpoint=https://tenant:xxxxx@127.0.0.1:1/v1/metrics"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.env)
			var logs testkit.SyncBuffer
			p, err := Start(Options{Endpoint: tc.flag, Registry: prometheus.NewRegistry(), Readings: collector.New(), Logger: log.NewLogfmtLogger(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			p.Stop(time.Second)
			if !strings.Contains(logs.String(), tc.want) || strings.Contains(logs.String(), secret) {
				t.Errorf("log:\n%s\nwant %s and no password", logs.String(), tc.want)
			}
		})
	}
}
