// Package simulator is a fake provider API with continuously refilling
// rate-limit buckets, for the demo, tests and benchmarks. It speaks one
// provider's dialect (Cerebras by default): that provider's request shape,
// rate-limit headers and error bodies, as we understand them from the
// providers' documentation and observed responses (internal/testkit/testdata).
// It sends no traffic anywhere and knows only the keys it is given.
package simulator

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resources are the resources the simulator knows, in the order a request
// is checked against them. A request spends from each as its measure says;
// a resource not listed here is never spent.
var Resources = []string{
	"requests", "tokens", "input_tokens", "output_tokens",
	"tokens_prompt", "tokens_generated", "credits", "free_model_requests", "unified",
	"deployment",
}

// perKey are the resources whose buckets all of a key's models share: a
// Claude subscription's allowance ("unified") spans every model.
var perKey = []string{"unified"}

// Windows are the windows a limit can have, shortest first. A dialect shows
// the windows its headers can express and ignores the others; every bucket
// limits the key all the same.
var Windows = []Window{
	{"minute", time.Minute},
	{"hour", time.Hour},
	{"5h", 5 * time.Hour},
	{"day", 24 * time.Hour},
	{"week", 7 * 24 * time.Hour},
	{"7d", 7 * 24 * time.Hour},
	{"month", 30 * 24 * time.Hour},
}

// Window is a rate-limit window: its name in header names and its length.
type Window struct {
	Name   string
	Length time.Duration
}

// Limits are per-window limits, indexed by resource then window name.
type Limits map[string]map[string]float64

// FreeTrial are the limits of a free-trial Cerebras key as reported publicly
// (internal/testkit/testdata/cerebras-full.headers).
func FreeTrial() Limits {
	return Limits{
		"requests": {"minute": 5, "hour": 150, "day": 2400},
		"tokens":   {"minute": 30000, "hour": 1000000, "day": 1000000},
	}
}

// Fault makes a key's responses fail on purpose.
type Fault int

// Faults.
const (
	NoFault       Fault = iota
	ServerError         // 503 with the dialect's error body
	NoHeaders           // success without rate-limit headers (OpenRouter: without limit fields)
	BadHeaders          // success with rate-limit values that are not numbers
	CloseConn           // drop the connection without a response
	No429Headers        // a 429 carries no rate-limit headers
	QueueExceeded       // provider capacity, not the key's quota: 429 queue_exceeded (Anthropic: 529 overloaded_error)
	// InsufficientQuota is an account out of credit: 429 insufficient_quota
	// (Anthropic: 400 invalid_request_error; OpenRouter: 402).
	InsufficientQuota
)

// Simulator serves one dialect's API. It is safe for concurrent use.
type Simulator struct {
	dialect Dialect
	spec    *spec

	mu        sync.Mutex
	now       func() time.Time
	latency   time.Duration
	models    map[string]bool
	accounts  map[string]*account // by API key
	requests  int
	byAgent   map[agentKey]int    // requests to the endpoint by presented key and User-Agent
	exchanges map[string]Exchange // by the key a request presented
	pace      time.Duration       // between a stream's events (SetStreamPace)
	admin     *adminState         // the admin API's keys (admin.go); nil until one is set
}

// Exchange is the last request a key sent and the answer it got (for tests).
type Exchange struct {
	Method, Path   string
	Query          string      // the request's raw query
	KeyHeader      string      // the header that carried the key: Authorization (Bearer), X-Api-Key or Api-Key; "" none
	Header         http.Header // the request's headers, Authorization, x-api-key and api-key removed
	Body           []byte      // the request body
	Status         int         // 0: the connection was dropped
	ResponseHeader http.Header // the headers the simulator set
	ResponseBody   []byte
}

// maxExchanges bounds how many keys' exchanges are kept, and how many key
// and User-Agent pairs are counted, so that clients sending ever new keys
// cannot grow the simulator without end.
const maxExchanges = 1024

// agentKey is a key as a request presented it, and the request's User-Agent.
type agentKey struct{ apiKey, userAgent string }

type account struct {
	limits       Limits
	fault        Fault
	subscription bool
	balance      Balance
	buckets      map[string]buckets // by model ("" for a dialect whose limits are per key)
	shared       buckets            // the perKey resources', which every model's buckets hold
}

// Balance is the money on a key's account, as DeepSeek's balance endpoint
// shows it.
type Balance struct {
	Available  bool // whether the balance may pay for API calls
	Currencies []CurrencyBalance
}

