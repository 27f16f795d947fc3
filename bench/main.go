// Command bench measures the built exporter against the simulator, and
// blackbox_exporter doing the same probe, and prints the figures side by
// side, then the multi-target endpoints' figures (targets.go) and the
// proxy's (proxy.go). Run it with `make bench`; `go run ./bench -only=proxy`
// or `-only=targets` runs one part alone. Every server it starts listens on
// loopback.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

var models = []string{"llama3.1-8b", "llama-3.3-70b", "qwen-3-32b"}

func main() {
	only := flag.String("only", "", `run only one part, which needs no blackbox_exporter: "metrics" (/metrics and memory at 1,000 keys x 3 models), "proxy" (the proxy's figures) or "targets" (/sd and /probe)`)
	flag.Parse()
	var err error
	switch *only {
	case "":
		if err = run(); err == nil {
			if err = runTargets(); err == nil {
				err = runProxy()
			}
		}
	case "metrics":
		err = runMetrics()
	case "proxy":
		err = runProxy()
	case "targets":
		err = runTargets()
	default:
		err = fmt.Errorf("-only %q: the parts are metrics, proxy and targets", *only)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// benchKey is the simulator's key number i.
func benchKey(i int) string { return fmt.Sprintf("sk-bench-%04d", i) }

// setup is what every part starts from: a scratch directory, the exporter
// built into it, and the simulator serving keys benchKey(0) to
// benchKey(keys-1), each with room for any load.
type setup struct {
	dir, exporter, simURL string
	sim                   *simulator.Simulator
	close                 func()
}

func newSetup(keys int) (*setup, error) {
	dir, err := os.MkdirTemp("", "ratelimit-bench")
	if err != nil {
		return nil, err
	}
	// The image's binary: built by the Dockerfile's make build, as released.
	exporter, err := testkit.Build(dir, nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sim := simulator.New(models...)
	simURL, stopSim, err := serve(sim)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	big := simulator.Limits{"requests": {"minute": 1e6, "day": 1e9}, "tokens": {"minute": 1e9, "day": 1e12}}
	for i := range keys {
		sim.AddKey(benchKey(i), big)
	}
	return &setup{dir: dir, exporter: exporter, simURL: simURL, sim: sim, close: func() {
		stopSim()
		os.RemoveAll(dir)
	}}, nil
}

// runMetrics is part 1 alone.
func runMetrics() error {
	s, err := newSetup(1000)
	if err != nil {
		return err
	}
	defer s.close()
	m, err := measureMetrics(s.exporter, s.dir, s.simURL, benchKey)
	if err != nil {
		return err
	}
	fmt.Printf("machine: %s/%s, %d CPUs, %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	fmt.Printf("%-58s %14s %14s %8s %s\n", "measure", "exporter", "reference", "ratio", "target")
	m.print()
	return nil
}

func run() error {
	blackbox, err := exec.LookPath("prometheus-blackbox-exporter")
	if err != nil {
		return fmt.Errorf("prometheus-blackbox-exporter is not installed: apt-get install prometheus-blackbox-exporter")
	}
	s, err := newSetup(1000)
	if err != nil {
		return err
	}
	defer s.close()
	dir, exporterBin, sim, simURL, key := s.dir, s.exporter, s.sim, s.simURL, benchKey

	fmt.Printf("machine: %s/%s, %d CPUs, %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())

	// 0. Start: 1,000 keys x 3 models in interval mode behind a 100ms
	// upstream, probe.concurrency 16: how soon every key, and every key and
	// model, has series; connections to the upstream and open files.
	sim.SetLatency(100 * time.Millisecond)
	start, err := measureStart(exporterBin, dir, simURL, key)
	if err != nil {
		return err
	}
	sim.SetLatency(0)

	// 1. /metrics at 1,000 keys x 3 models against the same bytes from a static file handler.
	m, err := measureMetrics(exporterBin, dir, simURL, key)
	if err != nil {
		return err
	}

	// 2. One scrape-mode scrape of 200 keys behind a 100ms upstream.
	sim.SetLatency(100 * time.Millisecond)
	cfg, err := writeConfig(dir, "scrape.yml", "scrape", "1h", simURL+"/v1", 200, models[:1], key)
	if err != nil {
		return err
	}
	e2, err := startExporter(exporterBin, cfg)
	if err != nil {
		return err
	}
	defer e2.stop()
	_, scrapeTime, err := scrape(e2.url+"/metrics", 10)
	if err != nil {
		return err
	}
	e2.stop()
	sim.SetLatency(0)

	// 3. CPU per probe: the exporter probing 100 targets every second,
	// scraped with gzip every second so that each probe's result is
	// rendered and compressed once, as a scrape renders them; and
	// blackbox_exporter sent the same POST by as many /probe requests.
	if cfg, err = writeConfig(dir, "cpu.yml", "interval", "1s", simURL+"/v1", 100, models[:1], key); err != nil {
		return err
	}
	e3, err := startExporter(exporterBin, cfg)
	if err != nil {
		return err
	}
	defer e3.stop()
	time.Sleep(2 * time.Second) // past the first, spread round
	before, cpuBefore := sim.Requests(), cpuSeconds(e3.cmd.Process.Pid)
	for range 20 {
		time.Sleep(time.Second)
		if _, _, err := scrapeBytes(e3.url+"/metrics", true); err != nil {
			return err
		}
	}
	exporterProbes, exporterCPU := sim.Requests()-before, cpuSeconds(e3.cmd.Process.Pid)-cpuBefore
	e3.stop()

	bb, err := startBlackbox(blackbox, dir, key(0))
	if err != nil {
		return err
	}
	defer bb.stop()
	probeURL := bb.url + "/probe?module=cerebras&target=" + simURL + "/v1/chat/completions"
	if _, _, err := scrape(probeURL, 0); err != nil {
		return err
	}
	cpuBefore = cpuSeconds(bb.cmd.Process.Pid)
	blackboxProbes := exporterProbes
	if err := probeConcurrently(probeURL, blackboxProbes, 16); err != nil {
		return err
	}
	blackboxCPU := cpuSeconds(bb.cmd.Process.Pid) - cpuBefore

	fmt.Printf("%-58s %14s %14s %8s %s\n", "measure", "exporter", "reference", "ratio", "target")
	m.print()
	fmt.Printf("%-58s %14s %14s %8s %s\n", "start, 100ms upstream: every key has series", secs(start.everyKey), "", "", "within 10s")
	fmt.Printf("%-58s %14s %14s %8s\n", "  every key and model has series", secs(start.everyTarget), "", "")
	fmt.Printf("%-58s %14d %14s %8s %s\n", "  most connections open to the upstream at once", start.maxConns, "", "", "at most 32")
	fmt.Printf("%-58s %14d %14s %8s\n", "  open file descriptors after the first round", start.fds, "", "")
	fmt.Printf("%-58s %11.1f MB %14s %8s\n", "  RSS after the first round", start.rss, "", "")
	fmt.Printf("%-58s %14s %14s %8s %s\n", "scrape-mode scrape, 200 keys, 100ms upstream, concurrency 16", ms(scrapeTime), "", "", "under 2s")
	perExporter := exporterCPU / float64(exporterProbes) * 1e6
	perBlackbox := blackboxCPU / float64(blackboxProbes) * 1e6
	fmt.Printf("%-58s %11.0f µs %11.0f µs %7.2fx %s\n", fmt.Sprintf("CPU per probe (%d probes each; reference: blackbox_exporter)", exporterProbes),
		perExporter, perBlackbox, perExporter/perBlackbox, "at most 0.5x blackbox_exporter")
	return nil
}

// metricsFigures are part 1's: /metrics and a static file, each served
// plain and gzipped, and the exporter's memory.
type metricsFigures struct {
	textBytes                                                      int
	exporterTimes, staticTimes, exporterGzipTimes, staticGzipTimes []time.Duration
	gzipBody, staticGzipBody                                       int
	rss, rssAnon, rssFile                                          float64
}

// measureMetrics serves /metrics at 1,000 keys x 3 models, plain and
// gzipped, beside the same bytes from a static file handler.
func measureMetrics(exporterBin, dir, simURL string, key func(int) string) (m metricsFigures, err error) {
	cfg, err := writeConfig(dir, "big.yml", "scrape", "1h", simURL+"/v1", 1000, models, key)
	if err != nil {
		return m, err
	}
	e, err := startExporter(exporterBin, cfg)
	if err != nil {
		return m, err
	}
	defer e.stop()
	body, _, err := scrape(e.url+"/metrics", 60)
	if err != nil {
		return m, err
	}
	if n := strings.Count(body, "\nratelimit_probe_success{"); n != 3000 {
		return m, fmt.Errorf("after the first scrape %d targets have probe_success, want 3000", n)
	}
	// Interval mode with 1h: the values stay, probes are rare, as between probe rounds.
	if _, err := writeConfig(dir, "big.yml", "interval", "1h", simURL+"/v1", 1000, models, key); err != nil {
		return m, err
	}
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return m, err
	}
	time.Sleep(time.Second)
	body, _, err = scrape(e.url+"/metrics", 0)
	if err != nil {
		return m, err
	}
	static := filepath.Join(dir, "metrics.txt")
	if err := os.WriteFile(static, []byte(body), 0o600); err != nil {
		return m, err
	}
	// The same bytes gzipped once, at the default level, as Prometheus
	// asks for them: what a scrape costs when it only sends bytes.
	var gzipped bytes.Buffer
	zw := gzip.NewWriter(&gzipped)
	if _, err := zw.Write([]byte(body)); err != nil {
		return m, err
	}
	if err := zw.Close(); err != nil {
		return m, err
	}
	staticURL, stopStatic, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if r.URL.Path == "/metrics.txt.gz" {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(gzipped.Len()))
			_, _ = w.Write(gzipped.Bytes())
			return
		}
		http.ServeFile(w, r, static)
	}))
	if err != nil {
		return m, err
	}
	defer stopStatic()
	// Alternate the four, in an order shuffled each round, so that
	// whatever else the machine does, and whatever the scrape before left
	// behind, falls on each alike: a connection left idle while another
	// carried 15 MB answers its next scrape of more than ten 64 KiB
	// segments only after the client's delayed ACK, some 30 ms on
	// loopback, and in a fixed order the same two scrapes would always pay.
	const rounds = 300
	var exporterTimes, staticTimes, exporterGzipTimes, staticGzipTimes []time.Duration
	var gzipBody int
	type target struct {
		url   string
		gzip  bool
		times *[]time.Duration
	}
	targets := []target{
		{e.url + "/metrics", false, &exporterTimes}, {staticURL + "/metrics.txt", false, &staticTimes},
		{e.url + "/metrics", true, &exporterGzipTimes}, {staticURL + "/metrics.txt.gz", true, &staticGzipTimes},
	}
	shuffle := rand.New(rand.NewPCG(22, 22))
	for range rounds {
		shuffle.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		for _, target := range targets {
			n, d, err := scrapeBytes(target.url, target.gzip)
			if err != nil {
				return m, err
			}
			if target.gzip && target.url == e.url+"/metrics" {
				gzipBody = n
			}
			*target.times = append(*target.times, d)
		}
	}
	rss, rssAnon, rssFile := rssMB(e.cmd.Process.Pid), statusMB(e.cmd.Process.Pid, "RssAnon"), statusMB(e.cmd.Process.Pid, "RssFile")
	if os.Getenv("BENCH_MEMSTATS") != "" {
		mem, _, _ := scrape(e.url+"/metrics", 0)
		for _, line := range strings.Split(mem, "\n") {
			if strings.HasPrefix(line, "go_memstats_") || strings.HasPrefix(line, "go_gc_gogc") || strings.HasPrefix(line, "go_goroutines") {
				fmt.Fprintln(os.Stderr, line)
			}
		}
	}
	m.textBytes, m.staticGzipBody = len(body), gzipped.Len()
	m.exporterTimes, m.staticTimes, m.exporterGzipTimes, m.staticGzipTimes, m.gzipBody = exporterTimes, staticTimes, exporterGzipTimes, staticGzipTimes, gzipBody
	m.rss, m.rssAnon, m.rssFile = rss, rssAnon, rssFile
	return m, nil
}

