// Package proxy is the transparent proxy through which applications send
// their own requests, with their own keys, to the providers: it forwards
// them unchanged and reads the rate-limit headers of the answers, and what
// a refusal's body says as it passes, so that the limits of a key in use
// cost no probes; for a key that declares limits, it counts what its served
// answers spend, their usage read as it passes.
//
// It is not an open proxy: a request reaches only the upstream of the route
// whose path_prefix it starts with, whatever its Host, Forwarded or
// X-Forwarded-Host headers say; absolute-form request targets and CONNECT
// are refused without contacting anything, and redirects are passed to the
// client, never followed. A key is never written to a label, a log line, an
// error or a body the proxy writes itself: the proxy keeps only the SHA-256
// digests of the configured keys.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/tally"
)

// Observation is what one proxied response said about a key's limits.
type Observation struct {
	// Key is the configured key's name, or config.FingerprintPrefix and
	// the first 12 hex digits of sha256(key) under unknown_keys: fingerprint.
	Key      string
	Provider string
	// Model is the model the request names: in its path, for an API that
	// names it there (Gemini), else as the top-level "model" of its JSON
	// body; "" when there is none, or when it is not a printable name of
	// at most maxModelBytes bytes.
	Model             string
	ratelimit.Reading // its Time is when the response started
}

// Recorder takes observations, and what responses spent of the keys'
// declared limits. Observe is called on the response path, before the
// response is forwarded (a refusal's once its body is read, before the
// body's last bytes are forwarded). Spend is called, for a key and model
// that declare limits, when a 2xx starts, with its request, and when its
// body ends, with the tokens of its usage, if it gave any. Neither may
// block.
type Recorder interface {
	Observe(o Observation)
	Spend(u Usage)
}

// StatusClientClosedRequest is the code ratelimit_proxy_requests_total
// counts when the client left before the upstream answered, so that
// nothing was answered (nginx's 499).
const StatusClientClosedRequest = 499

// Proxy forwards requests to the routes' upstreams. It is safe for
// concurrent use; Apply swaps its settings atomically.
type Proxy struct {
	state    atomic.Pointer[state]
	reverse  *httputil.ReverseProxy
	recorder Recorder
	logger   log.Logger
	requests *prometheus.CounterVec
	// usageUnread counts the answers whose usage could not be read, by
	// reason: the estimate of a declared window counts their request only.
	usageUnread *prometheus.CounterVec
	now         func() time.Time
	bodies      bodyBudget // across reloads: bodies read under an old config are still held
	// refusalWait bounds how long a refusal's reading waits for its body:
	// refusalBodyWait, shorter in tests.
	refusalWait time.Duration
}

// state is what one config says: immutable once published.
type state struct {
	routes          []*route // longest path_prefix first
	unknownKeys     string
	maxRequestBytes int64
	// maxInflightRequestBytes bounds what p.bodies may hold.
	maxInflightRequestBytes int64
	bodyReadTimeout         time.Duration
	// declared are the models whose traffic each key's declared limits
	// count, by key name; "" counts all the key's traffic. A key that
	// declares none is not here, and its answers' bodies are not read.
	declared map[string]map[string]bool
}

// route is one path_prefix and where it leads.
type route struct {
	prefix   string
	upstream *url.URL
	provider string
	parser   ratelimit.Parser
	// keyHeader is where the provider reads a key: Authorization or
	// X-Api-Key. The proxy looks there first.
	keyHeader string
	// probe reads what a refusal's body says of the limits.
	probe provider.Probe
	keys  []knownKey // the configured keys of the provider
	// modelInPath reads the model from the request's path, for APIs that
	// name it there (Azure's deployments, Gemini's models); nil, or false,
	// and the model is the body's.
	modelInPath func(path string) (string, bool)
	// servedIsReading: a 2xx for a model is a Served reading, for a
	// provider that tells its limits in refusals only.
	servedIsReading bool
}

