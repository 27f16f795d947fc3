package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// patience bounds how long a test waits for what must happen; on a loaded
// machine under the race detector that can take a while. It never decides
// a passing outcome.
const patience = 30 * time.Second

// waitFor polls cond until it holds, and fails the test if it does not
// within patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", patience, what)
		}
	}
}

// headersOnly is a request that announces a body of max_request_bytes's
// default and sends none of it.
const headersOnly = "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + openAIKey +
	"\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n"

// dialSending opens a connection to addr and sends text on it.
func dialSending(t *testing.T, addr, text string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, text); err != nil {
		t.Fatal(err)
	}
	return conn
}

// raiseOpenFiles lets the test hold n more descriptors, or skips it.
func raiseOpenFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	if lim.Cur >= n+256 {
		return
	}
	if lim.Max < n+256 {
		t.Skipf("RLIMIT_NOFILE's hard limit %d is too low for %d descriptors", lim.Max, n)
	}
	lim.Cur = n + 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Connections that announce 10 MiB bodies and send none cost memory for
// what they sent, not what they announced, and charge the budget as
// little: an ordinary request still gets through.
func TestAnnouncedBodiesCostNothing(t *testing.T) {
	const conns = 400
	raiseOpenFiles(t, 2*conns)
	up := newUpstream(t, okHandler)
	cfg := parseConfig(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	cfg.Proxy.BodyReadTimeout = config.Duration(time.Hour) // this test is not about the timeout
	e := startConfig(t, cfg)

	before := heapInuse()
	for range conns {
		dialSending(t, e.addr, headersOnly)
	}
	waitFor(t, "every connection's body to be awaited", func() bool { return e.proxy.bodies.used.Load() == conns*(firstBodyBuffer+requestOverhead) })
	if grown := int64(heapInuse()) - int64(before); grown > 32<<20 {
		t.Errorf("%d connections that announced 10 MiB and sent nothing grew the heap by %d MiB", conns, grown>>20)
	}

	got := do(t, e.client, newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions", `{"model":"gpt-4o-mini"}`,
		"Authorization", "Bearer "+openAIKey))
	if got.status != 200 {
		t.Errorf("an ordinary request beside them got %d %s", got.status, got.body)
	}
}

// A body that stops arriving, or trickles, is cut off at body_read_timeout:
// the client gets 408 and its connection is closed.
func TestSlowBodyCutOff(t *testing.T) {
	up := newUpstream(t, okHandler)
	cfg := parseConfig(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	cfg.Proxy.BodyReadTimeout = config.Duration(200 * time.Millisecond)
	e := startConfig(t, cfg)

	stalled := dialSending(t, e.addr, strings.Replace(headersOnly, "10485760", "100", 1)+`{"model":`)
	trickling := dialSending(t, e.addr, strings.Replace(headersOnly, "10485760", "100", 1))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if _, err := io.WriteString(trickling, " "); err != nil {
					return
				}
			}
		}
	}()
	for name, conn := range map[string]net.Conn{"stalled": stalled, "trickling": trickling} {
		_ = conn.SetReadDeadline(time.Now().Add(patience))
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, e.logs)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		proxyError(t, reply{resp.StatusCode, resp.Header, body}, http.StatusRequestTimeout, "request_timeout")
		// A reset is a close too: the trickler may write to a closed socket.
		if _, err := r.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s: the connection is still open after the 408: %v", name, err)
		}
	}
	up.untouched(t, "the upstream")
	if n := testutil.ToFloat64(e.proxy.requests.WithLabelValues("/openai/", "408")); n != 2 {
		t.Errorf("ratelimit_proxy_requests_total{code=\"408\"} = %g, want 2", n)
	}
}

