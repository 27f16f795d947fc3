package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Three replicas with --probe.on-request-only behind a round-robin
// balancer, as a Kubernetes Service puts them: Prometheus scrapes each
// replica's /metrics, and /probe through the balancer; applications send
// requests and streams through it to the replicas' proxies. Counted at the
// upstream: an idle key costs one probe per /probe scrape, not one
// per replica, and a busy one none; the alert fires once, not once per
// replica; a replica stopped with SIGTERM fails nothing, one killed with
// SIGKILL fails only the connections it had open, and the probing goes on
// through the others.
func TestReplicasBehindABalancer(t *testing.T) {
	withEachPrometheus(t, replicasBehindABalancer)
}

const (
	idleKey  = "sk-test-replicas-idle-4f1a"
	busyKey  = "sk-test-replicas-busy-8c3d"
	appAgent = "replicas-test-app/1"
	// busyLimit is the busy key's requests per minute: 10 a second, which
	// the applications' 12 or so a second keep near 0.
	busyLimit = 600
)

func replicasBehindABalancer(t *testing.T, prometheus string) {
	sim := simulator.New("llama3.1-8b")
	sim.AddKey(idleKey, simulator.Limits{"requests": {"minute": 1e4}, "tokens": {"minute": 1e7}})
	sim.AddKey(busyKey, simulator.Limits{"requests": {"minute": busyLimit}, "tokens": {"minute": 1e7}})
	// The busy key's other applications, not behind this proxy, have
	// spent all but 5% of its minute; the traffic here keeps it there.
	sim.Consume(busyKey, "llama3.1-8b", busyLimit*0.95, 0)
	sim.SetStreamPace(time.Second) // 4 events: a stream lasts 3s, longer than the shutdown delay
	upstream := httptest.NewServer(sim)
	t.Cleanup(upstream.Close)
	probeAgent := "ratelimit_exporter/" + testkit.BuildArgs["VERSION"]

	var replicas []*exporter
	var backends [][2]string
	for range 3 {
		proxyAddr := testkit.FreeAddr(t)
		cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: scrape, min_interval: 1s, max_quota_share: 1, timeout: 5s}
keys:
  - {name: idle, api_key: %[2]s, base_url: %[1]s/v1, models: [llama3.1-8b]}
  - {name: busy, api_key: %[3]s, base_url: %[1]s/v1, models: [llama3.1-8b]}
proxy:
  listen_address: %[4]s
  routes: [{path_prefix: /c/, upstream: %[1]s/v1, provider: cerebras}]
`, upstream.URL, idleKey, busyKey, proxyAddr))
		e := start(t, nil, "--config.file="+cfg, "--probe.on-request-only",
			"--web.shutdown-delay=2s", "--web.shutdown-grace-period=5s")
		replicas = append(replicas, e)
		backends = append(backends, [2]string{e.Addr, proxyAddr})
	}
	lb := startBalancer(t, backends)
	app := startTraffic(t, "http://"+lb.addr[sideProxy]+"/c/chat/completions", busyKey)

	prom := startPrometheusWith(t, prometheus, fmt.Sprintf(`scrape_configs:
  - job_name: ratelimit
    static_configs:
      - targets: [%q, %q, %q]
  - job_name: ratelimit-probe
    # Longer than min_interval (1s): a scrape every min_interval would
    # find the last result a probe's duration too young, and probe at
    # every other scrape only.
    scrape_interval: 2s
    metrics_path: /probe
    honor_labels: true
    http_sd_configs:
      - url: http://%s/sd
    relabel_configs:
      - target_label: job
        replacement: ratelimit
`, replicas[0].Addr, replicas[1].Addr, replicas[2].Addr, lb.addr[sideHTTP]))

	// Steady: Prometheus scrapes /probe for both keys, and every replica
	// has proxied the busy key's traffic.
	eventually(t, 30*time.Second, "/probe scraped for both keys, every replica proxying", func() error {
		if n, m := len(lb.probeScrapes("idle", time.Time{})), len(lb.probeScrapes("busy", time.Time{})); n < 2 || m < 2 {
			return fmt.Errorf("/probe scraped %d times for idle, %d for busy", n, m)
		}
		for i := range replicas {
			if n := app.succeededOn(lb, i, time.Time{}); n < 3 {
				return fmt.Errorf("replica %d proxied %d requests", i, n)
			}
		}
		return nil
	})

	// 1. Probes at the upstream against /probe scrapes at the balancer.
	// A probe follows its scrape, and Prometheus scrapes a target one
	// scrape at a time: counting scrapes before probes at the start and
	// after them at the end, a scrape under way at the start is the
	// only probe that may be counted without its scrape.
	begin := time.Now()
	idleScrapes0, busyScrapes0 := len(lb.probeScrapes("idle", time.Time{})), len(lb.probeScrapes("busy", time.Time{}))
	idleProbes0, busyProbes0 := sim.RequestsFrom(idleKey, probeAgent), sim.RequestsFrom(busyKey, probeAgent)
	const measured = 5
	eventually(t, 30*time.Second, fmt.Sprintf("%d /probe scrapes of each key", measured), func() error {
		if n, m := len(lb.probeScrapes("idle", begin)), len(lb.probeScrapes("busy", begin)); n < measured || m < measured {
			return fmt.Errorf("%d scrapes of idle, %d of busy", n, m)
		}
		return nil
	})
	idleProbes, busyProbes := sim.RequestsFrom(idleKey, probeAgent)-idleProbes0, sim.RequestsFrom(busyKey, probeAgent)-busyProbes0
	idleScrapes, busyScrapes := len(lb.probeScrapes("idle", time.Time{}))-idleScrapes0, len(lb.probeScrapes("busy", time.Time{}))-busyScrapes0
	elapsed := time.Since(begin)
	t.Logf("over %s: idle: %d probes for %d /probe scrapes; busy: %d probes for %d scrapes, %d requests proxied",
		elapsed.Round(time.Millisecond), idleProbes, idleScrapes, busyProbes, busyScrapes, sim.RequestsFrom(busyKey, appAgent))
	if idleProbes < idleScrapes-1 || idleProbes > idleScrapes+1 {
		t.Errorf("the idle key had %d probes for %d /probe scrapes by one Prometheus and 3 replicas, want %d to %d: one per scrape", idleProbes, idleScrapes, idleScrapes-1, idleScrapes+1)
	}
	if busyProbes != 0 {
		t.Errorf("the busy key had %d probes while its traffic flowed through every replica, want 0", busyProbes)
	}

	// 2. One alert for the busy key's minute, not one per replica: once
	// every replica's reading of it is low and the rules have run since.
	busyMinute := fmt.Sprintf(`ratelimit_remaining{job="ratelimit",key="busy",resource="requests",window="minute"} <= %d`, busyLimit/10)
	nearly := nearlyExhausted(t, prom, busyMinute, len(replicas))
	t.Logf("RateLimitNearlyExhausted alerts: %v", nearly)
	if len(nearly) != 1 {
		t.Errorf("%d RateLimitNearlyExhausted alerts with 3 replicas reading the busy key, want 1: %v", len(nearly), nearly)
	}
	for _, a := range nearly {
		if a.Labels["key"] != "busy" || a.Labels["resource"] != "requests" || a.Labels["window"] != "minute" ||
			a.Labels["instance"] != "" || a.Labels["pod"] != "" || (a.State != "pending" && a.State != "firing") {
			t.Errorf("alert %s %v, want pending or firing for key busy, requests per minute, without instance or pod", a.State, a.Labels)
		}
	}

	// 3. SIGTERM to the replica that serves the /probe scrapes, with a
	// stream just started on it, to last past the shutdown delay: /-/ready
	// turns 503, the balancer sends it nothing new, the listeners close at
	// the end of the delay, what it serves finishes, and it exits.
	termed := lb.lastProbeBackend()
	eventually(t, 20*time.Second, fmt.Sprintf("a stream just started on replica %d", termed), func() error {
		// Only a stream is open 100ms after it started: a request takes
		// a few milliseconds.
		now := time.Now()
		if len(lb.openBetween(sideProxy, termed, now.Add(-500*time.Millisecond), now.Add(-100*time.Millisecond), now)) == 0 {
			return errors.New("none")
		}
		return nil
	})
	termAt := time.Now()
	inFlight := lb.openBetween(sideProxy, termed, time.Time{}, termAt, termAt)
	if err := replicas[termed].Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-replicas[termed].Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("replica %d did not exit within 15s of SIGTERM", termed)
	}
	termedAt := time.Now()
	if err := replicas[termed].Err(); err != nil {
		t.Errorf("replica %d exit after SIGTERM: %v", termed, err)
	}
	if failed := app.failures(); len(failed) > 0 {
		t.Errorf("%d requests failed while replica %d drained after SIGTERM, want 0: %v", len(failed), termed, failed)
	}
	lastEnd := time.Time{}
	for _, c := range inFlight {
		r, ok := app.resultOf(c.client)
		if !ok || r.err != "" {
			t.Errorf("the request in flight on replica %d at SIGTERM (%s) did not succeed: %s", termed, c.client, r)
		}
		if r.end.After(lastEnd) {
			lastEnd = r.end
		}
	}
	late := len(lb.openBetween(sideProxy, termed, termAt.Add(500*time.Millisecond), termedAt, time.Time{}))
	t.Logf("SIGTERM: replica %d exited after %s; %d requests in flight at the signal succeeded, the last %s after it; %d connections opened to it 500ms or more after the signal",
		termed, termedAt.Sub(termAt).Round(time.Millisecond), len(inFlight), lastEnd.Sub(termAt).Round(time.Millisecond), late)
	if late > 0 {
		t.Errorf("the balancer opened %d connections to replica %d 500ms or more after its SIGTERM: /-/ready did not turn 503", late, termed)
	}

	// 4. SIGKILL, under load, to the replica that now serves the /probe
	// scrapes, with a stream in flight on it.
	eventually(t, 10*time.Second, "the /probe scrapes served by another replica", func() error {
		if i := lb.lastProbeBackend(); i == termed {
			return fmt.Errorf("the last went to replica %d", i)
		}
		return nil
	})
	killed := lb.lastProbeBackend()
	survivor := 3 - termed - killed
	eventually(t, 20*time.Second, fmt.Sprintf("a stream in flight on replica %d", killed), func() error {
		now := time.Now()
		if len(lb.openBetween(sideProxy, killed, time.Time{}, now.Add(-100*time.Millisecond), now)) == 0 {
			return errors.New("none")
		}
		return nil
	})
	killAt := time.Now()
	replicas[killed].Kill()
	killedAt := time.Now()
	lastIdleBefore := lb.probeScrapes("idle", time.Time{})
	eventually(t, 10*time.Second, fmt.Sprintf("10 requests and a /probe scrape of idle served by replica %d after the kill", survivor), func() error {
		if n := app.succeededOn(lb, survivor, killedAt); n < 10 {
			return fmt.Errorf("%d requests", n)
		}
		if len(lb.probeScrapes("idle", killedAt)) == 0 {
			return errors.New("no /probe scrape")
		}
		return nil
	})
	after := lb.probeScrapes("idle", killedAt)[0]
	gap := after.at.Sub(lastIdleBefore[len(lastIdleBefore)-1].at)
	t.Logf("SIGKILL: the /probe scrapes of idle moved from replica %d to %d, %s between the last before and the first after", killed, after.backend, gap.Round(time.Millisecond))
	if after.backend != survivor || gap > 5*time.Second {
		t.Errorf("the first /probe scrape of idle after the kill went to replica %d %s after the last before it; want replica %d within 5s (scrape interval 2s)",
			after.backend, gap.Round(time.Millisecond), survivor)
	}
	// The probing goes on, at the same rate, from the survivor.
	idleScrapes0, idleProbes0 = len(lb.probeScrapes("idle", time.Time{})), sim.RequestsFrom(idleKey, probeAgent)
	begin = time.Now()
	eventually(t, 30*time.Second, "5 /probe scrapes of idle after the kill", func() error {
		if n := len(lb.probeScrapes("idle", begin)); n < 5 {
			return fmt.Errorf("%d", n)
		}
		return nil
	})
	idleProbes, idleScrapes = sim.RequestsFrom(idleKey, probeAgent)-idleProbes0, len(lb.probeScrapes("idle", time.Time{}))-idleScrapes0
	t.Logf("after the kill, over %s: idle: %d probes for %d /probe scrapes", time.Since(begin).Round(time.Millisecond), idleProbes, idleScrapes)
	if idleProbes < idleScrapes-1 || idleProbes > idleScrapes+1 {
		t.Errorf("after the kill the idle key had %d probes for %d /probe scrapes, want %d to %d: one per scrape", idleProbes, idleScrapes, idleScrapes-1, idleScrapes+1)
	}

	// Through the SIGTERM and the SIGKILL, Prometheus scraped /probe for
	// idle every 2 seconds or so, and never missed more than one in a row.
	scrapes := lb.probeScrapes("idle", time.Time{})
	var longest time.Duration
	for i := 1; i < len(scrapes); i++ {
		longest = max(longest, scrapes[i].at.Sub(scrapes[i-1].at))
	}
	t.Logf("%d /probe scrapes of idle in all, at most %s apart", len(scrapes), longest.Round(time.Millisecond))
	if longest > 5*time.Second {
		t.Errorf("%s between two /probe scrapes of idle, want at most 5s (scrape interval 2s)", longest.Round(time.Millisecond))
	}

	// The alert stays one, pending or firing since before, with one
	// replica's reading left.
	after1 := nearlyExhausted(t, prom, busyMinute, 1)
	t.Logf("RateLimitNearlyExhausted alerts with one replica left: %v", after1)
	if len(nearly) == 1 && (len(after1) != 1 || !after1[0].ActiveAt.Equal(nearly[0].ActiveAt)) {
		t.Errorf("with one replica left, RateLimitNearlyExhausted alerts %v; want the one active since %s", after1, nearly[0].ActiveAt)
	}

	// Only what the killed replica had open failed.
	app.stop()
	failed := app.failures()
	t.Logf("SIGKILL: %d requests failed, %d succeeded on replica %d after it", len(failed), app.succeededOn(lb, survivor, killedAt), survivor)
	if len(failed) == 0 {
		t.Errorf("no request failed, though a stream was in flight on replica %d when it was killed", killed)
	}
	for _, r := range failed {
		c, ok := lb.conn(sideProxy, r.client, r.start)
		t.Logf("failed: %s; on %s", r, c)
		if !ok || c.backend != killed || c.opened.After(killedAt) || (!c.closed.IsZero() && c.closed.Before(killAt)) {
			t.Errorf("%s; on %s (recorded: %t); want failures only on connections open to replica %d when it was killed (%s)", r, c, ok, killed, killAt.Format(timeOfDay))
		}
	}
}

// A balancer's two sides: the replicas' HTTP servers, their proxies.
const (
	sideHTTP = iota
	sideProxy
)

// balancer balances connections round robin, as a Kubernetes Service
// does at L4: per connection it picks the next backend that is ready, per
// its /-/ready checked every 100ms, and copies both ways. A dial that
// fails marks the backend not ready and tries the next, nothing having
// been sent. It records every connection, and on the HTTP side the
// request lines it carries.
type balancer struct {
	addr     [2]string
	backends [][2]string
	ready    []atomic.Bool

	mu       sync.Mutex
	next     int
	conns    []*balancedConn
	requests []seenRequest
}

type balancedConn struct {
	side           int
	client         string // the client's address
	backend        int
	opened, closed time.Time // closed: zero while open
}

type seenRequest struct {
	at      time.Time
	backend int
	line    string // GET /probe?key=... HTTP/1.1
}

func startBalancer(t *testing.T, backends [][2]string) *balancer {
	b := &balancer{backends: backends, ready: make([]atomic.Bool, len(backends))}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for side := range b.addr {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b.addr[side] = l.Addr().String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() { <-ctx.Done(); l.Close() }()
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				go b.serve(side, conn)
			}
		}()
	}
	b.checkReadiness()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
				b.checkReadiness()
			}
		}
	}()
	return b
}

var readinessClient = &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}

func (b *balancer) checkReadiness() {
	for i, be := range b.backends {
		resp, err := readinessClient.Get("http://" + be[sideHTTP] + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		b.ready[i].Store(err == nil && resp.StatusCode == http.StatusOK)
	}
}

// dial connects to the next ready backend on side, or returns nil.
func (b *balancer) dial(side int) (int, net.Conn) {
	b.mu.Lock()
	first := b.next
	b.next++
	b.mu.Unlock()
	for k := range b.backends {
		i := (first + k) % len(b.backends)
		if !b.ready[i].Load() {
			continue
		}
		conn, err := net.DialTimeout("tcp", b.backends[i][side], time.Second)
		if err != nil {
			b.ready[i].Store(false)
			continue
		}
		return i, conn
	}
	return -1, nil
}

func (b *balancer) serve(side int, client net.Conn) {
	defer client.Close()
	i, server := b.dial(side)
	if server == nil {
		return
	}
	defer server.Close()
	c := &balancedConn{side: side, client: client.RemoteAddr().String(), backend: i, opened: time.Now()}
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.mu.Unlock()
	toServer := io.Writer(server)
	if side == sideHTTP { // recorded before it is sent
		toServer = io.MultiWriter(&requestLines{b: b, backend: i}, server)
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(toServer, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
	b.mu.Lock()
	c.closed = time.Now()
	b.mu.Unlock()
}

// requestLines records the request lines written through it.
type requestLines struct {
	b       *balancer
	backend int
	partial []byte
}

var requestLine = regexp.MustCompile(`^[A-Z]+ \S+ HTTP/1\.[01]$`)

func (r *requestLines) Write(p []byte) (int, error) {
	r.partial = append(r.partial, p...)
	for {
		line, rest, ok := strings.Cut(string(r.partial), "\n")
		if !ok {
			return len(p), nil
		}
		r.partial = []byte(rest)
		if line = strings.TrimSuffix(line, "\r"); requestLine.MatchString(line) {
			r.b.mu.Lock()
			r.b.requests = append(r.b.requests, seenRequest{time.Now(), r.backend, line})
			r.b.mu.Unlock()
		}
	}
}

// probeScrapes returns the /probe requests for key seen after since.
func (b *balancer) probeScrapes(key string, since time.Time) []seenRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []seenRequest
	for _, r := range b.requests {
		path := strings.Fields(r.line)[1]
		if u, err := url.Parse(path); err == nil && u.Path == "/probe" && u.Query().Get("key") == key && r.at.After(since) {
			out = append(out, r)
		}
	}
	return out
}

// lastProbeBackend returns the backend of the last /probe request.
func (b *balancer) lastProbeBackend() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.requests) - 1; i >= 0; i-- {
		if strings.HasPrefix(b.requests[i].line, "GET /probe?") {
			return b.requests[i].backend
		}
	}
	return -1
}

// openBetween returns the connections on side to backend opened between
// from and to and still open at (any, at the zero time).
func (b *balancer) openBetween(side, backend int, from, to, at time.Time) []balancedConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []balancedConn
	for _, c := range b.conns {
		if c.side == side && c.backend == backend && !c.opened.Before(from) && !c.opened.After(to) && (c.closed.IsZero() || c.closed.After(at)) {
			out = append(out, *c)
		}
	}
	return out
}

// conn returns the first connection on side from client opened after
// since: that of a request from client sent at since.
func (b *balancer) conn(side int, client string, since time.Time) (balancedConn, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		if c.side == side && c.client == client && c.opened.After(since) {
			return *c, true
		}
	}
	return balancedConn{}, false
}

// traffic is an application's requests for a key through the balancer,
// each on a connection of its own: the balancer balances connections, so
// a client that kept its connection would send every request to one
// replica, and a replica's readiness would move none of them.
type traffic struct {
	wg      sync.WaitGroup
	stopped chan struct{}

	mu      sync.Mutex
	results []appResult
}

type appResult struct {
	stream     bool
	client     string // the local address of its connection; "" without one
	start, end time.Time
	status     int
	err        string // "": it succeeded (any status below 500)
}

func (r appResult) String() string {
	kind := "request"
	if r.stream {
		kind = "stream"
	}
	return fmt.Sprintf("%s from %s, %s to %s: %s", kind, r.client, r.start.Format(timeOfDay), r.end.Format(timeOfDay), r.err)
}

func (c balancedConn) String() string {
	closed := "open"
	if !c.closed.IsZero() {
		closed = "closed " + c.closed.Format(timeOfDay)
	}
	return fmt.Sprintf("connection from %s to replica %d, opened %s, %s", c.client, c.backend, c.opened.Format(timeOfDay), closed)
}

const timeOfDay = "15:04:05.000"

// startTraffic sends key's requests to url: 3 clients a request each
// 300ms, 3 others a stream each and 100ms between.
func startTraffic(t *testing.T, url, key string) *traffic {
	a := &traffic{stopped: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 6 {
		stream, pause := i >= 3, 300*time.Millisecond
		if stream {
			pause = 100 * time.Millisecond
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for {
				a.send(client, url, key, stream)
				select {
				case <-a.stopped:
					return
				case <-time.After(pause):
				}
			}
		}()
	}
	t.Cleanup(a.stop)
	return a
}

func (a *traffic) send(client *http.Client, url, key string, stream bool) {
	r := appResult{stream: stream, start: time.Now()}
	defer func() {
		r.end = time.Now()
		a.mu.Lock()
		a.results = append(a.results, r)
		a.mu.Unlock()
	}()
	body := fmt.Sprintf(`{"model":"llama3.1-8b","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":1,"stream":%t}`, stream)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", appAgent)
	var local string
	req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { local = info.Conn.LocalAddr().String() },
	}))
	resp, err := client.Do(req)
	r.client = local
	if err != nil {
		r.err = err.Error()
		return
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	got, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		r.err = fmt.Sprintf("HTTP %d, reading the body: %v", resp.StatusCode, err)
	case resp.StatusCode >= 500:
		r.err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, got)
	case stream && resp.StatusCode == http.StatusOK && !strings.Contains(string(got), "data: [DONE]"):
		r.err = "the stream ended before [DONE]"
	}
}

// stop ends the traffic, letting the requests under way finish.
func (a *traffic) stop() {
	select {
	case <-a.stopped:
	default:
		close(a.stopped)
	}
	a.wg.Wait()
}

func (a *traffic) failures() []appResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []appResult
	for _, r := range a.results {
		if r.err != "" {
			out = append(out, r)
		}
	}
	return out
}

// resultOf returns the result of the request on the connection from client.
func (a *traffic) resultOf(client string) (appResult, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.results) - 1; i >= 0; i-- {
		if a.results[i].client == client {
			return a.results[i], true
		}
	}
	return appResult{}, false
}

// succeededOn counts the requests answered by backend that started after since.
func (a *traffic) succeededOn(b *balancer, backend int, since time.Time) int {
	a.mu.Lock()
	results := append([]appResult(nil), a.results...)
	a.mu.Unlock()
	n := 0
	for _, r := range results {
		if r.err == "" && r.start.After(since) {
			if c, ok := b.conn(sideProxy, r.client, r.start); ok && c.backend == backend {
				n++
			}
		}
	}
	return n
}

// nearlyExhausted waits until the query low has as many series as
// replicas and every rule group has run since, and returns the
// RateLimitNearlyExhausted alerts then.
func nearlyExhausted(t *testing.T, prom *prometheusServer, low string, replicas int) []activeAlert {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%d replicas' readings low", replicas), func() error {
		got, err := prom.query(t, low)
		if err == nil && len(got) != replicas {
			err = fmt.Errorf("%d: %v", len(got), got)
		}
		return err
	})
	lowAt := time.Now()
	eventually(t, 30*time.Second, "every rule group evaluated since", func() error {
		return prom.evaluatedSince(t, lowAt.Add(3*time.Second))
	})
	var out []activeAlert
	for _, a := range prom.alerts(t) {
		if a.Labels["alertname"] == "RateLimitNearlyExhausted" {
			out = append(out, a)
		}
	}
	return out
}

// evaluatedSince checks that every rule group last ran after at.
func (p *prometheusServer) evaluatedSince(t *testing.T, at time.Time) error {
	t.Helper()
	var data struct {
		Groups []struct {
			Name           string    `json:"name"`
			LastEvaluation time.Time `json:"lastEvaluation"`
		} `json:"groups"`
	}
	if err := p.api(t, "/api/v1/rules", nil, &data); err != nil {
		return err
	}
	for _, g := range data.Groups {
		if g.LastEvaluation.Before(at) {
			return fmt.Errorf("group %s last ran at %s", g.Name, g.LastEvaluation)
		}
	}
	return nil
}
