package server

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/gzipjoin"
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
		got, ok := scrapeTimeout(r, tc.offset)
		if got != tc.want || ok != tc.ok {
			t.Errorf("header %q offset %s: got %s %v, want %s %v", tc.header, tc.offset, got, ok, tc.want, tc.ok)
		}
	}
}

type fixedText string

func (f fixedText) AppendBody(b gzipjoin.Body) gzipjoin.Body {
	return append(b, gzipjoin.Text([]byte(f)))
}

// AppendTargetBody appends f with the target's names in front.
func (f fixedText) AppendTargetBody(b gzipjoin.Body, id config.TargetID) gzipjoin.Body {
	return fixedText("# " + id.Key + "/" + id.Model + "\n" + string(f)).AppendBody(b)
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
	zr, err := gzip.NewReader(bytes.NewReader(zipped.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	if string(body) != want || zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Header().Get("Content-Length") != strconv.Itoa(zipped.Body.Len()) {
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

// /metrics and /probe share one bound on scrapes that refresh or gather,
// and one on scrapes in flight to a client address. A scrape that has
// given its slot back, as it does to write, keeps only the second.
func TestLimitRequests(t *testing.T) {
	entered, write, released, finish := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refused"}, []string{"reason"})
	limit := requestLimit(1, refused)
	h := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-write
		releaseSlot(r)
		close(released)
		<-finish
	}))
	other := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	ask := func(from string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/probe", nil)
		req.RemoteAddr = from
		other.ServeHTTP(rec, req)
		return rec
	}
	const (
		global     = "Too many concurrent scrapes (--web.max-requests=1)\n"
		perAddress = "Too many scrapes from this address at once, counting answers it has not read (--web.max-requests=1)\n"
	)
	check := func(when, from string, code int, body string) {
		t.Helper()
		if rec := ask(from); rec.Code != code || code != 200 && rec.Body.String() != body {
			t.Errorf("%s, from %s: %d %q, want %d %q", when, from, rec.Code, rec.Body, code, body)
		}
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = "192.0.2.1:1000"
		h.ServeHTTP(httptest.NewRecorder(), req)
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not reach the handler within 10s")
	}
	check("while the first gathers", "192.0.2.2:1000", 503, global)
	check("while the first gathers", "192.0.2.1:1001", 503, perAddress)
	close(write)
	<-released
	check("while the first writes", "192.0.2.2:1000", 200, "")
	check("while the first writes", "192.0.2.1:1001", 503, perAddress)
	close(finish)
	<-done
	check("once the first is answered", "192.0.2.1:1001", 200, "")
	if global, perAddress := testutil.ToFloat64(refused.WithLabelValues("max_requests")), testutil.ToFloat64(refused.WithLabelValues("per_address")); global != 1 || perAddress != 2 {
		t.Errorf("refusals counted: %g max_requests, %g per_address; want 1 and 2", global, perAddress)
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

// smallSendBuffers gives the connections it accepts from 127.0.0.1 small
// send buffers, so that a client there that does not read soon blocks the
// server's writes; other addresses keep fast ones.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tcp, ok := c.(*net.TCPConn); ok && tcp.RemoteAddr().(*net.TCPAddr).IP.Equal(net.IPv4(127, 0, 0, 1)) {
		_ = tcp.SetWriteBuffer(4096)
	}
	return c, err
}

// Clients that never read keep no scrape from another address waiting:
// while --web.max-requests of them hang in their writes, plain or gzipped,
// /metrics and /probe answer another address; only theirs is refused more.
func TestStalledClientsStarveNoOtherAddress(t *testing.T) {
	const maxRequests = 40
	// Far larger than the sockets' buffers, which are kept small, even
	// gzipped: a client that does not read leaves the write blocked.
	random := make([]byte, 256<<10)
	_, _ = rand.NewChaCha8([32]byte{}).Read(random)
	text := base64.StdEncoding.EncodeToString(random)

	// Sent when a response's body starts to be written: nothing but
	// writing is left.
	writing := make(chan string, maxRequests+10)
	var stalledAnswered atomic.Int64
	h, err := Handler(Options{
		MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText(text),
		MaxRequests: maxRequests, Targets: testTargets, WriteTimeout: time.Minute,
		Ready: func() bool { return true }, Logger: log.NewNopLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Stalled") == "" {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&announcedWrites{ResponseWriter: w, writing: writing, path: r.URL.Path}, r)
		{ // answered in full
			stalledAnswered.Add(1)
		}
	}))
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	defer func() {
		srv.CloseClientConnections() // ends the stalled writes
		srv.Close()
	}()

	stalled := stalledDialer()
	for i := range maxRequests {
		conn, err := stalled.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		encoding := "identity"
		if i%8 == 0 {
			encoding = "gzip"
		}
		if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Stalled: 1\r\nAccept-Encoding: "+encoding+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range maxRequests {
		select {
		case <-writing:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d stalled scrapes reached their write within 30s", i, maxRequests)
		}
	}

	other := otherAddressClient()
	defer other.CloseIdleConnections()
	for _, path := range []string{"/metrics", "/probe?key=router"} {
		resp, err := other.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.HasSuffix(string(body), text) {
			t.Errorf("%s from another address beside %d stalled clients: %d %v, %d bytes", path, maxRequests, resp.StatusCode, err, len(body))
			if len(body) < 200 {
				t.Logf("%q", body)
			}
		}
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("Too many scrapes from this address at once, counting answers it has not read (--web.max-requests=%d)\n", maxRequests); resp.StatusCode != 503 || string(body) != want {
		t.Errorf("/metrics from the stalled clients' address: %d %q, want 503 %q", resp.StatusCode, body, want)
	}
	if n := stalledAnswered.Load(); n > 0 {
		t.Fatalf("%d stalled scrapes were answered in full: the text is too small to stall them", n)
	}
}

// gzip is taken unless a client gives it q=0, however it spells zero.
func TestGzipAccepted(t *testing.T) {
	for header, want := range map[string]bool{
		"":                        false,
		"gzip":                    true,
		"GZIP":                    true,
		"deflate, gzip;q=0.8":     true,
		"gzip;q=0":                false,
		"gzip; q=0":               false,
		"gzip;q=0.0":              false,
		"gzip;Q=0.000":            false,
		"gzip;q=0.001":            true,
		"identity, gzip ; q = 0 ": false,
		"x-gzip":                  false,
		"*":                       false,
		"br":                      false,
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", header)
		if got := gzipAccepted(req); got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", header, got, want)
		}
	}
}

