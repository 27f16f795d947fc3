package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// --web.shutdown-grace-period is "how long scrapes and proxied requests in
// flight may take to finish" on SIGTERM. With a scrape and a proxied stream
// both in flight, the exporter exits within about one grace period, not one
// for the scrapes and then another for the proxy.
func TestSIGTERMDrainsScrapesAndProxyWithinOneGrace(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 2)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: scrape, timeout: 30s, min_interval: 0s, max_quota_share: 1}
keys:
  - {name: good, api_key: %s, base_url: %s/v1, models: [llama3.1-8b]}
proxy:
  listen_address: %s
  routes: [{path_prefix: /c/, upstream: %s, provider: cerebras}]
`, goodKey, slow.URL, proxyAddr, slow.URL))
	const grace = 2 * time.Second
	e := start(t, nil, "--config.file="+cfg, "--web.shutdown-grace-period="+grace.String())

	// A scrape waiting for its probe, and a proxied stream, both in flight.
	go func() {
		if resp, err := http.Get(e.URL + "/metrics"); err == nil {
			resp.Body.Close()
		}
	}()
	streaming := make(chan struct{})
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+proxyAddr+"/c/v1/chat/completions", strings.NewReader(`{"model":"llama3.1-8b"}`))
		req.Header.Set("Authorization", "Bearer "+goodKey)
		resp, err := http.DefaultClient.Do(req)
		close(streaming)
		if err == nil { // read until the exporter cuts the stream
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-streaming
	<-arrived // the probe the scrape waits for
	<-arrived // and the proxied stream

	begin := time.Now()
	terminateWithin(t, e, 4*grace, "no exit")
	if took := time.Since(begin); took > grace+grace/2 {
		t.Errorf("shutdown took %s with --web.shutdown-grace-period=%s: the scrapes' and the proxy's grace periods run one after the other", took.Round(10*time.Millisecond), grace)
	}
}

// SIGTERM ends an admin API read in flight: an admin API that never
// answers (a read may take two minutes) does not hold the exit back.
func TestSIGTERMEndsAnAdminReadInFlight(t *testing.T) {
	arrived := make(chan struct{}, 1)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	t.Cleanup(hung.Close)
	_, url := startAdminSimulator(t)
	cfg := testkit.WriteConfig(t, strings.Replace(adminConfig(url, writeAdminKey(t, adminKey)), "base_url: '"+url+"/v1'}", "base_url: '"+hung.URL+"/v1'}", 1))
	const grace = time.Second
	e := start(t, nil, "--config.file="+cfg, "--web.shutdown-grace-period="+grace.String())
	<-arrived
	begin := time.Now()
	terminateWithin(t, e, 10*grace, "no exit with an admin read in flight")
	if took := time.Since(begin); took > 2*grace {
		t.Errorf("shutdown took %s with an admin read in flight, want within the grace period, %s", took.Round(10*time.Millisecond), grace)
	}
	if logs := e.Logs(); strings.Contains(logs, "Reading an admin API failed") {
		t.Errorf("the read cancelled at shutdown was logged as a failure:\n%s", logs)
	}
}

// --web.shutdown-delay: on SIGTERM, /-/ready answers 503 at once while the
// exporter and its proxy go on accepting new connections, so that a load
// balancer stops sending before the listeners close; a second signal ends
// the wait, and the process, at once.
func TestSIGTERMWithShutdownDelayServesOnNotReady(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{}`)
	}))
	t.Cleanup(upstream.Close)
	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: scrape, timeout: 5s}
keys:
  - {name: good, api_key: %s, base_url: %s/v1, models: [llama3.1-8b]}
proxy:
  listen_address: %s
  routes: [{path_prefix: /c/, upstream: %s, provider: cerebras}]
