package server

import (
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
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

// WriteTargetText writes f with the target's names in front.
func (f fixedText) WriteTargetText(w io.Writer, id config.TargetID, sized func(int)) error {
	return fixedText("# "+id.Key+"/"+id.Model+"\n"+string(f)).WriteText(w, sized)
}

func TestMetricsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "own_metric", Help: "An own metric."})
	g.Set(3)
	reg.MustRegister(g)
	const observations = "# HELP ratelimit_limit L.\n# TYPE ratelimit_limit gauge\nratelimit_limit{key=\"k\"} 5\n"
	const want = "# HELP own_metric An own metric.\n# TYPE own_metric gauge\nown_metric 3\n" + observations
	h := metricsHandler(reg, fixedText(observations), time.Minute, log.NewNopLogger())

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

// /metrics and /probe share one bound.
func TestLimitRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	limit := requestLimit(1)
	h := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	other := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		close(done)
	}()
	defer func() {
		close(release)
		<-done
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not reach the handler within 10s")
	}
	second := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		other.ServeHTTP(rec, httptest.NewRequest("GET", "/probe", nil))
		second <- rec
	}()
	select {
	case rec := <-second:
		if rec.Code != 503 || rec.Body.String() != "Too many concurrent scrapes (--web.max-requests=1)\n" {
			t.Errorf("second request: %d %q", rec.Code, rec.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second request waited for the first instead of being refused")
	}
}

func TestCheckMetricsPath(t *testing.T) {
	for path, want := range map[string]string{
		"/metrics":                "",
		"/":                       "",
		"/probe/metrics":          "",
		"/metrics/":               "",
		"metrics":                 `--web.telemetry-path "metrics" must start with /`,
		"":                        `--web.telemetry-path "" must start with /`,
		"/-/healthy":              `--web.telemetry-path "/-/healthy" clashes with the endpoint /-/healthy`,
		"/-/reload":               `--web.telemetry-path "/-/reload" clashes with the endpoint /-/reload`,
		"/-/":                     `--web.telemetry-path "/-/" clashes with the endpoint /-/healthy`,
		"/grafana/dashboard.json": `--web.telemetry-path "/grafana/dashboard.json" clashes with the endpoint /grafana/dashboard.json`,
		"/probe":                  `--web.telemetry-path "/probe" clashes with the endpoint /probe`,
		"/sd":                     `--web.telemetry-path "/sd" clashes with the endpoint /sd`,
		"/{x}":                    `--web.telemetry-path "/{x}" must be a plain path: no {, }, ?, #, %, spaces or control characters`,
		"/metrics?x=1":            `--web.telemetry-path "/metrics?x=1" must be a plain path: no {, }, ?, #, %, spaces or control characters`,
		"/me trics":               `--web.telemetry-path "/me trics" must be a plain path: no {, }, ?, #, %, spaces or control characters`,
		"//metrics":               `--web.telemetry-path "//metrics" must be a clean path: no //, . or .. segments`,
		"/./":                     `--web.telemetry-path "/./" must be a clean path: no //, . or .. segments`,
		"/../x":                   `--web.telemetry-path "/../x" must be a clean path: no //, . or .. segments`,
		"/metrics/..":             `--web.telemetry-path "/metrics/.." must be a clean path: no //, . or .. segments`,
		"//":                      `--web.telemetry-path "//" must be a clean path: no //, . or .. segments`,
		"/metrics\x00":            `--web.telemetry-path "/metrics\x00" must be a plain path: no {, }, ?, #, %, spaces or control characters`,
	} {
		err := CheckMetricsPath(path)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", path, got, want)
		}
		if want != "" {
			continue
		}
		// A path that passes must make a working mux: no panic, metrics served there.
		h, err := Handler(Options{MetricsPath: path, Registry: prometheus.NewRegistry(), Observations: fixedText(""),
			Reload: func() error { return nil }, Ready: func() bool { return true }, Logger: log.NewNopLogger()})
		if err != nil {
			t.Errorf("%q: %v", path, err)
			continue
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
			t.Errorf("%q: GET answered %d %s, want the metrics", path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}

// A client that never reads is cut off at the write deadline: it holds its
// own handler, and nothing else, until then.
func TestMetricsWriteDeadline(t *testing.T) {
	big := fixedText(strings.Repeat("ratelimit_limit{key=\"k\"} 5\n", 1<<20)) // 26 MB: more than any socket buffer
	h := metricsHandler(prometheus.NewRegistry(), big, 200*time.Millisecond, log.NewNopLogger())
	served := make(chan time.Duration, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		served <- time.Since(start)
	}))
	srv.Start()
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4096)
	}
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-served:
		if d > 5*time.Second {
			t.Errorf("the handler returned after %s, want about the 200ms write timeout", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a client that does not read held its handler for 20s: no write deadline")
	}
}
