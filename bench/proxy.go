package main

// The proxy's figures (issue 10): the built exporter with a proxy block
// routing /bench/ to an upstream served by this process on loopback, next
// to a direct call to the same upstream and a bare httputil.ReverseProxy,
// both in this process (as the issue asks) and in a process of its own (as
// the exporter is, so that the cost of crossing processes falls on both),
// in the same run. `go run ./bench -only=proxy` runs this part alone.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

const (
	proxyKeys  = 10            // keys in the exporter's config, probed against the simulator
	proxyModel = "llama3.1-8b" // the model of the proxied requests
	// The latency figures: requests each way after warm-up.
	latencyWarmup, latencyRequests = 500, 5000
	// The stream figures: rounds of streamsPerPath streams each way at once,
	// each of streamChunks chunks streamEvery apart.
	streamRounds, streamsPerPath, streamChunks, streamEvery = 10, 4, 50, 20 * time.Millisecond
	// The throughput figures: rounds of throughputFor each way, alternated.
	throughputClients, throughputRounds, throughputFor = 64, 3, 3 * time.Second
	openStreams                                        = 1000
)

// The ways to the upstream, each a base URL to which the upstream's paths
// ("/v1/chat/completions", ...) are appended.
const (
	viaDirect         = iota
	viaExporter       // the exporter's proxy, route /bench/
	viaBare           // httputil.NewSingleHostReverseProxy, FlushInterval -1, in this process
	viaBareApart      // the same in a process of its own, as the exporter is
	viaBareTuned      // in this process, with 256 idle connections per host, as the exporter's proxy keeps
	viaBareApartTuned // the same in a process of its own
	vias
)

type proxyTargets [vias]string

var viaNames = [vias]string{"direct", "exporter's proxy", "bare ReverseProxy in bench", "bare ReverseProxy, own process",
	"bare ReverseProxy in bench, 256 idle conns/host", "bare ReverseProxy, own process, 256 idle conns/host"}

// The bare reverse proxy in a process of its own is this program, started
// again with these variables set: it serves and does nothing else.
const (
	bareProxyEnv      = "BENCH_BARE_PROXY_UPSTREAM"
	bareProxyTunedEnv = "BENCH_BARE_PROXY_TUNED"
)

func init() {
	upstreamURL := os.Getenv(bareProxyEnv)
	if upstreamURL == "" {
		return
	}
	target, err := url.Parse(upstreamURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: bare proxy:", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: bare proxy:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "msg=\"Listening on\" address=%s\n", l.Addr())
	srv := &http.Server{Handler: bareProxy(target, os.Getenv(bareProxyTunedEnv) != ""), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "bench: bare proxy:", srv.Serve(l))
	os.Exit(1)
}

// bareProxy is the reference: a ReverseProxy with Go's defaults and every
// write flushed; tuned, with a connection pool the size of the exporter's
// proxy's (Go's default transport keeps 2 idle connections per host).
func bareProxy(target *url.URL, tuned bool) *httputil.ReverseProxy {
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	if tuned {
		rp.Transport = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
	}
	return rp
}

func startBareProxy(upstreamURL string, tuned bool) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), bareProxyEnv+"="+upstreamURL)
	if tuned {
		cmd.Env = append(cmd.Env, bareProxyTunedEnv+"=1")
	}
	return startProcess(cmd, listening)
}