func (m metricsFigures) print() {
	exporterMedian, exporterP99 := percentiles(m.exporterTimes)
	staticMedian, staticP99 := percentiles(m.staticTimes)
	gzipMedian, gzipP99 := percentiles(m.exporterGzipTimes)
	staticGzipMedian, staticGzipP99 := percentiles(m.staticGzipTimes)
	fmt.Printf("%-58s %14s %14s %7.2fx %s\n", fmt.Sprintf("/metrics at 1,000 keys x 3 models (%.1f MB), identity, median", float64(m.textBytes)/1e6),
		ms(exporterMedian), ms(staticMedian)+" static", float64(exporterMedian)/float64(staticMedian), "within 1.2x of static")
	fmt.Printf("%-58s %14s %14s %7.2fx\n", "  p99", ms(exporterP99), ms(staticP99)+" static", float64(exporterP99)/float64(staticP99))
	fmt.Printf("%-58s %14s %14s %7.2fx %s\n", "/metrics, Accept-Encoding: gzip, median",
		ms(gzipMedian), ms(staticGzipMedian)+" gzipped", float64(gzipMedian)/float64(staticGzipMedian), "within 3x of static gzipped")
	fmt.Printf("%-58s %14s %14s %7.2fx\n", "  p99", ms(gzipP99), ms(staticGzipP99)+" gzipped", float64(gzipP99)/float64(staticGzipP99))
	fmt.Printf("%-58s %11.2f MB %11.2f MB %7.2fx %s\n", "  gzip body (reference: the whole text gzipped at once)",
		float64(m.gzipBody)/1e6, float64(m.staticGzipBody)/1e6, float64(m.gzipBody)/float64(m.staticGzipBody), "at most 2x")
	fmt.Printf("%-58s %11.1f MB %14s %8s %s\n", "RSS at 1,000 keys x 3 models", m.rss, "", "", "at most 32 MB")
	fmt.Printf("%-58s %11.1f MB %14s %8s\n", "  of which anonymous (heap, stacks)", m.rssAnon, "", "")
	fmt.Printf("%-58s %11.1f MB %14s %8s\n", "  of which file-backed (the binary's pages)", m.rssFile, "", "")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

type startFigures struct {
	everyKey, everyTarget time.Duration
	maxConns, fds         int
	rss                   float64
}

// measureStart starts the exporter on 1,000 keys x 3 models and scrapes it
// every 100ms until every key and model has a probe result, sampling the
// connections it holds to the simulator meanwhile.
func measureStart(bin, dir, simURL string, key func(int) string) (startFigures, error) {
	var f startFigures
	cfg, err := writeConfig(dir, "start.yml", "interval", "1m", simURL+"/v1", 1000, models, key)
	if err != nil {
		return f, err
	}
	begin := time.Now()
	e, err := startExporter(bin, cfg)
	if err != nil {
		return f, err
	}
	defer e.stop()
	simPort := simURL[strings.LastIndexByte(simURL, ':')+1:]
	for time.Since(begin) < 60*time.Second {
		f.maxConns = max(f.maxConns, connectionsTo(simPort))
		body, _, err := scrape(e.url+"/metrics", 0)
		if err != nil {
			return f, err
		}
		keys := map[string]bool{}
		targets := 0
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "ratelimit_probe_success{") {
				targets++
				keys[line[strings.Index(line, `key="`)+5:][:8]] = true
			}
		}
		if len(keys) == 1000 && f.everyKey == 0 {
			f.everyKey = time.Since(begin)
		}
		if targets == 3000 {
			f.everyTarget = time.Since(begin)
			f.fds = openFiles(e.cmd.Process.Pid)
			f.rss = rssMB(e.cmd.Process.Pid)
			return f, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return f, fmt.Errorf("not every key and model had series within 60s of start")
}

// connectionsTo counts established TCP connections to port on loopback,
// from /proc/net/tcp: the exporter's to the simulator, as nothing else
// connects to it.
func connectionsTo(port string) int {
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	want := fmt.Sprintf(":%04X", p)
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, _ := os.ReadFile(file)
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 3 && strings.HasSuffix(fields[2], want) && fields[3] == "01" {
				n++
			}
		}
	}
	return n
}

