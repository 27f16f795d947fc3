package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// These tests operate the built binary the way production does: stalled
// scrapers, signals mid-scrape, busy ports, bad flags.

// countingSimulator serves sim and counts the requests that arrive, before
// any latency the simulator adds.
func countingSimulator(t *testing.T, sim *simulator.Simulator) (url string, arrived *atomic.Int64) {
	t.Helper()
	arrived = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1", arrived
}

// manyKeysConfig is a config of n keys with three models each.
func manyKeysConfig(sim *simulator.Simulator, url, mode string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "probe:\n  mode: %s\n  interval: 1h\n  min_interval: 1h\n  max_quota_share: 1\nkeys:\n", mode)
	for i := range n {
		key := fmt.Sprintf("sk-test-operate-%04d", i)
		sim.AddKey(key, simulator.Limits{"requests": {"minute": 1e6}})
		fmt.Fprintf(&b, "  - {name: key-%04d, api_key: %s, base_url: %q, models: [m1, m2, m3]}\n", i, key, url)
	}
	return b.String()
}

// stalledScrape sends GET /metrics from a socket with a tiny receive buffer
// and never reads the answer.
func stalledScrape(t *testing.T, e *exporter) net.Conn {
	t.Helper()
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	conn, err := dialer.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: exporter\r\nAccept-Encoding: identity\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// startSlowScrapeMode runs the exporter with twoKeyConfig in scrape mode
// against a simulator that answers after latency, counting arrivals.
func startSlowScrapeMode(t *testing.T, latency time.Duration, args ...string) (*exporter, *atomic.Int64) {
	t.Helper()
	sim, _ := startSimulator(t)
	url, arrived := countingSimulator(t, sim)
	sim.SetLatency(latency)
	text, env := twoKeyConfig(t, url, "scrape")
	return start(t, env, append([]string{"--config.file=" + testkit.WriteConfig(t, text)}, args...)...), arrived
}

// waitArrivals waits until n probes have reached the simulator.
func waitArrivals(t *testing.T, arrived *atomic.Int64, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); arrived.Load() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d probes arrived within 10s of the scrape, want %d", arrived.Load(), n)
		}
	}
}

// within GETs or POSTs path and fails the test if no answer comes within limit.
func (e *exporter) within(t *testing.T, limit time.Duration, method, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, string(body)
}

// waitExit waits for the exporter to exit and returns its exit code.
func (e *exporter) waitExit(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-e.Done():
		err := e.Err()
		if err == nil {
			return 0
		}
		if exitErr, ok := err.(interface{ ExitCode() int }); ok {
			return exitErr.ExitCode()
		}
		t.Fatalf("exit: %v", err)
	case <-time.After(limit):
		t.Fatalf("still running %s after the signal", limit)
	}
	return -1
}

// One client that never reads its scrape delays nothing else: other
// scrapes, probe results, reloads and SIGTERM go on as if it were not there.
func TestStalledScraperDelaysNothing(t *testing.T) {
	sim := simulator.New("m1", "m2", "m3")
	url, _ := countingSimulator(t, sim)
	cfg := testkit.WriteConfig(t, manyKeysConfig(sim, url, "interval", 1000))
	e := start(t, nil, "--config.file="+cfg, "--web.write-timeout=1m", "--web.shutdown-grace-period=3s")
	body := e.waitForWithin(t, 60*time.Second, `ratelimit_probe_success{key="key-0999",model="m3",provider="cerebras"} 1`)
	// Loopback sockets buffer up to 4 MiB (net.ipv4.tcp_wmem): a larger
	// body leaves the exporter's write blocked on a client that does not read.
	if len(body) < 4<<20+512<<10 {
		t.Fatalf("/metrics is %d bytes: too small to fill the socket buffers", len(body))
	}

	for range 3 {
		stalledScrape(t, e)
	}
	time.Sleep(500 * time.Millisecond) // let the stalled writes fill their buffers
	for range 3 {
		if code, got := e.within(t, 10*time.Second, http.MethodGet, "/metrics"); code != 200 || len(got) < len(body)/2 {
			t.Fatalf("a scrape beside stalled ones: %d, %d bytes", code, len(got))
		}
	}
	if code, got := e.within(t, 10*time.Second, http.MethodPost, "/-/reload"); code != 200 {
		t.Fatalf("reload beside stalled scrapes: %d %s", code, got)
	}
	begin := time.Now()
	if err := e.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := e.waitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("SIGTERM took %s with stalled scrapers and a 3s grace period", took)
	}
}

