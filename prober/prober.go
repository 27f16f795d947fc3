// Package prober sends one key's cheapest request, as its provider declares
// it, and reports what the response says about the rate limits.
package prober

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Outcome is a probe's result, the `result` label of ratelimit_probes_total.
type Outcome string

// The outcomes of a probe.
const (
	Success      Outcome = "success"
	RateLimited  Outcome = "rate_limited"  // 429
	Unauthorized Outcome = "unauthorized"  // 401 or 403
	HTTPError    Outcome = "http_error"    // any other non-2xx
	NoHeaders    Outcome = "no_headers"    // 2xx without valid rate-limit headers
	Timeout      Outcome = "timeout"       // no response before the deadline
	NetworkError Outcome = "network_error" // no response for another reason
	// KeyUnavailable: the key could not be read (api_key_file), so nothing was sent.
	KeyUnavailable Outcome = "key_unavailable"
)

// Outcomes lists every outcome, in the order metrics show them.
var Outcomes = []Outcome{Success, RateLimited, Unauthorized, HTTPError, NoHeaders, Timeout, NetworkError, KeyUnavailable}

// maxProbeTokens bounds the usage a probe is believed to have been billed:
// a one-token answer to "Hi" never costs a million tokens.
const maxProbeTokens = 1e6

// MaxBodyBytes bounds how much of a response body is read.
const MaxBodyBytes = 1 << 20

// Result is what one probe observed: the response's reading and what only
// a probe knows.
type Result struct {
	ratelimit.Reading
	Duration time.Duration
	Outcome  Outcome
	Tokens   float64 // billed to the probe, from the usage of a 2xx body
	// Free is true when the probe spends none of the limits it reads
	// (OpenRouter's key endpoint): the quota share does not stretch it.
	Free bool
	// ErrorCode is the provider's error code from the body, such as
	// "token_quota_exceeded", when it is a plain identifier; never free text.
	ErrorCode string
	Err       error // why the probe failed; safe to log: it never holds the key or a body
	// Exchange is what the probe sent and received, for its log; it holds
	// the key, and is shown only through WriteTrace.
	Exchange *Exchange
}

// Failure says why the probe read no rate limits: its error, or the
// status that came without them, and the provider's error code. It never
// holds the key.
func (r *Result) Failure() string {
	var failure string
	switch {
	case r.Err != nil:
		failure = r.Err.Error()
	case r.StatusCode != 0:
		failure = "HTTP " + strconv.Itoa(r.StatusCode) + " without rate-limit headers"
	}
	if r.ErrorCode != "" && !strings.Contains(failure, r.ErrorCode) {
		failure += " (" + r.ErrorCode + ")"
	}
	return failure
}

// redactedError is an error whose message held the key, with the key
// hidden. It wraps nothing: the cause would show the key.
type redactedError string

func (e redactedError) Error() string { return string(e) }

// Prober sends probes.
type Prober struct {
	userAgent string
	now       func() time.Time

	mu            sync.RWMutex
	defaultClient *http.Client
	clients       map[string]*sharedClient // by key name
	requests      map[requestID]provider.Request
}

// requestID names the probe request of a target; it holds what the request
// is made of, so a reload that changes a key's base_url changes it.
type requestID struct {
	provider, baseURL, model string
	options                  provider.Options
}

func requestIDOf(t config.Target) requestID {
	return requestID{t.Key.Provider, t.Key.BaseURL, t.Model, t.Key.ProbeOptions()}
}

// requestFor returns t's probe request, built when the config was applied.
func (p *Prober) requestFor(t config.Target, prov provider.Provider) provider.Request {
	p.mu.RLock()
	req, ok := p.requests[requestIDOf(t)]
	p.mu.RUnlock()
	if !ok {
		req = prov.Probe.Request(t.Key.BaseURL, t.Model, t.Key.ProbeOptions())
	}
	return req
}

// sharedClient is the HTTP client, and so the connection pool, of every key
// with the same http_client settings: a thousand keys of one provider keep
// the connections that probe.concurrency needs, not a thousand.
type sharedClient struct {
	settings config.HTTPClient
	client   *http.Client
}

// New returns a prober. Keys use the client their http_client settings
// describe once Apply has seen them, and the default settings before.
func New(userAgent string) *Prober {
	client, err := NewClient(config.HTTPClient{})
	if err != nil {
		panic(fmt.Sprintf("building the default HTTP client: %v", err)) // no settings, no error
	}
	return &Prober{userAgent: userAgent, now: time.Now, defaultClient: client, clients: map[string]*sharedClient{}}
}