func runProxy() error {
	// 1,000 streams hold two connections each in this process (client and
	// upstream) and two in the exporter, which inherits the limit.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
		}
	}
	if lim.Cur < 4*openStreams+1000 {
		return fmt.Errorf("RLIMIT_NOFILE is %d, the hard limit; %d open streams need at least %d", lim.Cur, openStreams, 4*openStreams+1000)
	}

	// The simulator answers the exporter's own probes.
	s, err := newSetup(proxyKeys)
	if err != nil {
		return err
	}
	defer s.close()
	dir, exporterBin, simURL, key := s.dir, s.exporter, s.simURL, benchKey

	// The upstream of every way.
	epoch := time.Now()
	up := &upstream{epoch: epoch}
	upURL, stopUp, err := serve(up.handler())
	if err != nil {
		return err
	}
	defer stopUp()
	target, _ := url.Parse(upURL)

	var t proxyTargets
	t[viaDirect] = upURL
	for _, via := range []int{viaBare, viaBareTuned} {
		u, stop, err := serve(bareProxy(target, via == viaBareTuned))
		if err != nil {
			return err
		}
		defer stop()
		t[via] = u
	}
	for _, via := range []int{viaBareApart, viaBareApartTuned} {
		p, err := startBareProxy(upURL, via == viaBareApartTuned)
		if err != nil {
			return err
		}
		defer p.stop()
		t[via] = p.url
	}

	proxyAddr, err := testkit.LoopbackAddr()
	if err != nil {
		return err
	}
	cfg, err := writeProxyConfig(dir, simURL+"/v1", proxyAddr, upURL, key)
	if err != nil {
		return err
	}
	e, err := startExporter(exporterBin, cfg)
	if err != nil {
		return err
	}
	defer e.stop()
	t[viaExporter] = "http://" + proxyAddr + "/bench"
	auth := "Bearer " + key(0)

	fmt.Printf("\nproxy: %s/%s, %d CPUs, %s. Upstream, clients and the bare ReverseProxy \"in bench\" in this process;\n"+
		"the exporter and the bare ReverseProxy \"own process\" each in its own; all on loopback.\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())

	lat, err := measureLatency(t, auth)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	str, cut, err := measureStreams(t, auth, epoch)
	if err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	thr, err := measureThroughput(t, auth)
	if err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	recorded, err := proxyObservations(e.url)
	if err != nil {
		return err
	}
	held, err := measureOpenStreams(e, t, auth, up)
	if err != nil {
		return fmt.Errorf("open streams: %w", err)
	}

	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	row := func(figure, exporter, bare, bareApart, direct, target, result string) {
		fmt.Printf("%-46s %12s %14s %17s %10s %11s  %s\n", figure, exporter, bare, bareApart, direct, target, result)
	}
	fmt.Println()
	row("figure", "exporter", "bare, in bench", "bare, own process", "direct", "target", "result")
	added := func(s [vias]spread, via int) (p50, p99 time.Duration) {
		return s[via].p50 - s[viaDirect].p50, s[via].p99 - s[viaDirect].p99
	}
	e50, e99 := added(lat, viaExporter)
	b50, b99 := added(lat, viaBare)
	a50, a99 := added(lat, viaBareApart)
	row(fmt.Sprintf("1 KB response, added over direct, p50 (%dx)", latencyRequests), ms3(e50), ms3(b50), ms3(a50), "", "<= 0.300 ms", verdict(e50 <= 300*time.Microsecond))
	row("  p99", ms3(e99), ms3(b99), ms3(a99), "", "<= 1.000 ms", verdict(e99 <= time.Millisecond))
	row("  round trip, p50", ms3(lat[viaExporter].p50), ms3(lat[viaBare].p50), ms3(lat[viaBareApart].p50), ms3(lat[viaDirect].p50), "", "")
	row("  round trip, p99", ms3(lat[viaExporter].p99), ms3(lat[viaBare].p99), ms3(lat[viaBareApart].p99), ms3(lat[viaDirect].p99), "", "")
	_, se99 := added(str, viaExporter)
	_, sb99 := added(str, viaBare)
	_, sa99 := added(str, viaBareApart)
	row(fmt.Sprintf("stream chunk, added over direct, p99 (%dx)", str[viaExporter].n), ms3(se99), ms3(sb99), ms3(sa99), "", "<= 1.000 ms", verdict(se99 <= time.Millisecond))
	row("  upstream write to client read, p50", ms3(str[viaExporter].p50), ms3(str[viaBare].p50), ms3(str[viaBareApart].p50), ms3(str[viaDirect].p50), "", "")
	row("  upstream write to client read, p99", ms3(str[viaExporter].p99), ms3(str[viaBare].p99), ms3(str[viaBareApart].p99), ms3(str[viaDirect].p99), "", "")
	rps := func(via int) string { return fmt.Sprintf("%.0f/s", thr[via]) }
	ratio := func(via int) string { return fmt.Sprintf("%.2fx", thr[viaExporter]/thr[via]) }
	ok := func(via int) string { return verdict(thr[viaExporter]/thr[via] >= 0.9) }
	row(fmt.Sprintf("throughput, %d clients, 1 KB", throughputClients), rps(viaExporter), rps(viaBare), rps(viaBareApart), rps(viaDirect), "", "")
	row("  exporter / bare", "", ratio(viaBare), ratio(viaBareApart), "", ">= 0.90x", ok(viaBare)+" / "+ok(viaBareApart))
	row("  bare with 256 idle conns/host", "", rps(viaBareTuned), rps(viaBareApartTuned), "", "", "")
	row("  exporter / bare with 256 idle conns/host", "", ratio(viaBareTuned), ratio(viaBareApartTuned), "", ">= 0.90x", ok(viaBareTuned)+" / "+ok(viaBareApartTuned))
	row(fmt.Sprintf("RSS, %d streams open (%.1f MB before)", openStreams, held.rssBefore), fmt.Sprintf("%.1f MB", held.rss), "", "", "", "<= 128 MB", verdict(held.rss <= 128))
	row(fmt.Sprintf("/metrics, %d streams open, slowest of %d", openStreams, len(held.scrapes)), ms(held.scrapeMax), "", "", "", "<= 100 ms", verdict(held.scrapeMax <= 100*time.Millisecond))
	row("  median", ms(held.scrapeP50), "", "", "", "", "")
	fmt.Printf("\nStream chunks read by the %d open streams while measured: %d. Observations recorded from proxied responses: %.0f.\n",
		openStreams, held.chunks, recorded)
	fmt.Println("Throughput results: against the bare ReverseProxy in this process / in its own process.")
	fmt.Printf("Streams the bare ReverseProxy cut after their first chunk (golang/go#40747; their chunks kept): %d of %d in bench, %d of %d in its own process.\n",
		cut[viaBare], streamRounds*streamsPerPath, cut[viaBareApart], streamRounds*streamsPerPath)
	return nil
}

