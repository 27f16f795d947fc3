package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/logging"
)

// Simulator keys: the configured ones, and one the config does not know.
const (
	openAIKey    = "sk-sim-proxy-openai-0123456789abcdef"
	anthropicKey = "sk-sim-proxy-anthropic-0123456789abcdef"
	unknownKey   = "sk-sim-proxy-unknown-0123456789abcdef"
)

// start is a whole second, so that Date and reset timestamps are exact.
var start = time.Unix(1795000000, 0)

// recorder keeps what the proxy observes, and what it counts.
type recorder struct {
	mu    sync.Mutex
	got   []Observation
	spent []Usage
}

func (r *recorder) Spend(u Usage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spent = append(r.spent, u)
}

func (r *recorder) usages() []Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spent)
}

func (r *recorder) Observe(o Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, o)
}

func (r *recorder) all() []Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *recorder) last(t *testing.T) Observation {
	t.Helper()
	all := r.all()
	if len(all) == 0 {
		t.Fatal("nothing was recorded")
	}
	return all[len(all)-1]
}

// logFile is where a test proxy logs: a file, which the test reads while
// the proxy writes, with no lock of its own to share.
type logFile struct{ path string }

func (f logFile) String() string {
	data, _ := os.ReadFile(f.path)
	return string(data)
}

// setup is the proxy settings of a test config.
type setup struct {
	unknownKeys     string // "" leaves the default
	maxRequestBytes string // "" leaves the default
	routes          []config.Route
	keys            string // extra YAML list entries under keys
}

// configText is a config with an openai and an anthropic key and the
// setup's proxy block.
func configText(s setup) string {
	var b strings.Builder
	fmt.Fprintf(&b, "keys:\n  - {name: team-openai, provider: openai, api_key: %s}\n  - {name: team-anthropic, provider: anthropic, api_key: %s}\n",
		openAIKey, anthropicKey)
	b.WriteString(s.keys)
	b.WriteString("proxy:\n  listen_address: 127.0.0.1:0\n")
	if s.unknownKeys != "" {
		fmt.Fprintf(&b, "  unknown_keys: %s\n", s.unknownKeys)
	}
	if s.maxRequestBytes != "" {
		fmt.Fprintf(&b, "  max_request_bytes: %s\n", s.maxRequestBytes)
	}
	b.WriteString("  routes:\n")
	for _, r := range s.routes {
		fmt.Fprintf(&b, "    - {path_prefix: %s, upstream: %q, provider: %s}\n", r.PathPrefix, r.Upstream, r.Provider)
	}
	return b.String()
}

func parseConfig(t *testing.T, s setup) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(configText(s)), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// env is a proxy served on loopback by Serve, logging at debug level.
type env struct {
	proxy  *Proxy
	url    string // http://127.0.0.1:port
	addr   string
	rec    *recorder
	logs   logFile
	reg    *prometheus.Registry
	client *http.Client
	// stop shuts the proxy down and returns what Serve returned, once
	// every request has finished.
	stop func() error
}

func startProxy(t *testing.T, s setup) *env {
	t.Helper()
	return startConfig(t, parseConfig(t, s))
}

// startConfig starts a proxy of cfg; tune, if given, changes it before it serves.
func startConfig(t *testing.T, cfg *config.Config, tune ...func(*Proxy)) *env {
	t.Helper()
	e := &env{rec: &recorder{}, logs: logFile{filepath.Join(t.TempDir(), "proxy.log")}, reg: prometheus.NewPedanticRegistry()}
	out, err := os.Create(e.logs.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	logger, _ := logging.New(out, &logging.Config{Level: "debug", Format: "logfmt"})
	p, err := New(cfg, e.rec, logger)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tune {
		f(p)
	}
	e.reg.MustRegister(p.Collectors()...)
	l, err := Listen(cfg.Proxy)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, nil, l, cfg.Proxy, p, 5*time.Second, logger) }()
	e.stop = sync.OnceValue(func() error {
		cancel()
		return <-served
	})
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	e.proxy, e.addr, e.url = p, l.Addr().String(), "http://"+l.Addr().String()
	e.client = newClient()
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// newClient is an application's client as plain as can be: it follows no
// redirect and asks for no compression, so that it sees what is sent.
func newClient() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// upstream is a loopback server that counts the connections made to it
// and the requests it answered.
type upstream struct {
	*httptest.Server
	conns, hits atomic.Int64
	mu          sync.Mutex
	last        *http.Request // the last request, its body read into lastBody
	lastBody    []byte
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.last, u.lastBody = r.Clone(context.Background()), body
		u.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) lastRequest() (*http.Request, []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last, u.lastBody
}

// untouched reports an upstream that was contacted.
func (u *upstream) untouched(t *testing.T, name string) {
	t.Helper()
	if c, h := u.conns.Load(), u.hits.Load(); c != 0 || h != 0 {
		t.Errorf("%s was contacted: %d connections, %d requests", name, c, h)
	}
}

// okHandler answers 200 with rate-limit headers in OpenAI's shape.
func okHandler(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Ratelimit-Limit-Requests", "60")
	h.Set("X-Ratelimit-Remaining-Requests", "59")
	h.Set("X-Ratelimit-Reset-Requests", "1s")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// reply is what an application sees of a response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, c *http.Client, r *http.Request) reply {
	t.Helper()
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, body}
}

func newRequest(t *testing.T, method, url, body string, header ...string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return req
}

// differences lists how two replies differ, but for the hop-by-hop
// headers, which each connection has its own of, and Date's value (one
// second may have passed).
func differences(direct, proxied reply) []string {
	var diffs []string
	if direct.status != proxied.status {
		diffs = append(diffs, fmt.Sprintf("status %d, directly %d", proxied.status, direct.status))
	}
	strip := func(h http.Header) http.Header {
		h = h.Clone()
		for _, name := range []string{"Date", "Connection", "Keep-Alive", "Transfer-Encoding"} {
			h.Del(name)
		}
		return h
	}
	if _, dated := direct.header["Date"]; dated != (proxied.header.Get("Date") != "") {
		diffs = append(diffs, fmt.Sprintf("Date %q, directly %q", proxied.header.Get("Date"), direct.header.Get("Date")))
	}
	d, p := strip(direct.header), strip(proxied.header)
	for _, name := range sortedUnion(d, p) {
		if !slices.Equal(d[name], p[name]) {
			diffs = append(diffs, fmt.Sprintf("header %s = %q, directly %q", name, p[name], d[name]))
		}
	}
	if !bytes.Equal(direct.body, proxied.body) {
		diffs = append(diffs, fmt.Sprintf("body %q, directly %q", proxied.body, direct.body))
	}
	return diffs
}

func sortedUnion(a, b http.Header) []string {
	var names []string
	for _, h := range []http.Header{a, b} {
		for name := range h {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// proxyError checks that a reply is the proxy's own JSON error.
func proxyError(t *testing.T, got reply, status int, code string) {
	t.Helper()
	if got.status != status || got.header.Get("Content-Type") != "application/json" ||
		!strings.Contains(string(got.body), `"type":"proxy_error"`) || !strings.Contains(string(got.body), `"code":"`+code+`"`) {
		t.Errorf("got %d %s %s, want the proxy's %d JSON error %s", got.status, got.header.Get("Content-Type"), got.body, status, code)
	}
}
