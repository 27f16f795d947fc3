// Package prober sends one cheap chat-completion request per key and model
// and reports what the response says about the rate limits.
package prober

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
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

// MaxBodyBytes bounds how much of a response body is read.
const MaxBodyBytes = 1 << 20

// ProbeMessage is the user message every probe sends.
const ProbeMessage = "Hi"

// Result is what one probe observed.
type Result struct {
	Time           time.Time // when the response arrived, or the probe ended without one
	Duration       time.Duration
	StatusCode     int // 0 without a response
	Outcome        Outcome
	Observations   []ratelimit.Observation
	InvalidHeaders int     // rate-limit values dropped: invalid, or beyond the cap
	Tokens         float64 // usage.total_tokens of a 2xx body
	// ErrorCode is the provider's error code from the body, such as
	// "token_quota_exceeded", when it is a plain identifier; never free text.
	ErrorCode string
	// RetryAfter is how long a non-2xx response asked the client to wait
	// (Retry-After as delay-seconds or an HTTP-date); 0 when it did not.
	RetryAfter time.Duration
	Err        error // why the probe failed; safe to log: it never holds the key or a body
}

// Success reports whether the probe read rate-limit headers.
func (r *Result) Success() bool { return len(r.Observations) > 0 }

// Prober sends probes.
type Prober struct {
	userAgent string
	now       func() time.Time
	bodies    sync.Map // model -> request body

	mu            sync.RWMutex
	defaultClient *http.Client
	clients       map[string]*sharedClient // by key name
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

// Apply gives every key in cfg the client of its http_client settings, one
// client per distinct settings, keeping the clients, and their open
// connections, of settings that are still in use.
func (p *Prober) Apply(cfg *config.Config) error {
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
	clients := make(map[string]*sharedClient, len(cfg.Keys))
	used := map[*sharedClient]bool{}
	for i := range cfg.Keys {
		k := &cfg.Keys[i]
		sc := find(k.HTTPClient)
		if sc == nil {
			client, err := NewClient(k.HTTPClient)
			if err != nil {
				return fmt.Errorf("key %s: http_client: %w", k.Name, err)
			}
			sc = &sharedClient{settings: k.HTTPClient, client: client}
			pool = append(pool, sc)
		}
		clients[k.Name] = sc
		used[sc] = true
	}
	p.mu.Lock()
	p.clients = clients
	p.mu.Unlock()
	for _, sc := range pool[:kept] {
		if !used[sc] {
			sc.client.CloseIdleConnections()
		}
	}
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

type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	MaxCompletionTokens int           `json:"max_completion_tokens"`
	Stream              bool          `json:"stream"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// RequestBody returns the JSON body of a probe of model.
func RequestBody(model string) []byte {
	body, _ := json.Marshal(chatRequest{
		Model:               model,
		Messages:            []chatMessage{{Role: "user", Content: ProbeMessage}},
		MaxCompletionTokens: 1, // the provider reserves this against the token quota
	})
	return body
}

// Probe sends one request for t and reports what came back. It gives up when ctx ends.
func (p *Prober) Probe(ctx context.Context, t config.Target) Result {
	start := p.now()
	r := p.probe(ctx, t)
	r.Time = p.now()
	r.Duration = r.Time.Sub(start)
	if r.Duration < 0 {
		r.Duration = 0
	}
	return r
}

func (p *Prober) probe(ctx context.Context, t config.Target) Result {
	secret, err := readSecret(ctx, t.Key)
	if err != nil {
		return Result{Outcome: KeyUnavailable, Err: err}
	}
	url := t.Key.BaseURL + "/chat/completions"
	requestBody, cached := p.bodies.Load(t.Model)
	if !cached {
		requestBody, _ = p.bodies.LoadOrStore(t.Model, RequestBody(t.Model))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(requestBody.([]byte)))
	if err != nil {
		return Result{Outcome: NetworkError, Err: fmt.Errorf("building request: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+secret.Reveal())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", p.userAgent)

	resp, err := p.clientFor(t.Key.Name).Do(req)
	if err != nil {
		if isTimeout(ctx, err) {
			return Result{Outcome: Timeout, Err: err}
		}
		return Result{Outcome: NetworkError, Err: err}
	}
	defer resp.Body.Close()

	r := Result{StatusCode: resp.StatusCode}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if ok || resp.StatusCode == http.StatusTooManyRequests {
		r.Observations, r.InvalidHeaders = ratelimit.Parse(resp.Header, p.now())
	}
	body := readBody(resp.Body)
	switch {
	case ok && r.Success():
		r.Outcome = Success
		r.Tokens = body.Usage.TotalTokens
	case ok:
		r.Outcome = NoHeaders
		r.Tokens = body.Usage.TotalTokens
		r.Err = fmt.Errorf("HTTP %d without valid rate-limit headers", resp.StatusCode)
	case resp.StatusCode == http.StatusTooManyRequests:
		r.Outcome = RateLimited
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		r.Outcome = Unauthorized
	default:
		r.Outcome = HTTPError
	}
	if !ok {
		r.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), p.now())
		r.ErrorCode = body.code()
		r.Err = fmt.Errorf("HTTP %d", resp.StatusCode)
		if r.ErrorCode != "" {
			r.Err = fmt.Errorf("HTTP %d (%s)", resp.StatusCode, r.ErrorCode)
		}
	}
	return r
}

// readSecret returns the key's secret, giving up when ctx ends: an
// api_key_file on a hung mount must not hold the probe, or shutdown, forever.
func readSecret(ctx context.Context, k *config.Key) (config.Secret, error) {
	if k.APIKeyFile == "" {
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
		return "", fmt.Errorf("reading api_key_file: %w", ctx.Err())
	}
}

func isTimeout(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// responseBody holds the only fields read from a body. The rest, which may
// echo the key, is never kept.
type responseBody struct {
	Usage struct {
		TotalTokens float64 `json:"total_tokens"`
	} `json:"usage"`
	Code  json.RawMessage `json:"code"`
	Error struct {
		Code json.RawMessage `json:"code"`
	} `json:"error"`
}

var errorCodePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// code returns the provider's error code when it is a plain identifier.
func (b *responseBody) code() string {
	for _, raw := range []json.RawMessage{b.Code, b.Error.Code} {
		var s string
		if json.Unmarshal(raw, &s) == nil && errorCodePattern.MatchString(s) {
			return s
		}
	}
	return ""
}

func readBody(body io.Reader) responseBody {
	var b responseBody
	data, err := io.ReadAll(io.LimitReader(body, MaxBodyBytes))
	if err != nil {
		return b
	}
	if json.Unmarshal(data, &b) != nil || b.Usage.TotalTokens < 0 {
		b.Usage.TotalTokens = 0
	}
	return b
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP-date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if seconds, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(seconds) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