func ms3(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func writeProxyConfig(dir, baseURL, proxyAddr, upstreamURL string, key func(int) string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "probe:\n  mode: interval\n  interval: 1m\n  min_interval: 1m\n  timeout: 30s\n  max_quota_share: 1\nkeys:\n")
	for i := range proxyKeys {
		fmt.Fprintf(&b, "  - {name: key-%04d, api_key: %s, base_url: %q, models: [%s], labels: {team: search}}\n",
			i, key(i), baseURL, strings.Join(models, ", "))
	}
	fmt.Fprintf(&b, "proxy:\n  listen_address: %q\n  routes:\n    - {path_prefix: /bench/, upstream: %q, provider: cerebras}\n  unknown_keys: forward\n",
		proxyAddr, upstreamURL)
	return testkit.WriteFile(dir, "proxy.yml", b.String())
}

// upstream answers as an LLM API would, from this process: a 1 KB JSON
// completion with rate-limit headers, a stream of timestamped chunks, and
// streams held open.
type upstream struct {
	epoch time.Time
	held  atomic.Int64 // /v1/hold streams open
}

// completion is a chat completion of exactly 1,024 bytes.
var completion = func() []byte {
	head := `{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"llama3.1-8b",` +
		`"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"`
	tail := `"}}],"usage":{"prompt_tokens":12,"completion_tokens":200,"total_tokens":212}}`
	return []byte(head + strings.Repeat("x", 1024-len(head)-len(tail)) + tail)
}()

func rateLimitHeaders(h http.Header) {
	h.Set("x-ratelimit-limit-requests-day", "14400")
	h.Set("x-ratelimit-remaining-requests-day", "14399")
	h.Set("x-ratelimit-reset-requests-day", "33011.382867097855")
	h.Set("x-ratelimit-limit-tokens-minute", "60000")
	h.Set("x-ratelimit-remaining-tokens-minute", "59788")
	h.Set("x-ratelimit-reset-tokens-minute", "11.382867097855")
}

// now is the time since epoch: the timestamp in a chunk, on this
// process's monotonic clock.
func (u *upstream) now() time.Duration { return time.Since(u.epoch) }

func (u *upstream) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		rateLimitHeaders(h)
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(completion)))
		_, _ = w.Write(completion)
	})
	// /v1/stream: streamChunks chunks streamEvery apart, each carrying the
	// time it was written.
	mux.HandleFunc("POST /v1/stream", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.sseHeaders(w)
		start := time.Now()
		for i := range streamChunks {
			if wait := time.Until(start.Add(time.Duration(i) * streamEvery)); wait > 0 {
				time.Sleep(wait)
			}
			if u.chunk(w, i) != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	// /v1/hold: a chunk every second until the client leaves.
	mux.HandleFunc("POST /v1/hold", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.held.Add(1)
		defer u.held.Add(-1)
		u.sseHeaders(w)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			if u.chunk(w, i) != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	})
	return mux
}

func (u *upstream) sseHeaders(w http.ResponseWriter) {
	h := w.Header()
	rateLimitHeaders(h)
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

// chunk writes one SSE event of about 200 bytes, as a streamed completion's
// delta, stamped with the time of writing, and flushes it.
func (u *upstream) chunk(w http.ResponseWriter, i int) error {
	_, err := fmt.Fprintf(w, `data: {"t":%d,"i":%d,"object":"chat.completion.chunk","model":"llama3.1-8b","choices":[{"index":0,"delta":{"content":"%s"}}]}`+"\n\n",
		u.now(), i, strings.Repeat("y", 64))
	if err == nil {
		err = http.NewResponseController(w).Flush()
	}
	return err
}

// chunkTime is the timestamp of an SSE data line written by chunk.
func chunkTime(line []byte) (time.Duration, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`data: {"t":`))
	if !ok {
		return 0, false
	}
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	t, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return time.Duration(t), err == nil
}