func openFiles(pid int) int {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries)
}

func serve(h http.Handler) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }, nil
}

func writeConfig(dir, name, mode, interval, baseURL string, keys int, models []string, key func(int) string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "probe:\n  mode: %s\n  interval: %s\n  min_interval: %s\n  timeout: 30s\n  max_quota_share: 1\nkeys:\n", mode, interval, interval)
	for i := range keys {
		fmt.Fprintf(&b, "  - {name: key-%04d, api_key: %s, base_url: %q, models: [%s], labels: {team: search}}\n",
			i, key(i), baseURL, strings.Join(models, ", "))
	}
	return testkit.WriteFile(dir, name, b.String())
}

// process is a server bench started; stop ends it with SIGTERM and waits.
type process struct {
	cmd  *exec.Cmd
	url  string
	stop func()
}

var listening = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

// startExporter starts the exporter on a free loopback address and waits
// until it is ready, as the tests do.
func startExporter(bin, cfg string) (*process, error) {
	e, err := testkit.Launch{Binary: bin, Args: []string{"--config.file=" + cfg}, Within: 30 * time.Second}.Start()
	if err != nil {
		return nil, err
	}
	return &process{cmd: e.Cmd, url: e.URL, stop: func() { _ = e.Stop() }}, nil
}

// cerebrasProbe is the body of the exporter's probe of model, so that
// blackbox_exporter sends the same request.
func cerebrasProbe(model string) []byte {
	cerebras, _ := provider.Lookup("cerebras")
	return cerebras.Probe.Request("", model, provider.Options{}).Body
}