// SIGTERM lets a scrape in flight finish, then exits 0.
func TestSIGTERMDrainsScrapesInFlight(t *testing.T) {
	e, arrived := startSlowScrapeMode(t, time.Second)

	type answer struct {
		code int
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get(e.URL + "/metrics")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, string(body), err}
	}()
	waitArrivals(t, arrived, 3)
	if err := e.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	a := <-answered
	if a.err != nil || a.code != 200 {
		t.Fatalf("the scrape in flight at SIGTERM got %d, %v", a.code, a.err)
	}
	if want := `ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras",team="search"} 1`; !strings.Contains(a.body, want) {
		t.Errorf("the scrape in flight at SIGTERM lacks %s", want)
	}
	if code := e.waitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if logs := e.Logs(); !strings.Contains(logs, `msg="Shut down"`) || strings.Contains(logs, "cut off") || strings.Contains(logs, "network_error") {
		t.Errorf("want a clean shutdown, no scrape cut off, no probe failed by it:\n%s", logs)
	}
}

// A second signal ends a shutdown that waits for a slow scrape.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	e, arrived := startSlowScrapeMode(t, time.Minute, "--web.shutdown-grace-period=1m")
	go func() {
		if resp, err := http.Get(e.URL + "/metrics"); err == nil {
			resp.Body.Close()
		}
	}()
	waitArrivals(t, arrived, 3)
	if err := e.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(e.Logs(), "Shutting down"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no shutdown within 10s of SIGTERM")
		}
	}
	select {
	case <-e.Done():
		t.Fatal("exited before the scrape in flight finished or the grace period ended")
	case <-time.After(300 * time.Millisecond):
	}
	if err := e.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := e.waitExit(t, 5*time.Second); code != 1 {
		t.Errorf("exit code %d after a second signal, want 1", code)
	}
	if !strings.Contains(e.Logs(), "Second signal: exiting at once") {
		t.Errorf("the second signal is not logged:\n%s", e.Logs())
	}
}

// A busy port ends the start with the bind error, before any probe.
func TestBusyPortFailsBeforeProbing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	sim, _ := startSimulator(t)
	url, arrived := countingSimulator(t, sim)
	text, env := twoKeyConfig(t, url, "interval")
	code, out := runOnce(t, env, "--config.file="+testkit.WriteConfig(t, text), "--web.listen-address="+busy.Addr().String())
	if code != 1 || !strings.Contains(out, "address already in use") {
		t.Errorf("exit %d, want 1 with the bind error:\n%s", code, out)
	}
	if n := arrived.Load(); n != 0 || strings.Contains(out, "Probe") || strings.Contains(out, "Loaded config") {
		t.Errorf("%d probes sent before the bind error, want none:\n%s", n, out)
	}
}