// No timeout cuts a response: it may stream for longer than
// body_read_timeout, whose deadline is lifted once the body is read.
func TestStreamOutlivesBodyTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for began := time.Now(); time.Since(began) < 5*timeout; time.Sleep(timeout / 4) {
			_, _ = io.WriteString(w, "data: {}\n\n")
			_ = http.NewResponseController(w).Flush()
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	cfg := parseConfig(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	cfg.Proxy.BodyReadTimeout = config.Duration(timeout)
	e := startConfig(t, cfg)
	got := do(t, e.client, newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true}`,
		"Authorization", "Bearer "+openAIKey))
	if got.status != 200 || !strings.HasSuffix(string(got.body), "data: [DONE]\n\n") {
		t.Errorf("status %d, the stream ends %q", got.status, got.body[max(0, len(got.body)-20):])
	}
}

// Bodies in flight beyond max_inflight_request_bytes get 503 with
// Retry-After, without contacting the upstream; the budget is returned as
// requests end.
func TestBodyBudget(t *testing.T) {
	up := newUpstream(t, okHandler)
	cfg := parseConfig(t, setup{maxRequestBytes: "16KiB", routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	// One 16 KiB body: its request, and its buffers of 4, 8 and 16 KiB.
	cfg.Proxy.MaxInflightRequestBytes = requestOverhead + 28<<10
	e := startConfig(t, cfg)
	auth := []string{"Authorization", "Bearer " + openAIKey}

	// 8 KiB of a 16 KiB body fill an 8 KiB buffer, which then doubles.
	big := strings.Replace(headersOnly, "10485760", "16384", 1)
	held := dialSending(t, e.addr, big+strings.Repeat("x", 8<<10))
	waitFor(t, "the held body to take the whole budget", func() bool { return e.proxy.bodies.used.Load() == requestOverhead+28<<10 })

	got := do(t, e.client, newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions", `{"model":"gpt-4o-mini"}`, auth...))
	proxyError(t, got, http.StatusServiceUnavailable, "proxy_overloaded")
	if got.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	up.untouched(t, "the upstream")
	if got := do(t, e.client, newRequest(t, http.MethodGet, e.url+"/openai/v1/models", "", auth...)); got.status != 200 {
		t.Errorf("a request without a body got %d", got.status)
	}

	if _, err := io.WriteString(held, strings.Repeat("x", 8<<10)); err != nil {
		t.Fatal(err)
	}
	_ = held.SetReadDeadline(time.Now().Add(patience))
	if resp, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the held request: %v %v", resp, err)
	}
	waitFor(t, "the budget to be returned", func() bool { return e.proxy.bodies.used.Load() == 0 })
	if got := do(t, e.client, newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions", `{"model":"gpt-4o-mini"}`, auth...)); got.status != 200 {
		t.Errorf("after the budget was returned: %d %s", got.status, got.body)
	}
	if n := testutil.ToFloat64(e.proxy.requests.WithLabelValues("/openai/", "503")); n != 1 {
		t.Errorf("ratelimit_proxy_requests_total{code=\"503\"} = %g, want 1", n)
	}
}

// A body is read into a buffer that grows with what arrives, each growth
// charged first, and refused past the limit, whatever it announces.
func TestReadBody(t *testing.T) {
	for _, tc := range []struct {
		name         string
		body         string
		announced    int64 // -1: chunked
		limit        int64
		refuseCharge bool
		want         error
		capacity     int64 // of the last buffer
		charged      int64 // every buffer made
	}{
		{name: "short, announced", body: "abc", announced: 3, limit: 1 << 20, capacity: 4, charged: 4},
		{name: "short, chunked", body: "abc", announced: -1, limit: 1 << 20, capacity: firstBodyBuffer, charged: firstBodyBuffer},
		{name: "announced far more than sent", body: "abc", announced: 1 << 20, limit: 1 << 20, capacity: firstBodyBuffer, charged: firstBodyBuffer},
		{name: "grows by doubling up to what it announced", body: strings.Repeat("x", 9000), announced: 9000, limit: 1 << 20, capacity: 9001, charged: 4096 + 8192 + 9001},
		{name: "grows by doubling, chunked", body: strings.Repeat("x", 9000), announced: -1, limit: 1 << 20, capacity: 16 << 10, charged: 4096 + 8192 + 16384},
		{name: "at the limit", body: strings.Repeat("x", 10000), announced: -1, limit: 10000, capacity: 10000, charged: 4096 + 8192 + 10000},
		{name: "one over the limit", body: strings.Repeat("x", 10001), announced: -1, limit: 10000, want: errTooLarge},
		{name: "over budget", body: "abc", announced: 3, limit: 1 << 20, refuseCharge: true, want: errOverloaded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var charged int64
			got, err := readBody(strings.NewReader(tc.body), tc.announced, tc.limit, func(n int64) bool {
				if tc.refuseCharge {
					return false
				}
				charged += n
				return true
			})
			if err != tc.want {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			if charged != tc.charged || int64(cap(got)) != tc.capacity || string(got) != tc.body {
				t.Errorf("read %d bytes into a buffer of %d, charged %d; want %d bytes into %d, %d charged", len(got), cap(got), charged, len(tc.body), tc.capacity, tc.charged)
			}
		})
	}
}

// No more than max_connections are accepted: the next waits until one
// closes.
func TestMaxConnections(t *testing.T) {
	release := make(chan struct{})
	var begun atomic.Int64
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		begun.Add(1)
		<-release
		okHandler(w, r)
	})
	released := sync.OnceFunc(func() { close(release) })
	t.Cleanup(released) // before the upstream closes, which waits for its handlers
	cfg := parseConfig(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	cfg.Proxy.MaxConnections = 2
	e := startConfig(t, cfg)
	request := "GET /openai/v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + openAIKey + "\r\n\r\n"
	first := dialSending(t, e.addr, request)
	dialSending(t, e.addr, request)
	waitFor(t, "two requests to reach the upstream", func() bool { return begun.Load() == 2 })

	third := dialSending(t, e.addr, request) // the kernel completes the handshake; the proxy does not accept it
	// That something does not happen can only be watched for a while.
	time.Sleep(300 * time.Millisecond)
	if n := begun.Load(); n != 2 {
		t.Fatalf("%d requests reached the upstream with max_connections: 2", n)
	}
	first.Close()
	waitFor(t, "the third request to be accepted once a connection closed", func() bool { return begun.Load() == 3 })
	released()
	_ = third.SetReadDeadline(time.Now().Add(patience))
	if resp, err := http.ReadResponse(bufio.NewReader(third), nil); err != nil || resp.StatusCode != 200 {
		t.Errorf("the third request: %v %v", resp, err)
	}
}

// Headers cost memory as bodies do: connections that send large headers
// and announce a body they never send are held until body_read_timeout,
// and their headers with them. What they hold must stay within the
// proxy's bounds (max_inflight_request_bytes, and a small cost per
// connection), not grow with net/http's default of 1 MB of headers per
// request: 1,024 such connections would hold a gigabyte.
func TestLargeHeadersAreBounded(t *testing.T) {
	const conns = 100
	const budget = 16 << 20
	raiseOpenFiles(t, 2*conns)
	up := newUpstream(t, okHandler)
	cfg := parseConfig(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	cfg.Proxy.BodyReadTimeout = config.Duration(time.Hour) // this test is not about the timeout
	cfg.Proxy.MaxInflightRequestBytes = budget
	e := startConfig(t, cfg)

	var pad strings.Builder
	for i := range 1000 { // just under net/http's default MaxHeaderBytes of 1 MB
		fmt.Fprintf(&pad, "X-Pad-%d: %s\r\n", i, strings.Repeat("p", 1000))
	}
	request := strings.Replace(headersOnly, "Content-Type:", pad.String()+"Content-Type:", 1)

	before := heapInuse()
	var answered atomic.Int64
	for range conns {
		conn := dialSending(t, e.addr, request)
		go func() {
			_ = conn.SetReadDeadline(time.Now().Add(patience))
			if _, err := conn.Read(make([]byte, 1)); err == nil {
				answered.Add(1)
			}
		}()
	}
	// Each connection is refused or waits for its body; both take a moment.
	waitFor(t, "every connection to be answered or to wait for its body", func() bool {
		const waiting = firstBodyBuffer + requestOverhead
		return answered.Load()*waiting+e.proxy.bodies.used.Load() >= conns*waiting
	})
	const allowed = budget + conns*(64<<10)
	if grown := int64(heapInuse()) - int64(before); grown > allowed {
		t.Errorf("%d connections that sent 1 MB of headers and announced a body hold %d MiB of heap; the bounds allow %d MiB",
			conns, grown>>20, allowed>>20)
	}
}