func startBlackbox(bin, dir, apiKey string) (*process, error) {
	cfg := filepath.Join(dir, "blackbox.yml")
	module := fmt.Sprintf(`modules:
  cerebras:
    prober: http
    timeout: 5s
    http:
      method: POST
      headers:
        Authorization: "Bearer %s"
        Content-Type: application/json
        User-Agent: blackbox
      body: %q
      valid_status_codes: [200]
      preferred_ip_protocol: ip4
`, apiKey, cerebrasProbe("llama3.1-8b"))
	if err := os.WriteFile(cfg, []byte(module), 0o600); err != nil {
		return nil, err
	}
	addr, err := testkit.LoopbackAddr()
	if err != nil {
		return nil, err
	}
	p, err := startProcess(exec.Command(bin, "--config.file="+cfg, "--web.listen-address="+addr), regexp.MustCompile(`Listening on`))
	if err == nil {
		p.url = "http://" + addr
	}
	return p, err
}

func startProcess(cmd *exec.Cmd, ready *regexp.Regexp) (*process, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return nil, fmt.Errorf("%s exited before listening", cmd.Path)
			}
			if m := ready.FindStringSubmatch(line); m != nil {
				p := &process{cmd: cmd, stop: func() {
					if cmd.ProcessState == nil {
						_ = cmd.Process.Signal(syscall.SIGTERM)
						_ = cmd.Wait()
					}
				}}
				if len(m) > 1 {
					p.url = "http://" + m[1]
				}
				go func() {
					for range lines {
					}
				}()
				return p, nil
			}
		case <-timeout:
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("%s did not listen within 30s", cmd.Path)
		}
	}
}