// exchange is what the proxy knows about one request, for the response.
type exchange struct {
	route  *route
	key    string // who to record under: a key's name or fingerprint
	record bool
	model  string
	// counted: the key declares limits of the model, so what a 2xx spends
	// is counted.
	counted bool
	client  http.ResponseWriter
	// copyBudget bounds what the copies of refusals' bodies may take of
	// the body budget, request bodies included: half of the state's
	// max_inflight_request_bytes, so that copies, which are not needed to
	// forward anything, never leave requests less than half of it.
	copyBudget int64
}

type exchangeKey struct{}

// New returns a proxy of cfg.Proxy's routes, recording into rec. cfg must
// have a proxy block.
func New(cfg *config.Config, rec Recorder, logger log.Logger) (*Proxy, error) {
	if rec == nil {
		return nil, errors.New("proxy: no recorder")
	}
	if logger == nil {
		logger = log.NewNopLogger()
	}
	p := &Proxy{
		recorder:    rec,
		logger:      logger,
		now:         time.Now,
		refusalWait: refusalBodyWait,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratelimit_proxy_requests_total",
			Help: "Requests through the proxy, by route (its path_prefix; \"\" for requests that match none) and the status code answered to the client, " +
				"the proxy's own refusals and 502s included; 499: the client left before the upstream answered.",
		}, []string{"route", "code"}),
		usageUnread: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratelimit_proxy_usage_unread_total",
			Help: "Answers of keys that declare limits whose usage the proxy could not read, so that their tokens were not counted (their request was), by reason: " +
				UnreadBudget + " (the body budget, half of max_inflight_request_bytes, was spent), " + UnreadEncoding + " (br, zstd or deflate), " +
				UnreadTooLarge + " (a gzipped body over 64 KiB, or its inflated bound).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{UnreadBudget, UnreadEncoding, UnreadTooLarge} {
		p.usageUnread.WithLabelValues(reason)
	}
	p.reverse = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      newTransport(),
		FlushInterval:  -1, // every write reaches the client at once: streams are never held back
		BufferPool:     newBufferPool(),
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		ErrorLog:       debugLog(logger),
	}
	if err := p.Apply(cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// Routes are the routes, keys and settings of one config, built by
// Prepare and not yet in use.
type Routes struct{ state *state }

// Prepare builds cfg's routes, reading the keys' files now. It changes
// nothing: Use puts them to work.
func (p *Proxy) Prepare(cfg *config.Config) (*Routes, error) {
	if cfg == nil || cfg.Proxy == nil {
		return nil, errors.New("proxy: the config has no proxy block")
	}
	s, err := p.build(cfg)
	if err != nil {
		return nil, err
	}
	return &Routes{state: s}, nil
}

// Use makes r's routes, keys and settings those of new requests; requests
// in flight finish with the ones they started with.
func (p *Proxy) Use(r *Routes) { p.state.Store(r.state) }

// Apply prepares cfg's routes and uses them.
func (p *Proxy) Apply(cfg *config.Config) error {
	r, err := p.Prepare(cfg)
	if err != nil {
		return err
	}
	p.Use(r)
	return nil
}

// build turns a config into the state that serves it.
func (p *Proxy) build(cfg *config.Config) (*state, error) {
	pc := cfg.Proxy
	s := &state{
		unknownKeys:             pc.UnknownKeys,
		maxRequestBytes:         int64(pc.MaxRequestBytes),
		maxInflightRequestBytes: int64(pc.MaxInflightRequestBytes),
		bodyReadTimeout:         time.Duration(pc.BodyReadTimeout),
		declared:                map[string]map[string]bool{},
	}
	for i := range cfg.Keys {
		for model := range cfg.Keys[i].DeclaredLimits() {
			if s.declared[cfg.Keys[i].Name] == nil {
				s.declared[cfg.Keys[i].Name] = map[string]bool{}
			}
			s.declared[cfg.Keys[i].Name][model] = true
		}
	}
	byProvider := map[string][]knownKey{}
	for _, r := range pc.Routes {
		prov, known := provider.Lookup(r.Provider)
		if !known {
			return nil, fmt.Errorf("proxy: route %s: unknown provider %q", r.PathPrefix, r.Provider)
		}
		upstream, err := config.CheckHTTPURL(strings.TrimRight(r.Upstream, "/"))
		if err != nil {
			return nil, fmt.Errorf("proxy: route %s: upstream: %w", r.PathPrefix, err)
		}
		if _, done := byProvider[r.Provider]; !done {
			byProvider[r.Provider] = p.digests(cfg.Keys, r.Provider)
		}
		s.routes = append(s.routes, &route{
			prefix:          r.PathPrefix,
			upstream:        upstream,
			provider:        prov.Name,
			parser:          prov.Parser(),
			keyHeader:       prov.Probe.KeyHeader(),
			probe:           prov.Probe,
			keys:            byProvider[r.Provider],
			modelInPath:     prov.ModelInPath,
			servedIsReading: prov.LimitsInRefusalsOnly,
		})
	}
	slices.SortStableFunc(s.routes, func(a, b *route) int { return len(b.prefix) - len(a.prefix) })
	return s, nil
}

// match returns the route with the longest path_prefix that path starts with.
func (s *state) match(path string) *route {
	for _, r := range s.routes {
		if strings.HasPrefix(path, r.prefix) {
			return r
		}
	}
	return nil
}

// ServeHTTP implements http.Handler. It expects requests as an http.Server
// hands them over: RequestURI set.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := p.state.Load()
	// An absolute-form target (GET http://elsewhere/ HTTP/1.1), an
	// authority-form one (CONNECT elsewhere:443) or "*" asks for a forward
	// proxy, which this is not.
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.RequestURI, "/") {
		p.refuse(w, "", http.StatusForbidden, "forward_proxy_refused", "this proxy forwards only origin-form requests to its configured routes")
		return
	}
	if hasDotSegment(r.URL.Path) {
		p.refuse(w, "", http.StatusBadRequest, "invalid_path", "the path has . or .. segments")
		return
	}
	rt := s.match(r.URL.Path)
	if rt == nil {
		p.refuse(w, "", http.StatusNotFound, "no_route", "no route of the proxy matches the path")
		return
	}

	who, record, admitted := rt.admit(r.Header, r.URL.RawQuery, s.unknownKeys)
	if !admitted {
		p.refuse(w, rt.prefix, http.StatusForbidden, "unknown_key", "the proxy forwards only the keys it is configured with")
		return
	}

	body, release, err := p.receive(w, r, s)
	defer release()
	switch {
	case errors.Is(err, errTooLarge):
		p.refuse(w, rt.prefix, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("the request body is larger than the proxy's max_request_bytes (%s)", config.Bytes(s.maxRequestBytes)))
		return
	case errors.Is(err, errOverloaded):
		w.Header().Set("Retry-After", "1")
		p.refuse(w, rt.prefix, http.StatusServiceUnavailable, "proxy_overloaded",
			"the request bodies in flight fill the proxy's max_inflight_request_bytes; retry shortly")
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		p.refuse(w, rt.prefix, http.StatusRequestTimeout, "request_timeout",
			fmt.Sprintf("the request body did not arrive within the proxy's body_read_timeout (%s)", s.bodyReadTimeout))
		return
	case err != nil && r.Context().Err() != nil:
		p.count(rt.prefix, StatusClientClosedRequest)
		level.Debug(p.logger).Log("msg", "The client left while sending its request", "route", rt.prefix)
		return
	case err != nil:
		p.refuse(w, rt.prefix, http.StatusBadRequest, "unreadable_request", "the request body could not be read")
		return
	}

	ex := &exchange{route: rt, key: who, record: record, client: w, copyBudget: s.maxInflightRequestBytes / 2}
	if record {
		ex.model = rt.modelOf(r.URL.Path, body)
		models := s.declared[who]
		ex.counted = models[ex.model] || models[""]
	}
	out := r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	setBody(out, body)
	// A trailer is a header the key check never saw: none goes on.
	out.Trailer = nil
	p.reverse.ServeHTTP(w, out)
}

