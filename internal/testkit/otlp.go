package testkit

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// OTLPReceiver is an OTLP/HTTP metrics receiver on a loopback port that
// keeps every request it gets, decoded.
type OTLPReceiver struct {
	// URL is the base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it.
	URL string

	mu       sync.Mutex
	requests []OTLPRequest
	arrived  chan struct{}
}

// OTLPRequest is one push the receiver got.
type OTLPRequest struct {
	Path   string
	Header http.Header
	// Body is the request body, decompressed.
	Body    []byte
	Metrics *colmetricspb.ExportMetricsServiceRequest
}

// NewOTLPReceiver starts a receiver for the test's duration.
func NewOTLPReceiver(t *testing.T) *OTLPReceiver {
	t.Helper()
	r := &OTLPReceiver{arrived: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *OTLPReceiver) serve(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	metrics := &colmetricspb.ExportMetricsServiceRequest{}
	if err := proto.Unmarshal(raw, metrics); err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "not an OTLP/HTTP protobuf request", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.requests = append(r.requests, OTLPRequest{Path: req.URL.Path, Header: req.Header.Clone(), Body: raw, Metrics: metrics})
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	resp, _ := proto.Marshal(&colmetricspb.ExportMetricsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(resp)
}

// Requests returns the requests received so far.
func (r *OTLPReceiver) Requests() []OTLPRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// WaitFor returns the first request for which ok is true, waiting for new
// ones until timeout; then it returns false.
func (r *OTLPReceiver) WaitFor(timeout time.Duration, ok func(OTLPRequest) bool) (OTLPRequest, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		requests := r.Requests()
		for _, req := range requests[seen:] {
			if ok(req) {
				return req, true
			}
		}
		seen = len(requests)
		select {
		case <-r.arrived:
		case <-deadline.C:
			return OTLPRequest{}, false
		}
	}
}

// OTLPPoints returns the value of every gauge and sum data point whose
// metric name starts with prefix, by series written as SeriesKey writes
// it, the point's attributes as labels.
func OTLPPoints(req *colmetricspb.ExportMetricsServiceRequest, prefix string) map[string]float64 {
	points := map[string]float64{}
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if !strings.HasPrefix(m.GetName(), prefix) {
					continue
				}
				dps := m.GetGauge().GetDataPoints()
				if dps == nil {
					dps = m.GetSum().GetDataPoints()
				}
				for _, dp := range dps {
					labels := map[string]string{}
					for _, kv := range dp.GetAttributes() {
						labels[kv.GetKey()] = attributeString(kv.GetValue())
					}
					var v float64
					switch x := dp.GetValue().(type) {
					case *metricspb.NumberDataPoint_AsDouble:
						v = x.AsDouble
					case *metricspb.NumberDataPoint_AsInt:
						v = float64(x.AsInt)
					}
					points[SeriesKey(m.GetName(), labels)] = v
				}
			}
		}
	}
	return points
}

func attributeString(v *commonpb.AnyValue) string {
	if s, ok := v.GetValue().(*commonpb.AnyValue_StringValue); ok {
		return s.StringValue
	}
	return v.String()
}

// TextPoints returns the value of every gauge and counter sample in the
// exposition text whose name starts with prefix, as OTLPPoints does.
func TextPoints(t *testing.T, text, prefix string) map[string]float64 {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	points := map[string]float64{}
	for name, mf := range families {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			var v float64
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			default:
				v = m.GetUntyped().GetValue()
			}
			points[SeriesKey(name, labels)] = v
		}
	}
	return points
}

// SeriesKey writes a series as name{label="value",...}, labels sorted and
// those with an empty value left out, as Prometheus treats them.
func SeriesKey(name string, labels map[string]string) string {
	var b bytes.Buffer
	b.WriteString(name)
	b.WriteByte('{')
	names := make([]string, 0, len(labels))
	for n, v := range labels {
		if v != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n + "=" + strconv.Quote(labels[n]))
	}
	b.WriteByte('}')
	return b.String()
}