func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

func chatRequest(ctx context.Context, base, path, auth string, stream bool) *http.Request {
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Say hello in one sentence."}],"max_tokens":200,"stream":%t}`, proxyModel, stream)
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// call sends one 1 KB completion request and reads the answer whole.
func call(c *http.Client, base, auth string) error {
	resp, err := c.Do(chatRequest(context.Background(), base, "/v1/chat/completions", auth, false))
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return err
	case resp.StatusCode != http.StatusOK || n != int64(len(completion)):
		return fmt.Errorf("POST %s: %s, %d bytes", base, resp.Status, n)
	}
	return nil
}

type spread struct {
	p50, p99 time.Duration
	n        int // samples
}

func spreadOf(ds []time.Duration) spread {
	p50, p99 := percentiles(ds)
	return spread{p50: p50, p99: p99, n: len(ds)}
}

// measureLatency times sequential 1 KB requests on kept-alive connections,
// direct, through the exporter and through the bare proxies, in turn (the
// order rotating), so that whatever else the machine does falls on all.
func measureLatency(t proxyTargets, auth string) ([vias]spread, error) {
	var figures [vias]spread
	c := newClient(4)
	ways := []int{viaDirect, viaExporter, viaBare, viaBareApart}
	var times [vias][]time.Duration
	for i := range latencyWarmup + latencyRequests {
		for j := range ways {
			via := ways[(i+j)%len(ways)]
			start := time.Now()
			if err := call(c, t[via], auth); err != nil {
				return figures, err
			}
			if i >= latencyWarmup {
				times[via] = append(times[via], time.Since(start))
			}
		}
	}
	for _, via := range ways {
		figures[via] = spreadOf(times[via])
	}
	return figures, nil
}

// measureStreams opens streamsPerPath streams each way at once, their
// starts spread over one chunk interval, streamRounds times, and takes for
// every chunk the time from the upstream's writing it to the client's
// reading it.
//
// The bare ReverseProxy cuts some streams after their first chunk: its
// transport reads the request body once more after Content-Length bytes,
// the server has closed that body when the response headers were flushed,
// and the failed read tears down the upstream connection (golang/go#40747).
// Those streams are counted, their chunks kept, and the run goes on; the
// exporter's proxy reads the body whole before forwarding it, and any
// stream of its that ends early is an error.
func measureStreams(t proxyTargets, auth string, epoch time.Time) (figures [vias]spread, cut [vias]int, err error) {
	ways := []int{viaDirect, viaExporter, viaBare, viaBareApart}
	c := newClient(len(ways) * streamsPerPath)
	var delays [vias][]time.Duration
	var mu sync.Mutex
	for range streamRounds {
		n := len(ways) * streamsPerPath
		errs := make(chan error, n)
		for s := range n {
			via := ways[s%len(ways)]
			go func() {
				time.Sleep(time.Duration(s) * streamEvery / time.Duration(n))
				d, err := readStream(c, t[via], auth, epoch)
				mu.Lock()
				defer mu.Unlock()
				delays[via] = append(delays[via], d...)
				if err != nil && (via == viaBare || via == viaBareApart) && errors.Is(err, io.ErrUnexpectedEOF) {
					cut[via]++
					err = nil
				}
				if err != nil {
					err = fmt.Errorf("%s: %w", viaNames[via], err)
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				return figures, cut, err
			}
		}
	}
	for _, via := range ways {
		figures[via] = spreadOf(delays[via])
	}
	return figures, cut, nil
}

func readStream(c *http.Client, base, auth string, epoch time.Time) ([]time.Duration, error) {
	resp, err := c.Do(chatRequest(context.Background(), base, "/v1/stream", auth, true))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		return nil, fmt.Errorf("POST %s/v1/stream: %s, %s", base, resp.Status, resp.Header.Get("Content-Type"))
	}
	var delays []time.Duration
	r := bufio.NewReaderSize(resp.Body, 4096)
	for {
		line, err := r.ReadSlice('\n')
		if t, ok := chunkTime(line); ok {
			delays = append(delays, time.Since(epoch)-t)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return delays, fmt.Errorf("POST %s/v1/stream, after %d chunks: %w", base, len(delays), err)
		}
	}
	if len(delays) != streamChunks {
		return nil, fmt.Errorf("POST %s/v1/stream: %d chunks, want %d", base, len(delays), streamChunks)
	}
	return delays, nil
}