// CurrencyBalance is an account's money in one currency: granted (given
// for free) and topped up (paid); the total is their sum.
type CurrencyBalance struct {
	Currency          string
	Granted, ToppedUp float64
}

// emptyBalance is a new DeepSeek account's: nothing, and so not available.
func emptyBalance() Balance {
	return Balance{Currencies: []CurrencyBalance{{Currency: "CNY"}}}
}

// buckets are one key and model's buckets, indexed like Limits.
type buckets map[string]map[string]*bucket

type bucket struct {
	limit   float64
	length  time.Duration
	level   float64
	updated time.Time
}

// refill adds what the window has refilled since the last update.
func (b *bucket) refill(now time.Time) {
	if elapsed := now.Sub(b.updated); elapsed > 0 {
		b.level = math.Min(b.limit, b.level+b.limit*elapsed.Seconds()/b.length.Seconds())
		b.updated = now
	}
}

// resetSeconds is how long until the bucket is full again.
func (b *bucket) resetSeconds() float64 {
	return (b.limit - b.level) / b.limit * b.length.Seconds()
}

// remaining is the whole units left, as headers show them.
func (b *bucket) remaining() float64 { return math.Max(0, math.Floor(b.level)) }

// first returns the bucket of resource in the first of windows the key has.
func (bs buckets) first(resource string, windows []string) *bucket {
	for _, w := range windows {
		if b := bs[resource][w]; b != nil {
			return b
		}
	}
	return nil
}

// usage is what one request, or one Consume call, takes from each measure.
type usage struct{ requests, prompt, completion, tokens float64 }

// of returns what u takes from resource.
func (u usage) of(resource string) float64 {
	switch resource {
	case "requests", "free_model_requests":
		return u.requests
	case "input_tokens", "tokens_prompt":
		return u.prompt
	case "output_tokens", "tokens_generated":
		return u.completion
	case "tokens", "credits", "unified", "deployment":
		return u.tokens
	}
	return 0
}

// exhaustion is a bucket that cannot take a request.
type exhaustion struct {
	resource, window string
	limit            float64
}

// exhausted lists the buckets that cannot take u, in the order of
// Resources and Windows.
func (bs buckets) exhausted(u usage) []exhaustion {
	var out []exhaustion
	for _, r := range Resources {
		for _, w := range Windows {
			if b := bs[r][w.Name]; b != nil && b.level < u.of(r) {
				out = append(out, exhaustion{r, w.Name, b.limit})
			}
		}
	}
	return out
}

// shortfall returns the first resource whose buckets cannot take u, and
// the seconds until every bucket that cannot has room; "" when all can.
func (bs buckets) shortfall(u usage) (resource string, retryAfter float64) {
	for _, r := range Resources {
		for _, w := range Windows {
			// The provider reserves the completion cap before it runs a request.
			if b := bs[r][w.Name]; b != nil && b.level < u.of(r) {
				if resource == "" {
					resource = r
				}
				retryAfter = math.Max(retryAfter, (u.of(r)-b.level)/b.limit*b.length.Seconds())
			}
		}
	}
	return resource, retryAfter
}

// spend takes u from every bucket; floor keeps them from going below zero.
func (bs buckets) spend(u usage, floor bool) {
	for resource, windows := range bs {
		for _, b := range windows {
			b.level -= u.of(resource)
			if floor {
				b.level = math.Max(0, b.level)
			}
		}
	}
}

// New returns a Cerebras simulator that serves the given models.
func New(models ...string) *Simulator { return NewDialect(Cerebras, models...) }

// NewDialect returns a simulator of d's API that serves the given models
// (without any, the provider's usual cheap model). It panics on a dialect
// not in Dialects.
func NewDialect(d Dialect, models ...string) *Simulator {
	sp, ok := specs[d]
	if !ok {
		panic(fmt.Sprintf("simulator: unknown dialect %q", d))
	}
	if len(models) == 0 {
		models = []string{sp.model}
	}
	s := &Simulator{
		dialect: d, spec: sp, now: time.Now,
		models: map[string]bool{}, accounts: map[string]*account{}, exchanges: map[string]Exchange{}, byAgent: map[agentKey]int{},
	}
	for _, m := range models {
		s.models[m] = true
	}
	return s
}

// Dialect returns the API the simulator speaks.
func (s *Simulator) Dialect() Dialect { return s.dialect }