// Clients are the HTTP clients and probe requests of one config, built by
// Prepare and not yet in use.
type Clients struct {
	clients  map[string]*sharedClient // by key name
	requests map[requestID]provider.Request
	retired  []*sharedClient // in use now, not by this config
}

// Prepare builds the clients of cfg's keys, one per distinct http_client
// settings, reusing those of the running config, with their open
// connections, where the settings are the same. It changes nothing: Use
// puts the clients to work.
func (p *Prober) Prepare(cfg *config.Config) (*Clients, error) {
	p.mu.RLock()
	var pool []*sharedClient
	for _, sc := range p.clients {
		if !slices.Contains(pool, sc) {
			pool = append(pool, sc)
		}
	}
	p.mu.RUnlock()
	find := func(settings config.HTTPClient) *sharedClient {
		for _, sc := range pool {
			if reflect.DeepEqual(sc.settings, settings) {
				return sc
			}
		}
		return nil
	}
	kept := len(pool)
	next := &Clients{clients: make(map[string]*sharedClient, len(cfg.Keys)), requests: map[requestID]provider.Request{}}
	used := map[*sharedClient]bool{}
	for i := range cfg.Keys {
		k := &cfg.Keys[i]
		sc := find(k.HTTPClient)
		if sc == nil {
			client, err := NewClient(k.HTTPClient)
			if err != nil {
				return nil, fmt.Errorf("key %s: http_client: %w", k.Name, err)
			}
			sc = &sharedClient{settings: k.HTTPClient, client: client}
			pool = append(pool, sc)
		}
		next.clients[k.Name] = sc
		used[sc] = true
	}
	for _, t := range cfg.Targets() {
		if prov, ok := provider.Lookup(t.Key.Provider); ok {
			next.requests[requestIDOf(t)] = prov.Probe.Request(t.Key.BaseURL, t.Model, t.Key.ProbeOptions())
		}
	}
	for _, sc := range pool[:kept] {
		if !used[sc] {
			next.retired = append(next.retired, sc)
		}
	}
	return next, nil
}

// Use makes c the clients of probes from now on.
func (p *Prober) Use(c *Clients) {
	p.mu.Lock()
	p.clients, p.requests = c.clients, c.requests
	p.mu.Unlock()
	for _, sc := range c.retired {
		sc.client.CloseIdleConnections()
	}
}

// Apply prepares cfg's clients and uses them.
func (p *Prober) Apply(cfg *config.Config) error {
	c, err := p.Prepare(cfg)
	if err != nil {
		return err
	}
	p.Use(c)
	return nil
}

// clientCount returns how many distinct HTTP clients the keys use.
func (p *Prober) clientCount() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	seen := map[*sharedClient]bool{}
	for _, sc := range p.clients {
		seen[sc] = true
	}
	return len(seen)
}

func (p *Prober) clientFor(key string) *http.Client {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if sc, ok := p.clients[key]; ok {
		return sc.client
	}
	return p.defaultClient
}

// SetClock replaces the clock, for tests.
func (p *Prober) SetClock(now func() time.Time) { p.now = now }

// Probe sends one request for t and reports what came back. It gives up when ctx ends.
func (p *Prober) Probe(ctx context.Context, t config.Target) Result {
	start := p.now()
	ex := &Exchange{provider: t.Key.Provider}
	r := p.probe(ctx, t, ex)
	r.Exchange = ex
	if r.Err != nil {
		// The URL in a transport's error may hold the key: base_url's path
		// may carry it, for some gateways.
		if msg, hidden := r.Err.Error(), (redactor{secret: ex.secret}).value(r.Err.Error()); hidden != msg {
			r.Err = redactedError(hidden)
		}
	}
	r.Time = p.now()
	r.Duration = r.Time.Sub(start)
	if r.Duration < 0 {
		r.Duration = 0
	}
	return r
}