// modelOf returns the model a request names: in its path, for an API that
// names it there, else as the body's top-level "model"; "" for a
// name that is not printable or longer than maxModelBytes.
func (rt *route) modelOf(path string, body []byte) string {
	if rt.modelInPath != nil {
		if model, named := rt.modelInPath(path); named {
			if len(model) > maxModelBytes || !config.Printable(model) {
				return "" // the upstream serves the path's model, never the body's
			}
			return model
		}
	}
	return topLevelModel(body)
}

// rewrite sends the request to the route's upstream: the prefix's last "/"
// and what follows it are kept, the query is kept as sent, and Host becomes
// the upstream's. ReverseProxy has already removed the hop-by-hop headers
// and the client's Forwarded and X-Forwarded-* ones, and adds none.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	rt := pr.In.Context().Value(exchangeKey{}).(*exchange).route
	in, out := pr.In.URL, pr.Out.URL
	keep := len(rt.prefix) - 1
	out.Scheme, out.Host = rt.upstream.Scheme, rt.upstream.Host
	out.Path = rt.upstream.Path + in.Path[keep:]
	out.RawPath = ""
	if escaped := in.EscapedPath(); strings.HasPrefix(escaped, rt.prefix) {
		// URL.EscapedPath falls back to Path's own escaping if this is not one of it.
		out.RawPath = rt.upstream.EscapedPath() + escaped[keep:]
	}
	pr.Out.Host = ""
}