// measureThroughput runs throughputClients clients, each sending 1 KB
// requests one after the other, for throughputFor each way in turn,
// throughputRounds times, and gives each way's requests per second.
func measureThroughput(t proxyTargets, auth string) ([vias]float64, error) {
	var rates [vias]float64
	var done [vias]int64
	var spent [vias]time.Duration
	for range throughputRounds {
		for via := range vias {
			c := newClient(throughputClients)
			if _, _, err := load(c, t[via], auth, throughputFor/6); err != nil { // warm-up: connections open
				return rates, err
			}
			n, d, err := load(c, t[via], auth, throughputFor)
			if err != nil {
				return rates, err
			}
			done[via] += n
			spent[via] += d
			c.CloseIdleConnections()
		}
	}
	for via := range vias {
		rates[via] = float64(done[via]) / spent[via].Seconds()
	}
	return rates, nil
}

// load runs throughputClients clients against base for d and returns the
// requests they completed and the time they took.
func load(c *http.Client, base, auth string, d time.Duration) (int64, time.Duration, error) {
	var n atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range throughputClients {
		wg.Go(func() {
			for time.Now().Before(deadline) && firstErr.Load() == nil {
				if err := call(c, base, auth); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		return 0, 0, *err
	}
	return n.Load(), time.Since(start), nil
}

type heldFigures struct {
	rssBefore, rss       float64
	scrapes              []time.Duration
	scrapeP50, scrapeMax time.Duration
	chunks               int64 // read by the held streams while measured
}

// measureOpenStreams opens openStreams streams through the exporter's
// proxy, 100 at a time, each answered by a chunk a second; with all open,
// it reads the exporter's RSS and times /metrics, then closes them.
func measureOpenStreams(e *process, t proxyTargets, auth string, up *upstream) (heldFigures, error) {
	var f heldFigures
	f.rssBefore = rssMB(e.cmd.Process.Pid)
	c := newClient(openStreams)
	ctx, cancel := context.WithCancel(context.Background())
	var chunks atomic.Int64
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		c.CloseIdleConnections()
	}()
	opened := make(chan error, openStreams)
	for i := range openStreams {
		if i%100 == 0 && i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		wg.Go(func() {
			resp, err := c.Do(chatRequest(ctx, t[viaExporter], "/v1/hold", auth, true))
			if err == nil && resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				err = fmt.Errorf("POST /v1/hold: %s", resp.Status)
			}
			if err != nil {
				opened <- err
				return
			}
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			first := true
			for {
				line, err := r.ReadSlice('\n')
				if _, ok := chunkTime(line); ok {
					chunks.Add(1)
					if first {
						opened <- nil
						first = false
					}
				}
				if err != nil {
					if first {
						opened <- err
					}
					return
				}
			}
		})
	}
	timeout := time.After(60 * time.Second)
	for range openStreams {
		select {
		case err := <-opened:
			if err != nil {
				return f, err
			}
		case <-timeout:
			return f, fmt.Errorf("%d streams open after 60s, want %d", up.held.Load(), openStreams)
		}
	}
	if n := up.held.Load(); n != openStreams {
		return f, fmt.Errorf("the upstream holds %d streams, want %d", n, openStreams)
	}
	time.Sleep(3 * time.Second) // every stream has had chunks since
	before := chunks.Load()
	f.rss = rssMB(e.cmd.Process.Pid)
	for range 20 {
		_, d, err := scrape(e.url+"/metrics", 0)
		if err != nil {
			return f, err
		}
		f.scrapes = append(f.scrapes, d)
		time.Sleep(150 * time.Millisecond)
	}
	f.rss = max(f.rss, rssMB(e.cmd.Process.Pid))
	f.chunks = chunks.Load() - before
	if n := up.held.Load(); n != openStreams {
		return f, fmt.Errorf("while measured, the upstream's open streams fell to %d", n)
	}
	f.scrapeP50, _ = percentiles(f.scrapes)
	for _, d := range f.scrapes {
		f.scrapeMax = max(f.scrapeMax, d)
	}
	return f, nil
}

// proxyObservations is the sum of ratelimit_observations_total{source="proxy"}.
func proxyObservations(exporterURL string) (float64, error) {
	body, _, err := scrape(exporterURL+"/metrics", 0)
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "ratelimit_observations_total{") && strings.Contains(line, `source="proxy"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += v
		}
	}
	return sum, nil
}