// SetClock replaces the clock, for tests.
func (s *Simulator) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetLatency delays every response by d.
func (s *Simulator) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetStreamPace writes each stream's events one at a time, flushed, d
// apart, so that a stream lasts d per event after the first, as a model
// generating would; 0 (the default) writes a stream whole.
func (s *Simulator) SetStreamPace(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pace = d
}

// AddKey makes apiKey valid with the given limits and full buckets.
func (s *Simulator) AddKey(apiKey string, limits Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	shared := Limits{}
	for _, r := range perKey {
		if windows, ok := limits[r]; ok {
			shared[r] = windows
		}
	}
	s.accounts[apiKey] = &account{limits: limits, balance: emptyBalance(), buckets: map[string]buckets{},
		shared: newBuckets(shared, s.now())}
}

// SetSubscription puts apiKey in subscription mode, or takes it out. In
// subscription mode (the Anthropic dialect) answers carry the unified
// windows of Claude subscription traffic, computed from the key's
// "unified" buckets in windows "5h" and "7d" (shared by all its models),
// and the key is an OAuth token: it comes as Authorization: Bearer with
// anthropic-beta: oauth-2025-04-20, as Claude Code sends it, and is
// refused as an x-api-key.
func (s *Simulator) SetSubscription(apiKey string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[apiKey]; a != nil {
		a.subscription = on
	}
}

// SetBalance sets the money on apiKey's account (DeepSeek's dialect shows
// it). A new key has none, in CNY, and is not available.
func (s *Simulator) SetBalance(apiKey string, b Balance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[apiKey]; a != nil {
		b.Currencies = slices.Clone(b.Currencies)
		a.balance = b
	}
}

// RevokeKey makes apiKey unknown: its requests get 401.
func (s *Simulator) RevokeKey(apiKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.accounts, apiKey)
}

// SetFault makes apiKey's responses fail as f until it is set to NoFault.
func (s *Simulator) SetFault(apiKey string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[apiKey]; a != nil {
		a.fault = f
	}
}

// Consume spends requests and tokens from a key and model's buckets, as the
// key's real traffic would: requests from "requests" and
// "free_model_requests", tokens in full from every token resource
// ("tokens", "input_tokens", "output_tokens", "tokens_prompt",
// "tokens_generated") and from "credits", "unified" and "deployment". On a
// dialect whose limits are per key (OpenRouter), and for "unified", the
// model is ignored. Buckets do not go below zero.
func (s *Simulator) Consume(apiKey, model string, requests, tokens float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[apiKey]; a != nil {
		s.bucketsFor(a, model).spend(usage{requests: requests, prompt: tokens, completion: tokens, tokens: tokens}, true)
	}
}

// Exhaust empties every request bucket of a key and model.
func (s *Simulator) Exhaust(apiKey, model string) {
	s.Consume(apiKey, model, math.Inf(1), 0)
}

// Requests returns how many requests the simulator's API endpoint has
// answered, whatever the answer.
func (s *Simulator) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// RequestsFrom returns how many of Requests presented apiKey (as
// LastExchange reads it) with User-Agent userAgent: an exporter's probes,
// which send its user agent, told apart from the applications' requests
// it proxies.
func (s *Simulator) RequestsFrom(apiKey, userAgent string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byAgent[agentKey{apiKey, userAgent}]
}

// LastExchange returns the last request that presented apiKey (as a bearer
// token or x-api-key, valid or not) and the simulator's answer.
func (s *Simulator) LastExchange(apiKey string) (Exchange, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.exchanges[apiKey]
	return e, ok
}

// bucketsFor returns a's buckets for model, refilled up to now. s.mu is held.
func (s *Simulator) bucketsFor(a *account, model string) buckets {
	if s.spec.free {
		model = ""
	}
	now := s.now()
	bs := a.buckets[model]
	if bs == nil {
		bs = newBuckets(a.limits, now)
		maps.Copy(bs, a.shared)
		a.buckets[model] = bs
	}
	for _, windows := range bs {
		for _, b := range windows {
			b.refill(now)
		}
	}
	return bs
}

// newBuckets returns full buckets of limits.
func newBuckets(limits Limits, now time.Time) buckets {
	bs := buckets{}
	for resource, windows := range limits {
		bs[resource] = map[string]*bucket{}
		for _, w := range Windows {
			if limit, ok := windows[w.Name]; ok {
				bs[resource][w.Name] = &bucket{limit: limit, length: w.Length, level: limit, updated: now}
			}
		}
	}
	return bs
}