// modifyResponse reads the rate-limit headers as the response starts, and
// a refusal's body, as it passes, for what it says of the limits. It never
// changes or holds back a byte of the body.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	ex := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	// What the upstream left out, net/http would add: keep it out.
	for _, name := range []string{"Content-Type", "Date"} {
		if _, set := resp.Header[name]; !set {
			ex.client.Header()[name] = nil
		}
	}
	p.count(ex.route.prefix, resp.StatusCode)
	if !ex.record {
		return nil
	}
	if ex.counted && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		p.countUsage(ex, resp)
	}
	reading := ex.route.parser.Read(resp.StatusCode, resp.Header, p.now())
	if ex.route.servedIsReading && ex.model != "" && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		reading.Served = true
	}
	record := func(body []byte) {
		if body != nil {
			ex.route.readBody(&reading, body)
		}
		if !reading.Success() && reading.RetryAfter == 0 && resp.StatusCode != http.StatusTooManyRequests && reading.Cause == "" {
			return
		}
		p.recorder.Observe(Observation{Key: ex.key, Provider: ex.route.provider, Model: ex.model, Reading: reading})
	}
	if !isRefusal(resp.StatusCode) || resp.ContentLength == 0 || resp.ContentLength > maxRefusalBody || resp.Request.Method == http.MethodHead {
		record(nil)
		return nil
	}
	coding := codingOf(resp.Header)
	if coding == unreadable {
		record(nil)
		return nil
	}
	resp.Body = newRefusalBody(resp.Body, resp.ContentLength, coding, &p.bodies, ex.copyBudget, p.refusalWait, record)
	return nil
}

// countUsage counts a served response of a key that declares limits: its
// request now, and its body's usage when the body ends. A body the proxy
// cannot read (not JSON nor an event stream, or in an encoding other than
// gzip) counts its request alone.
func (p *Proxy) countUsage(ex *exchange, resp *http.Response) {
	usage := Usage{Key: ex.key, Provider: ex.route.provider, Model: ex.model, Spent: tally.Spent{Requests: 1}}
	p.recorder.Spend(usage)
	kind := usageKindOf(resp.Header.Get("Content-Type"))
	coding := codingOf(resp.Header)
	if kind == noUsage || resp.ContentLength == 0 || resp.Request.Method == http.MethodHead {
		return
	}
	if coding == unreadable {
		p.usageUnread.WithLabelValues(UnreadEncoding).Inc()
		return
	}
	body := newUsageBody(resp.Body, resp.ContentLength, kind, coding, &p.bodies, ex.copyBudget, func(s tally.Spent) {
		usage.Spent = s
		p.recorder.Spend(usage)
	})
	body.unread = func(reason string) { p.usageUnread.WithLabelValues(reason).Inc() }
	resp.Body = body
}