// probe sends the probe, keeping in ex the request and the response it
// already holds, for its log.
func (p *Prober) probe(ctx context.Context, t config.Target, ex *Exchange) Result {
	prov, known := provider.Lookup(t.Key.Provider)
	if !known { // config.Parse refuses such keys
		return Result{Outcome: NetworkError, Err: fmt.Errorf("unknown provider %q", t.Key.Provider)}
	}
	secret, err := readSecret(ctx, t.Key)
	if err != nil {
		return Result{Outcome: KeyUnavailable, Err: err}
	}
	ex.secret = secret.Reveal()
	template := p.requestFor(t, prov)
	var body io.Reader
	if template.Body != nil {
		body = bytes.NewReader(template.Body)
	}
	req, err := http.NewRequestWithContext(ctx, template.Method, template.URL, body)
	if err != nil {
		return Result{Outcome: NetworkError, Err: fmt.Errorf("building request: %w", err)}
	}
	for name, values := range template.Header {
		req.Header[name] = values
	}
	req.Header.Set("User-Agent", p.userAgent)
	prov.Authorize(req.Header, secret.Reveal(), t.Key.ProbeOptions())
	ex.sent, ex.method, ex.url, ex.requestHeader, ex.requestBody = true, req.Method, req.URL, req.Header, template.Body

	resp, err := p.clientFor(t.Key.Name).Do(req)
	if err != nil {
		if isTimeout(ctx, err) {
			return Result{Outcome: Timeout, Err: err}
		}
		return Result{Outcome: NetworkError, Err: err}
	}
	defer resp.Body.Close()
	ex.keep(resp)

	r := Result{Reading: prov.Parser().Read(resp.StatusCode, resp.Header, p.now()), Free: prov.Probe.Free()}
	answer := prov.Probe.Read(readBody(resp.Body))
	if code := answer.ErrorCode; code != "" && (strings.Contains(code, secret.Reveal()) || strings.Contains(secret.Reveal(), code)) {
		// An API that echoes the key it refused as its error code: a key
		// of plain letters and digits would pass for one.
		answer.ErrorCode = ""
	}
	r.take(answer)
	return r
}

// take adds what the body said, answer, to r, which holds what the
// header said, and works out the outcome and the cause.
func (r *Result) take(answer provider.Answer) {
	status := r.StatusCode
	ok := status >= 200 && status < 300
	// A refusal's body may name the windows that ran out (Gemini's 429):
	// its values count as a 2xx's do.
	r.Dropped += answer.Dropped
	if len(answer.Observations) > 0 {
		r.Observations = append(r.Observations, answer.Observations...)
		slices.SortFunc(r.Observations, ratelimit.Compare)
	}
	switch {
	case ok:
		r.Served = answer.Served
		r.Tokens = answer.Tokens
		if !(r.Tokens <= maxProbeTokens) { // NaN too
			r.Tokens = 0 // a broken usage; counted, it would poison the total for good
		}
		r.Outcome = Success
		if !r.Success() {
			r.Outcome = NoHeaders
			r.Err = fmt.Errorf("HTTP %d without valid rate-limit headers", status)
		}
	case status == http.StatusTooManyRequests:
		r.Outcome = RateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		r.Outcome = Unauthorized
	default:
		r.Outcome = HTTPError
	}
	if !ok {
		r.RetryAfter = max(r.RetryAfter, answer.RetryAfter)
		r.ErrorCode = answer.ErrorCode
		r.Err = fmt.Errorf("HTTP %d", status)
		if r.ErrorCode != "" {
			r.Err = fmt.Errorf("HTTP %d (%s)", status, r.ErrorCode)
		}
	}
	r.Cause = ratelimit.Classify(status, answer.ErrorCode, &r.Reading)
}

// readSecret returns the key's secret, giving up when ctx ends: an
// api_key_file or bearer_token_file on a hung mount must not hold the
// probe, or shutdown, forever.
func readSecret(ctx context.Context, k *config.Key) (config.Secret, error) {
	field, path := k.SecretFile()
	if path == "" {
		return k.Secret()
	}
	type read struct {
		secret config.Secret
		err    error
	}
	done := make(chan read, 1)
	go func() {
		secret, err := k.Secret()
		done <- read{secret, err}
	}()
	select {
	case r := <-done:
		return r.secret, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("reading %s: %w", field, ctx.Err())
	}
}

func isTimeout(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// readBody reads at most MaxBodyBytes of a body; the provider's Read keeps
// only the few fields it knows, never text that may echo the key.
func readBody(body io.Reader) []byte {
	data, err := io.ReadAll(io.LimitReader(body, MaxBodyBytes))
	if err != nil {
		return nil
	}
	return data
}
