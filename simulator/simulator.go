// Package simulator is a Cerebras-compatible chat-completions API with
// continuously refilling rate-limit buckets, for the demo, tests and benchmarks.
// It sends no traffic anywhere and knows only the keys it is given.
package simulator

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resources and windows, in the order headers are written.
var (
	Resources = []string{"requests", "tokens"}
	Windows   = []Window{{"minute", time.Minute}, {"hour", time.Hour}, {"day", 24 * time.Hour}}
)

// Window is a rate-limit window: its name in header names and its length.
type Window struct {
	Name   string
	Length time.Duration
}

// Limits are per-window limits, indexed by resource then window name.
type Limits map[string]map[string]float64

// FreeTrial are the limits of a free-trial Cerebras key as reported publicly
// (shared/testdata/cerebras-full.headers).
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
	ServerError         // 503 with a JSON error body
	NoHeaders           // 200 without rate-limit headers
	BadHeaders          // 200 with rate-limit headers whose values are not numbers
	CloseConn           // drop the connection without a response
	No429Headers        // a 429 carries no rate-limit headers
	QueueExceeded       // 429 queue_exceeded: provider capacity, not the key's quota
)

// Simulator serves POST .../chat/completions. It is safe for concurrent use.
type Simulator struct {
	mu       sync.Mutex
	now      func() time.Time
	latency  time.Duration
	models   map[string]bool
	accounts map[string]*account // by API key
	requests int
}

type account struct {
	limits  Limits
	fault   Fault
	buckets map[string]*buckets // by model
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

// New returns a simulator that serves the given models.
func New(models ...string) *Simulator {
	if len(models) == 0 {
		models = []string{"llama3.1-8b"}
	}
	s := &Simulator{now: time.Now, models: map[string]bool{}, accounts: map[string]*account{}}
	for _, m := range models {
		s.models[m] = true
	}
	return s
}

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

// AddKey makes apiKey valid with the given limits and full buckets.
func (s *Simulator) AddKey(apiKey string, limits Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[apiKey] = &account{limits: limits, buckets: map[string]*buckets{}}
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
// key's real traffic would. Buckets do not go below zero.
func (s *Simulator) Consume(apiKey, model string, requests, tokens float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[apiKey]
	if a == nil {
		return
	}
	spend := map[string]float64{"requests": requests, "tokens": tokens}
	for resource, windows := range *a.bucketsFor(model, s.now()) {
		for _, b := range windows {
			b.level = math.Max(0, b.level-spend[resource])
		}
	}
}

// Exhaust empties every request bucket of a key and model.
func (s *Simulator) Exhaust(apiKey, model string) {
	s.Consume(apiKey, model, math.Inf(1), 0)
}

// Requests returns how many chat-completion requests the simulator has answered.
func (s *Simulator) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (a *account) bucketsFor(model string, now time.Time) *buckets {
	bs := a.buckets[model]
	if bs == nil {
		bs = &buckets{}
		for resource, windows := range a.limits {
			(*bs)[resource] = map[string]*bucket{}
			for _, w := range Windows {
				if limit, ok := windows[w.Name]; ok {
					(*bs)[resource][w.Name] = &bucket{limit: limit, length: w.Length, level: limit, updated: now}
				}
			}
		}
		a.buckets[model] = bs
	}
	for _, windows := range *bs {
		for _, b := range windows {
			b.refill(now)
		}
	}
	return bs
}

type chatRequest struct {
	Model               string `json:"model"`
	MaxCompletionTokens *int   `json:"max_completion_tokens"`
	Messages            []struct {
		Content string `json:"content"`
	} `json:"messages"`
}

// ServeHTTP implements http.Handler.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	var req chatRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body is not a chat-completion request")
		return
	}

	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	apiKey, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	a := s.accounts[apiKey]
	if a == nil {
		// Real APIs have echoed the key they refused: the exporter must cope.
		writeError(w, http.StatusUnauthorized, "wrong_api_key", "Wrong API Key: "+apiKey)
		return
	}
	if !s.models[req.Model] {
		writeError(w, http.StatusNotFound, "model_not_found", fmt.Sprintf("model %q does not exist", req.Model))
		return
	}
	switch a.fault {
	case ServerError:
		writeError(w, http.StatusServiceUnavailable, "service_unavailable", "simulated outage")
		return
	case CloseConn:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case QueueExceeded:
		writeError(w, http.StatusTooManyRequests, "queue_exceeded", "We're experiencing high traffic right now!")
		return
	}

	completion := 16
	if req.MaxCompletionTokens != nil && *req.MaxCompletionTokens >= 0 {
		completion = *req.MaxCompletionTokens
	}
	prompt := 8
	for _, m := range req.Messages {
		prompt += (len(m.Content) + 3) / 4
	}
	bs := a.bucketsFor(req.Model, s.now())
	code := ""
	var retryAfter float64 // seconds until every short bucket has room
	need := map[string]float64{"requests": 1, "tokens": float64(prompt + completion)}
	for _, resource := range Resources {
		for _, w := range Windows {
			// The provider reserves max_completion_tokens before it runs a request.
			if b := (*bs)[resource][w.Name]; b != nil && b.level < need[resource] {
				if code == "" {
					code = map[string]string{"requests": "request_quota_exceeded", "tokens": "token_quota_exceeded"}[resource]
				}
				retryAfter = math.Max(retryAfter, (need[resource]-b.level)/b.limit*b.length.Seconds())
			}
		}
	}
	if code == "" {
		for resource, spend := range map[string]float64{"requests": 1, "tokens": float64(prompt + completion)} {
			for _, b := range (*bs)[resource] {
				b.level -= spend
			}
		}
	}

	switch {
	case a.fault == NoHeaders, code != "" && a.fault == No429Headers:
	case a.fault == BadHeaders:
		for _, resource := range Resources {
			for _, win := range Windows {
				w.Header().Set("x-ratelimit-limit-"+resource+"-"+win.Name, "unknown")
			}
		}
	default:
		writeHeaders(w.Header(), bs)
	}
	if code != "" {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter))))
		writeError(w, http.StatusTooManyRequests, code, "Rate limit exceeded")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id":      "chatcmpl-simulated",
		"object":  "chat.completion",
		"model":   req.Model,
		"created": s.now().Unix(),
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]string{"role": "assistant", "content": "Hello"},
			"finish_reason": "length",
		}},
		"usage": map[string]int{
			"prompt_tokens":     prompt,
			"completion_tokens": completion,
			"total_tokens":      prompt + completion,
		},
	})
}

// writeHeaders writes the Cerebras header set: integer limits and
// remainings, reset as float seconds.
func writeHeaders(h http.Header, bs *buckets) {
	for _, resource := range Resources {
		for _, win := range Windows {
			b := (*bs)[resource][win.Name]
			if b == nil {
				continue
			}
			suffix := resource + "-" + win.Name
			h.Set("x-ratelimit-limit-"+suffix, strconv.FormatFloat(b.limit, 'f', 0, 64))
			h.Set("x-ratelimit-remaining-"+suffix, strconv.FormatFloat(math.Max(0, math.Floor(b.level)), 'f', 0, 64))
			h.Set("x-ratelimit-reset-"+suffix, strconv.FormatFloat(b.resetSeconds(), 'f', -1, 64))
		}
	}
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"message": message,
		"type":    "invalid_request_error",
		"code":    code,
	})
}