// readBody adds to a refusal's reading what its body says: the windows
// that ran out, the wait it asks for when the headers asked for none, and
// the cause, with the body's error code.
func (rt *route) readBody(r *ratelimit.Reading, body []byte) {
	a := rt.probe.Read(body)
	r.Dropped += a.Dropped
	if len(a.Observations) > 0 {
		r.Observations = append(r.Observations, a.Observations...)
		slices.SortFunc(r.Observations, ratelimit.Compare)
	}
	if r.RetryAfter == 0 {
		r.RetryAfter = a.RetryAfter
	}
	r.Cause = ratelimit.Classify(r.StatusCode, a.ErrorCode, r)
}

// upstreamError answers when the upstream could not be reached: 502 with
// a JSON body. The log line gives the route and the cause, never the
// request's URL, whose query may carry a key. (ReverseProxy passes the
// transport's error as is: a client's *url.Error, which quotes the URL,
// never reaches here.)
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	rt := r.Context().Value(exchangeKey{}).(*exchange).route
	if r.Context().Err() != nil {
		p.count(rt.prefix, StatusClientClosedRequest)
		level.Debug(p.logger).Log("msg", "The client left before the upstream answered", "route", rt.prefix)
		return
	}
	// Transport errors name the upstream's address, never the request's URL.
	level.Warn(p.logger).Log("msg", "Cannot reach the upstream", "route", rt.prefix, "upstream", rt.upstream.Redacted(), "err", err)
	p.refuse(w, rt.prefix, http.StatusBadGateway, "upstream_unreachable", "the proxy could not get an answer from the route's upstream")
}

// refuse answers a request the proxy does not forward, and counts it.
// message is the proxy's own words: never anything from the request.
func (p *Proxy) refuse(w http.ResponseWriter, routePrefix string, status int, code, message string) {
	p.count(routePrefix, status)
	if status != http.StatusBadGateway {
		level.Debug(p.logger).Log("msg", "Refused a request", "route", routePrefix, "status", status, "reason", code)
	}
	writeError(w, status, code, message)
}

// writeError writes a JSON error that both OpenAI's and Anthropic's SDKs
// read: error.message, error.type and error.code, and a top-level type.
func writeError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(map[string]any{
		"type": "error",
		"error": map[string]string{
			"type":    "proxy_error",
			"code":    code,
			"message": "ratelimit_exporter proxy: " + message,
		},
	})
	h := w.Header()
	h.Del("Date")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func (p *Proxy) count(routePrefix string, status int) {
	p.requests.WithLabelValues(routePrefix, strconv.Itoa(status)).Inc()
}

// Collectors returns the proxy's own metrics: ratelimit_proxy_requests_total.
func (p *Proxy) Collectors() []prometheus.Collector {
	return []prometheus.Collector{p.requests, p.usageUnread}
}

// hasDotSegment reports whether a path has a "." or ".." segment, which
// could climb out of an upstream's own path.
func hasDotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// newTransport is the proxy's own transport: many concurrent clients, no
// compression added or undone, no proxy from the environment, and no
// deadline on a response, which may stream for minutes.
func newTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		// An upstream's headers, rate limits and all, take a few KB; Go
		// would read 10 MB of them.
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// bufferPool reuses the buffers that copy response bodies, so that many
// open streams do not each allocate one anew.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([32 << 10]byte) }}}
}

func (b *bufferPool) Get() []byte  { return b.pool.Get().(*[32 << 10]byte)[:] }
func (b *bufferPool) Put(s []byte) { b.pool.Put((*[32 << 10]byte)(s)) }

// debugLog is a standard logger for what net/http and ReverseProxy report
// on their own: a client gone, a stream cut, a TLS handshake that failed
// go to logger at debug level; a panic, a bug, at error level.
func debugLog(logger log.Logger) *stdlog.Logger {
	return stdlog.New(stdlibWriter{logger}, "", 0)
}

type stdlibWriter struct{ logger log.Logger }

func (w stdlibWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if strings.Contains(msg, "panic") {
		level.Error(w.logger).Log("msg", msg)
	} else {
		level.Debug(w.logger).Log("msg", msg)
	}
	return len(p), nil
}
