// Package otlp pushes the metrics that /metrics serves to an OpenTelemetry
// collector over OTLP/HTTP, when an endpoint is given. Most settings are
// the standard OTEL_* environment variables, which the OpenTelemetry SDK
// reads itself; this package checks the ones it can get wrong silently.
package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	prombridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// ServiceName is the service.name of the pushed resource unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names another.
const ServiceName = "ratelimit_exporter"

// errorLogInterval is the least time between two logged push errors: a
// collector that is down fails every push.
const errorLogInterval = time.Minute

// Options are what Start needs.
type Options struct {
	// Endpoint is the URL to push to, used as is (--otlp.endpoint). Empty:
	// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT
	// with /v1/metrics appended; neither set: no push.
	Endpoint string
	// Registry holds the exporter's own metrics.
	Registry prometheus.Gatherer
	// Readings writes the rate-limit metrics, which are not registered in
	// Registry because /metrics writes the text the collector holds.
	Readings Readings
	// Version is the exporter's version, service.version of the resource.
	Version string
	Logger  log.Logger
}

// Readings writes the text of the rate-limit metrics that /metrics serves.
// A push reads that text rather than collecting the metrics one by one:
// collector.Collect holds the lock that each probe's result and the
// scrapes behind it need for as long as the gatherer takes every series,
// half a second at 1,000 keys × 3 models; the text is taken in
// microseconds.
type Readings interface {
	WriteText(w io.Writer, sized func(int)) error
}

// Pusher pushes the metrics periodically until stopped.
type Pusher struct {
	provider *sdkmetric.MeterProvider
	logger   log.Logger
}

// Enabled reports whether metrics are to be pushed: an endpoint is given
// by flag or by the environment, and OTEL_SDK_DISABLED is not true.
func Enabled(endpoint string) bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	return endpoint != "" || env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// Start starts pushing every OTEL_METRIC_EXPORT_INTERVAL (default 60s).
// It returns a nil Pusher, and no error, when not Enabled. A push that
// fails is logged, at most once a minute, and never delays a scrape.
func Start(o Options) (*Pusher, error) {
	if !Enabled(o.Endpoint) {
		return nil, nil
	}
	if err := checkEnv(o.Endpoint); err != nil {
		return nil, err
	}
	errorLog := newErrorLog(o.Logger, clockwork.NewRealClock(), errorLogInterval)
	// The SDK reports push errors, and bad OTEL_* values, to these globals.
	otel.SetErrorHandler(errorLog)
	otel.SetLogger(newLogr(o.Logger, errorLog))

	gatherer := Gatherer(o.Registry, o.Readings)
	var opts []otlpmetrichttp.Option
	if o.Endpoint != "" {
		opts = append(opts, otlpmetrichttp.WithEndpointURL(o.Endpoint))
	}
	ctx := context.Background()
	exporter, err := otlpmetrichttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	// Later detectors win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the defaults set here.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", ServiceName), attribute.String("service.version", o.Version)),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("OTLP resource from OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	reader := sdkmetric.NewPeriodicReader(exporter, sdkmetric.WithProducer(prombridge.NewMetricProducer(prombridge.WithGatherer(gatherer))))
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
	level.Info(o.Logger).Log("msg", "Pushing metrics with OTLP/HTTP", "endpoint", describeEndpoint(o.Endpoint))
	return &Pusher{provider: provider, logger: o.Logger}, nil
}

// Stop pushes the metrics one last time and stops, giving up after grace.
// A nil Pusher does nothing.
func (p *Pusher) Stop(grace time.Duration) {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := p.provider.Shutdown(ctx); err != nil {
		level.Warn(p.logger).Log("msg", "Last OTLP push failed", "err", cut(err.Error()))
	}
}

// Gatherer returns what a push gathers: the registry's metrics and the
// readings', parsed from their text.
func Gatherer(registry prometheus.Gatherer, readings Readings) prometheus.Gatherer {
	return prometheus.Gatherers{registry, prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var text bytes.Buffer
		if err := readings.WriteText(&text, text.Grow); err != nil {
			return nil, fmt.Errorf("writing the rate-limit metrics: %w", err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		byName, err := parser.TextToMetricFamilies(&text)
		if err != nil {
			return nil, fmt.Errorf("reading the rate-limit metrics' text: %w", err)
		}
		return slices.Collect(maps.Values(byName)), nil
	})}
}

func env(name string) string { return strings.TrimSpace(os.Getenv(name)) }

// checkEnv returns an error for a setting the SDK would ignore, or log and
// ignore, at every push. It names the variable but never echoes a header
// or an endpoint: either may hold a credential. The variables are the
// specification's: https://opentelemetry.io/docs/specs/otel/protocol/exporter/
func checkEnv(endpoint string) error {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := env(name); v != "" {
			if v != "http/protobuf" {
				return fmt.Errorf("%s is %q: only http/protobuf is supported (OTLP over HTTP)", name, v)
			}
			break
		}
	}
	if endpoint != "" {
		if err := checkURL(endpoint); err != nil {
			return fmt.Errorf("--otlp.endpoint: %w", err)
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := env(name); v != "" {
			if err := checkURL(v); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"} {
		if err := checkHeaders(env(name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"} {
		if v := env(name); v != "" && v != "gzip" && v != "none" {
			return fmt.Errorf("%s is %q: want gzip or none", name, v)
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT"} {
		if v := env(name); v != "" {
			if ms, err := strconv.Atoi(v); err != nil || ms <= 0 {
				return fmt.Errorf("%s is %q: want a whole number of milliseconds above 0", name, v)
			}
		}
	}
	return nil
}

func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an http:// or https:// URL with a host")
	}
	return nil
}

// checkHeaders checks the W3C Baggage-like list the SDK parses:
// key=value pairs, comma separated, values URL-encoded.
func checkHeaders(v string) error {
	if v == "" {
		return nil
	}
	for i, pair := range strings.Split(v, ",") {
		name, value, ok := strings.Cut(pair, "=")
		if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(strings.TrimSpace(name), " \t\"(),/:;<=>?@[\\]{}") {
			return fmt.Errorf("header %d is not name=value", i+1)
		}
		if _, err := url.PathUnescape(value); err != nil {
			return fmt.Errorf("header %d (%s): the value is not URL-encoded", i+1, strings.TrimSpace(name))
		}
	}
	return nil
}

// describeEndpoint is where the push goes, for the log, without a password.
func describeEndpoint(endpoint string) string {
	raw := endpoint
	if raw == "" {
		raw = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
	}
	if raw == "" {
		raw = strings.TrimSuffix(env("OTEL_EXPORTER_OTLP_ENDPOINT"), "/") + "/v1/metrics"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Redacted()
}
