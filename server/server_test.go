package server

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
)

func TestScrapeTimeout(t *testing.T) {
	for _, tc := range []struct {
		header string
		offset time.Duration
		want   time.Duration
		ok     bool
	}{
		{"", 500 * time.Millisecond, 0, false},
		{"10", 500 * time.Millisecond, 9500 * time.Millisecond, true},
		{"2.5", 500 * time.Millisecond, 2 * time.Second, true},
		{"0.4", 500 * time.Millisecond, 400 * time.Millisecond, true}, // the offset would leave nothing
		{"10", 0, 10 * time.Second, true},
		{"0", 500 * time.Millisecond, 0, false},
		{"-3", 500 * time.Millisecond, 0, false},
		{"soon", 500 * time.Millisecond, 0, false},
		{"NaN", 500 * time.Millisecond, 0, false},
		{"1e300", 500 * time.Millisecond, 0, false},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if tc.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		got, ok := ScrapeTimeout(r, tc.offset)
		if got != tc.want || ok != tc.ok {
			t.Errorf("header %q offset %s: got %s %v, want %s %v", tc.header, tc.offset, got, ok, tc.want, tc.ok)
		}
	}
}

type fixedText string

func (f fixedText) WriteText(w io.Writer, sized func(int)) error {
	sized(len(f))
	_, err := io.WriteString(w, string(f))
	return err
}

func TestMetricsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "own_metric", Help: "An own metric."})
	g.Set(3)
	reg.MustRegister(g)
	const observations = "# HELP ratelimit_limit L.\n# TYPE ratelimit_limit gauge\nratelimit_limit{key=\"k\"} 5\n"
	const want = "# HELP own_metric An own metric.\n# TYPE own_metric gauge\nown_metric 3\n" + observations
	h := metricsHandler(reg, fixedText(observations), log.NewNopLogger())

	plain := httptest.NewRecorder()
	h.ServeHTTP(plain, httptest.NewRequest("GET", "/metrics", nil))
	if plain.Body.String() != want || plain.Header().Get("Content-Length") != strconv.Itoa(len(want)) ||
		plain.Header().Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("plain: %v\n%s", plain.Header(), plain.Body)
	}

	zipped := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "deflate, gzip;q=0.8")
	h.ServeHTTP(zipped, req)
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	if string(body) != want || zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Header().Get("Content-Length") != "" {
		t.Errorf("gzip: %v\n%s", zipped.Header(), body)
	}

	refused := httptest.NewRecorder()
	req = httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip;q=0")
	h.ServeHTTP(refused, req)
	if refused.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 got gzip")
	}
}

func TestLimitRequests(t *testing.T) {
	release := make(chan struct{})
	h := limitRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }), 1)
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	second := httptest.NewRecorder()
	h.ServeHTTP(second, httptest.NewRequest("GET", "/metrics", nil))
	close(release)
	<-done
	if second.Code != 503 || second.Body.String() != "Too many concurrent scrapes (--web.max-requests=1)\n" {
		t.Errorf("second request: %d %q", second.Code, second.Body)
	}
}