// answer is a response, built under the lock and written after it.
type answer struct {
	status int
	header http.Header
	body   []byte
	hangUp bool // drop the connection instead
	// chunks: a stream's body, one event each; with pace, written one at
	// a time, pace apart.
	chunks [][]byte
	pace   time.Duration
}

const maxBody = 1 << 20

// ServeHTTP implements http.Handler.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveAdmin(w, r) {
		return
	}
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	ans, ok := s.answer(r, body, readErr)
	if !ok {
		return // the client left while the simulator was slow
	}
	if ans.hangUp {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	for name, values := range ans.header {
		w.Header()[name] = values
	}
	w.WriteHeader(ans.status)
	flusher, paced := w.(http.Flusher)
	if !paced || ans.pace <= 0 || len(ans.chunks) == 0 {
		_, _ = w.Write(ans.body)
		return
	}
	for i, e := range ans.chunks {
		if i > 0 {
			select {
			case <-time.After(ans.pace):
			case <-r.Context().Done():
				return
			}
		}
		_, _ = w.Write(e)
		flusher.Flush()
	}
}

// answer answers r and records the exchange; false when r's client left.
func (s *Simulator) answer(r *http.Request, body []byte, readErr error) (answer, bool) {
	sp := s.spec
	presented, keyHeader := presentedKey(r)
	ans := answer{header: http.Header{}}
	endpoint := strings.HasSuffix(r.URL.Path, sp.path) && r.Method == sp.method
	if endpoint {
		s.mu.Lock()
		latency := s.latency
		s.mu.Unlock()
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return answer{}, false
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch {
	case s.isCosts(r):
		s.serveCosts(&ans, r, now)
	case !strings.HasSuffix(r.URL.Path, sp.path):
		ans.fail(sp, now, problem{kind: notFound, message: "no such endpoint"})
	case !endpoint:
		ans.header.Set("Allow", sp.method)
		ans.fail(sp, now, problem{kind: methodNotAllowed, message: "use " + sp.method})
	default:
		s.requests++
		if agent := (agentKey{presented, r.UserAgent()}); s.byAgent[agent] > 0 || len(s.byAgent) < maxExchanges {
			s.byAgent[agent]++
		}
		s.serve(&ans, r, body, readErr, now)
		ans.pace = s.pace
	}
	s.record(presented, keyHeader, r, body, ans)
	return ans, true
}

// serve answers a request to the dialect's endpoint. s.mu is held.
func (s *Simulator) serve(ans *answer, r *http.Request, body []byte, readErr error, now time.Time) {
	sp := s.spec
	pathModel := ""
	if sp.route != nil {
		var refused *problem
		if pathModel, refused = sp.route(r); refused != nil {
			ans.fail(sp, now, *refused)
			return
		}
	}
	key, given := sp.key(r.Header)
	if !given && sp.queryKey != "" {
		key = r.URL.Query().Get(sp.queryKey)
		given = key != ""
	}
	a := s.accounts[key]
	if a != nil && a.subscription && sp.subscription {
		a = nil // an OAuth token is no API key
	}
	if token, ok := bearerKey(r.Header); !given && ok && sp.subscription && s.accounts[token] != nil && s.accounts[token].subscription {
		if !hasToken(r.Header, "Anthropic-Beta", oauthBeta) {
			ans.fail(sp, now, problem{kind: unauthorized, message: "OAuth authentication is currently not supported."})
			return
		}
		key, given, a = token, true, s.accounts[token]
	}
	if !given || a == nil {
		message := "invalid API key"
		if !given {
			message = "no API key"
		}
		ans.fail(sp, now, problem{kind: unauthorized, message: message, key: key})
		return
	}
	if sp.version != "" && r.Header.Get("anthropic-version") != sp.version {
		ans.fail(sp, now, problem{kind: invalidRequest, message: "anthropic-version: header is required and must be " + sp.version})
		return
	}
	var c call
	if sp.request != nil {
		var err error
		if c, err = sp.request.parse(body, readErr, pathModel); err != nil {
			ans.fail(sp, now, problem{kind: invalidRequest, message: err.Error()})
			return
		}
		if sp.modelInPath {
			c.model = modelOfPath(r.URL.Path)
		}
		if !s.models[c.model] {
			ans.fail(sp, now, problem{kind: unknownModel, message: fmt.Sprintf("model %q does not exist", c.model)})
			return
		}
	}
	switch a.fault {
	case ServerError:
		ans.fail(sp, now, problem{kind: unavailable, message: "simulated outage"})
		return
	case CloseConn:
		ans.hangUp = true
		return
	case QueueExceeded:
		ans.fail(sp, now, problem{kind: queueExceeded, message: "We're experiencing high traffic right now!"})
		return
	case InsufficientQuota:
		ans.fail(sp, now, problem{kind: insufficientQuota, message: "You exceeded your current quota"})
		return
	}

	bs := s.bucketsFor(a, c.model)
	u := usage{requests: 1, prompt: float64(c.prompt), completion: float64(c.completion), tokens: float64(c.prompt + c.completion)}
	short, retryAfter := "", 0.0
	if !sp.free {
		if short, retryAfter = bs.shortfall(u); short == "" {
			bs.spend(u, false)
		}
	}
	subscription := sp.subscription && a.subscription
	switch {
	case a.fault == NoHeaders, short != "" && a.fault == No429Headers:
	case a.fault == BadHeaders:
		sp.writeBadHeaders(ans.header)
		if subscription {
			writeBadUnified(ans.header)
		}
	default:
		sp.writeHeaders(ans.header, bs, now, short != "")
		if subscription {
			writeUnified(ans.header, bs, u, now)
		}
	}
	if short != "" {
		message := "Rate limit exceeded"
		if short == "unified" {
			message = "This request would exceed your account's rate limit. Please try again later."
		}
		if !sp.bodyOnly {
			ans.header.Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter))))
		}
		if sp.retryAfterMs {
			ans.header.Set("Retry-After-Ms", strconv.FormatInt(int64(ceilTo(retryAfter, time.Millisecond)/time.Millisecond), 10))
		}
		ans.fail(sp, now, problem{kind: rateLimited, message: message, resource: short,
			exhausted: bs.exhausted(u), retryAfter: retryAfter, model: c.model, fault: a.fault})
		return
	}
	rp := reply{call: c, buckets: bs, key: key, balance: a.balance, fault: a.fault, now: now, id: s.requests}
	if c.stream {
		ans.events(sp, now, sp.stream(rp))
		return
	}
	ans.reply(sp, now, http.StatusOK, sp.reply(rp))
}