// scrape GETs url uncompressed, with a Prometheus scrape timeout header when timeout > 0.
func scrape(url string, timeout int) (string, time.Duration, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	if timeout > 0 {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.Itoa(timeout))
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), time.Since(start), err
}

// scrapeBytes GETs url with or without gzip, reading the body as sent
// (not inflated), and returns its length and how long the whole exchange
// took.
func scrapeBytes(url string, gzipped bool) (int, time.Duration, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, 0, err
	}
	encoding := "identity"
	if gzipped {
		encoding = "gzip"
	}
	req.Header.Set("Accept-Encoding", encoding)
	start := time.Now()
	resp, err := rawClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return 0, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != gzipped {
		return 0, 0, fmt.Errorf("GET %s with Accept-Encoding %s: Content-Encoding %q", url, encoding, got)
	}
	return int(n), time.Since(start), err
}

// rawClient leaves a gzipped body as it came.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func percentiles(ds []time.Duration) (median, p99 time.Duration) {
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return sorted[len(sorted)/2], sorted[len(sorted)*99/100]
}

func probeConcurrently(url string, n, workers int) error {
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	errs := make(chan error, workers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range workers {
		go func() {
			for range jobs {
				body, _, err := scrape(url, 0)
				if err == nil && !strings.Contains(body, "probe_success 1") {
					err = fmt.Errorf("blackbox probe failed:\n%s", body)
				}
				if err != nil {
					errs <- err
					cancel()
					return
				}
				if ctx.Err() != nil {
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// cpuSeconds is the user and system CPU time of a process so far.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// rssMB is the resident memory of a process (VmRSS), in MiB.
func rssMB(pid int) float64 { return statusMB(pid, "VmRSS") }

// statusMB reads a field of /proc/PID/status that is in kB, in MiB: VmRSS,
// or its parts RssAnon (the heap and stacks) and RssFile (the binary's
// pages).
func statusMB(pid int, field string) float64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if after, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(after), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if after, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(after), ":"))
		}
	}
	return "unknown CPU"
}