func TestTelemetryPathIsValidated(t *testing.T) {
	_, url := startSimulator(t)
	text, env := twoKeyConfig(t, url, "interval")
	cfg := testkit.WriteConfig(t, text)
	for path, want := range map[string]string{
		"metrics":    `--web.telemetry-path \"metrics\" must start with /`,
		"/-/healthy": `--web.telemetry-path \"/-/healthy\" clashes with the endpoint /-/healthy`,
		"/{x}":       `must be a plain path`,
	} {
		code, out := runOnce(t, env, "--config.file="+cfg, "--web.listen-address=127.0.0.1:0", "--web.telemetry-path="+path)
		if code != 1 || !strings.Contains(out, want) || strings.Contains(out, "panic") {
			t.Errorf("--web.telemetry-path=%s: exit %d, want 1 with %s:\n%s", path, code, want, out)
		}
	}
	// / serves the metrics and leaves the other endpoints reachable.
	e := start(t, env, "--config.file="+cfg, "--web.telemetry-path=/")
	e.waitForWithin(t, 10*time.Second) // up
	if code, body := e.get(t, "/"); code != 200 || !strings.Contains(body, "ratelimit_exporter_build_info") {
		t.Errorf("GET / with --web.telemetry-path=/: %d", code)
	}
	if code, _ := e.get(t, "/-/healthy"); code != 200 {
		t.Errorf("GET /-/healthy with --web.telemetry-path=/: %d", code)
	}
}

// No request parameter, header or request line chooses where a key is
// sent: the scrapes below make the exporter probe, and every probe goes to
// the configured simulator.
func TestNoTargetFromOutside(t *testing.T) {
	var hits atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer elsewhere.Close()
	host := strings.TrimPrefix(elsewhere.URL, "http://")
	sim, e, _ := startTwoKeys(t, "scrape", nil)
	requests := []string{
		"GET /metrics?target=" + elsewhere.URL + " HTTP/1.1\r\nHost: " + host,
		"GET /metrics?base_url=" + elsewhere.URL + "/v1&module=x HTTP/1.1\r\nHost: " + host,
		"GET " + elsewhere.URL + "/metrics HTTP/1.1\r\nHost: " + host, // absolute form
		"GET /metrics HTTP/1.1\r\nHost: " + host + "\r\nX-Forwarded-Host: " + host + "\r\nForwarded: host=" + host,
		"GET /probe?target=" + elsewhere.URL + " HTTP/1.1\r\nHost: " + host,
	}
	for _, request := range requests {
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "%s\r\nX-Prometheus-Scrape-Timeout-Seconds: 5\r\nConnection: close\r\n\r\n", request)
		status, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil {
			t.Fatalf("%q: %v", request, err)
		}
		t.Logf("%q: %s", strings.SplitN(request, "\r\n", 2)[0], strings.TrimSpace(status))
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached a server named only in the scrape request", n)
	}
	if n := sim.Requests(); n < 3 {
		t.Errorf("the scrapes sent %d probes to the configured simulator, want at least 3: the test proves nothing without probes", n)
	}
}

// A storm of SIGHUPs, each a slow reload, never swallows the SIGTERM after it.
func TestSIGTERMAfterSIGHUPStorm(t *testing.T) {
	sim := simulator.New("m1", "m2", "m3")
	url, _ := countingSimulator(t, sim)
	e := start(t, nil, "--config.file="+testkit.WriteConfig(t, manyKeysConfig(sim, url, "interval", 1000)))
	for range 5 {
		if err := e.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // faster than a reload of 1,000 keys
	}
	if err := e.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := e.waitExit(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// A key file that hangs when read (a FIFO here; a stuck network mount in
// life) costs its probe the probe timeout, and never holds up shutdown.
func TestHungKeyFile(t *testing.T) {
	_, url := startSimulator(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(goodKey), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testkit.WriteConfig(t, fmt.Sprintf("probe:\n  interval: 200ms\n  timeout: 500ms\n  max_quota_share: 1\nkeys:\n  - {name: hung, api_key_file: %s, base_url: %q}\n", keyFile, url))
	e := start(t, nil, "--config.file="+cfg)
	e.waitFor(t, `ratelimit_probes_total{cause="",key="hung",model="llama3.1-8b",provider="cerebras",reason="",result="success"} 1`)
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, `ratelimit_probes_total{cause="",key="hung",model="llama3.1-8b",provider="cerebras",reason="",result="key_unavailable"} 1`)
	if err := e.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := e.waitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}