`, goodKey, upstream.URL, proxyAddr, upstream.URL))
	e := start(t, nil, "--config.file="+cfg, "--web.shutdown-delay=10m", "--web.shutdown-grace-period=1s")
	if code, _ := e.get(t, "/-/ready"); code != http.StatusOK {
		t.Fatalf("/-/ready before SIGTERM: %d", code)
	}
	client := &http.Client{}
	keptAlive := func(t *testing.T, method, url string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(`{"model":"llama3.1-8b"}`))
		req.Header.Set("Authorization", "Bearer "+goodKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if keptAlive(t, http.MethodGet, e.URL+"/metrics").Close || keptAlive(t, http.MethodPost, "http://"+proxyAddr+"/c/v1/chat/completions").Close {
		t.Fatal("an answer before SIGTERM asked to close the connection")
	}
	if err := e.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Each request on a connection of its own: the listeners must accept.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	status := func(method, url string) int {
		req, _ := http.NewRequest(method, url, strings.NewReader(`{"model":"llama3.1-8b"}`))
		req.Header.Set("Authorization", "Bearer "+goodKey)
		resp, err := fresh.Do(req)
		if err != nil {
			t.Fatalf("%s %s after SIGTERM, within the shutdown delay: %v", method, url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for deadline := time.Now().Add(10 * time.Second); status(http.MethodGet, e.URL+"/-/ready") != http.StatusServiceUnavailable; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/-/ready still answers 200 10s after SIGTERM")
		}
	}
	if code := status(http.MethodGet, e.URL+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics within the shutdown delay: %d", code)
	}
	if code := status(http.MethodPost, "http://"+proxyAddr+"/c/v1/chat/completions"); code != http.StatusOK {
		t.Errorf("a proxied request within the shutdown delay: %d", code)
	}
	// A kept-alive client is asked to close its connection, so that its
	// next request goes through the load balancer to a ready replica: at
	// once on the exporter's port (turned off before /-/ready said 503),
	// and soon on the proxy's.
	if resp := keptAlive(t, http.MethodGet, e.URL+"/metrics"); !resp.Close {
		t.Error("/metrics within the shutdown delay kept the connection open")
	}
	for i := 0; !keptAlive(t, http.MethodPost, "http://"+proxyAddr+"/c/v1/chat/completions").Close; i++ {
		if i == 1000 {
			t.Fatal("1,000 proxied requests within the shutdown delay, none asked to close the connection")
		}
	}
	select {
	case <-e.Done():
		t.Fatal("the exporter exited within a shutdown delay of 10m")
	default:
	}
	terminateWithin(t, e, 10*time.Second, "a second SIGTERM did not end the shutdown delay")
	if !strings.Contains(e.Logs(), "Not ready: serving on until the shutdown delay ends") {
		t.Errorf("the log does not say that the exporter serves on, not ready:\n%s", e.Logs())
	}
}

// Once the shutdown delay ends, the shutdown goes on as without one, and
// the exit is clean.
func TestShutdownDelayEndsInACleanExit(t *testing.T) {
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: scrape}
keys:
  - {name: good, api_key: %s, base_url: http://127.0.0.1:1/v1, models: [m]}
`, goodKey))
	e := start(t, nil, "--config.file="+cfg, "--web.shutdown-delay=200ms")
	terminateWithin(t, e, 30*time.Second, "no exit with a shutdown delay of 200ms")
	if err := e.Err(); err != nil {
		t.Errorf("exit after the shutdown delay: %v\n%s", err, e.Logs())
	}
	if !strings.Contains(e.Logs(), `msg="Shut down"`) {
		t.Errorf("the shutdown did not finish:\n%s", e.Logs())
	}
}

// A reload within the shutdown delay that moves the proxy to another
// listener (a new http.Server) keeps the shutdown's promise there too:
// the new proxy serves, and asks each kept-alive client to close its
// connection from its first answer on. Test by the attacking reviewer.
func TestReloadWithinShutdownDelayProxyRefusesKeepAlives(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{}`)
	}))
	t.Cleanup(upstream.Close)
	config := func(proxyAddr string) string {
		return fmt.Sprintf(`probe: {mode: scrape, timeout: 5s}
keys:
  - {name: good, api_key: %s, base_url: %s/v1, models: [llama3.1-8b]}
proxy:
  listen_address: %s
  routes: [{path_prefix: /c/, upstream: %s, provider: cerebras}]
`, goodKey, upstream.URL, proxyAddr, upstream.URL)
	}
	cfg := testkit.WriteConfig(t, config(testkit.FreeAddr(t)))
	e := start(t, nil, "--config.file="+cfg, "--web.shutdown-delay=10m", "--web.shutdown-grace-period=1s")
	if err := e.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/-/ready answers 503 after SIGTERM", func() error {
		if code, _ := e.get(t, "/-/ready"); code != http.StatusServiceUnavailable {
			return fmt.Errorf("/-/ready: %d", code)
		}
		return nil
	})
	moved := testkit.FreeAddr(t)
	if err := os.WriteFile(cfg, []byte(config(moved)), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, body := e.do(t, http.MethodPost, "/-/reload"); status != http.StatusOK {
		t.Fatalf("reload within the shutdown delay: %d %s", status, body)
	}
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	req, _ := http.NewRequest(http.MethodPost, "http://"+moved+"/c/v1/chat/completions", strings.NewReader(`{"model":"llama3.1-8b"}`))
	req.Header.Set("Authorization", "Bearer "+goodKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("the proxy on its new listener, within the shutdown delay: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("the reloaded proxy's first answer within the shutdown delay: %d, Connection: close %t; want 200 and close", resp.StatusCode, resp.Close)
	}
	terminateWithin(t, e, 10*time.Second, "a second SIGTERM did not end the shutdown delay")
}

// terminateWithin sends e SIGTERM and fails the test, saying what, unless
// it exits within d.
func terminateWithin(t *testing.T, e *exporter, d time.Duration, what string) {
	t.Helper()
	if err := e.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Done():
	case <-time.After(d):
		t.Fatalf("%s within %s of SIGTERM", what, d)
	}
}