// record keeps the exchange for LastExchange. s.mu is held.
func (s *Simulator) record(presented, keyHeader string, r *http.Request, body []byte, ans answer) {
	if _, seen := s.exchanges[presented]; !seen && len(s.exchanges) >= maxExchanges {
		return
	}
	header := r.Header.Clone()
	header.Del("Authorization")
	header.Del("X-Api-Key")
	header.Del("Api-Key")
	header.Del("X-Goog-Api-Key")
	s.exchanges[presented] = Exchange{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, KeyHeader: keyHeader, Header: header, Body: body,
		Status: ans.status, ResponseHeader: ans.header.Clone(), ResponseBody: ans.body,
	}
}

// presentedKey is the key a request carries, wherever it carries it, and
// the header it is in ("?key" for the query parameter).
func presentedKey(r *http.Request) (key, header string) {
	for _, name := range []string{"X-Api-Key", "Api-Key", "X-Goog-Api-Key"} {
		if key := r.Header.Get(name); key != "" {
			return key, name
		}
	}
	if key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return key, "Authorization"
	}
	if key := r.URL.Query().Get("key"); key != "" {
		return key, "?key"
	}
	return "", ""
}

// googKey reads an x-goog-api-key key.
func googKey(h http.Header) (string, bool) {
	key := h.Get("X-Goog-Api-Key")
	return key, key != ""
}

// modelOfPath reads the model of .../models/{model}:{method}.
func modelOfPath(path string) string {
	i := strings.LastIndex(path, "/models/")
	if i < 0 {
		return ""
	}
	model, _, _ := strings.Cut(path[i+len("/models/"):], ":")
	return model
}

// bearerKey reads an Authorization: Bearer key.
func bearerKey(h http.Header) (string, bool) {
	return strings.CutPrefix(h.Get("Authorization"), "Bearer ")
}

// apiKeyHeader reads an x-api-key key.
func apiKeyHeader(h http.Header) (string, bool) {
	key := h.Get("X-Api-Key")
	return key, key != ""
}

// errBodyTooLarge and errNotJSON are the reasons a body is refused before
// its fields are read.
var (
	errBodyTooLarge = errors.New("request body too large")
	errNotJSON      = errors.New("body is not a JSON object")
)