// heldExposition waits in AppendBody and AppendTargetBody until told to
// go on: a scrape that renders its blocks.
type heldExposition struct {
	rendering chan<- struct{}
	proceed   <-chan struct{}
}

func (h heldExposition) AppendBody(b gzipjoin.Body) gzipjoin.Body {
	h.rendering <- struct{}{}
	<-h.proceed
	return append(b, gzipjoin.Text([]byte("x 1\n")))
}

func (h heldExposition) AppendTargetBody(b gzipjoin.Body, _ config.TargetID) gzipjoin.Body {
	return h.AppendBody(b)
}

// A scrape holds its slot of --web.max-requests while its body is
// rendered and compressed, the costly part of a scrape after probes; it
// gives it back to write.
func TestScrapeHoldsItsSlotWhileRendering(t *testing.T) {
	for _, path := range []string{"/metrics", "/probe?key=prod&model=qwen-3-32b"} {
		t.Run(path, func(t *testing.T) {
			rendering, proceed := make(chan struct{}), make(chan struct{})
			h, err := Handler(Options{MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: heldExposition{rendering, proceed},
				MaxRequests: 1, Targets: testTargets, Ready: func() bool { return true }, Logger: log.NewNopLogger()})
			if err != nil {
				t.Fatal(err)
			}
			ask := func(from string) *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", path, nil)
				req.RemoteAddr = from
				h.ServeHTTP(rec, req)
				return rec
			}
			first := make(chan *httptest.ResponseRecorder)
			go func() { first <- ask("192.0.2.1:1000") }()
			<-rendering
			second := make(chan *httptest.ResponseRecorder)
			go func() { second <- ask("192.0.2.2:1000") }()
			select {
			case rec := <-second:
				if rec.Code != http.StatusServiceUnavailable {
					t.Errorf("while the first scrape renders, another address: %d %q, want 503", rec.Code, rec.Body)
				}
				close(proceed)
			case <-rendering:
				t.Error("another address's scrape renders while the first does: the first gave its slot back before its body was taken")
				close(proceed)
				<-second
			}
			if rec := <-first; rec.Code != http.StatusOK || rec.Body.String() != "x 1\n" && path != "/metrics" {
				t.Errorf("the first scrape: %d %q", rec.Code, rec.Body)
			}
			go func() { <-rendering }()
			if rec := ask("192.0.2.2:1000"); rec.Code != http.StatusOK {
				t.Errorf("once the first is answered, another address: %d %q, want 200", rec.Code, rec.Body)
			}
		})
	}
}
