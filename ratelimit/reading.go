package ratelimit

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Reading is what one response said about a key's limits, whoever sent
// the request: the exporter's own probe or an application through the
// proxy.
type Reading struct {
	Time         time.Time // when the response arrived, or the probe ended without one
	StatusCode   int       // 0 without a response
	Observations []Observation
	Dropped      int // rate-limit values dropped: invalid, or beyond the cap
	// RetryAfter is how long a non-2xx response asked the client to wait
	// (retry-after-ms, else Retry-After as delay-seconds or an HTTP-date,
	// else a wait its body gives); 0 when it did not.
	RetryAfter time.Duration
	// Cause says why a 402, 429, 503 or 529 happened; "" for other statuses.
	Cause Cause
	// Served: a 2xx from a provider that sends no rate-limit values
	// unless one runs out (Gemini). It says that no window was empty
	// when the request was answered, and nothing more.
	Served bool
}

// Success reports whether the response said something of the limits: gave
// rate-limit values, or was Served.
func (r *Reading) Success() bool { return len(r.Observations) > 0 || r.Served }

// carriesLimits reports whether a response of this status carries
// rate-limit values worth reading: a 2xx, or a 429 saying what ran out.
// Other errors are answered by layers that know nothing of the key's
// limits (a gateway, an auth check) and may send stale or unrelated ones.
func carriesLimits(status int) bool {
	return status >= 200 && status < 300 || status == http.StatusTooManyRequests
}

// Read reads a response's header: its rate-limit values when its status
// carries them, and its Retry-After when it is not a 2xx.
func (p Parser) Read(status int, h http.Header, now time.Time) Reading {
	r := Reading{Time: now, StatusCode: status}
	if carriesLimits(status) {
		r.Observations, r.Dropped = p.Parse(h, now)
	}
	if status < 200 || status >= 300 {
		r.RetryAfter = retryAfterOf(h, now)
	}
	r.Cause = Classify(status, "", &r) // the caller knows better once it has read the body
	return r
}

// retryAfterOf reads the wait a response asks for: Azure's retry-after-ms
// (or x-ms-retry-after-ms), which is the more precise, else Retry-After.
func retryAfterOf(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		ms, err := strconv.ParseUint(strings.TrimSpace(h.Get(name)), 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange) || err == nil && ms > uint64(math.MaxInt64/time.Millisecond):
			return math.MaxInt64 // the longest wait, as RetryAfter reads one too long
		case err == nil && ms > 0:
			return time.Duration(ms) * time.Millisecond
		}
	}
	return RetryAfter(h.Get("Retry-After"), now)
}

// RetryAfter parses a Retry-After value, delay-seconds or an HTTP-date;
// it returns 0 for one it cannot read or a date already past.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if seconds, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// More seconds than a Duration holds asks for the longest wait:
		// the caller caps it, and must not read it as none.
		if err != nil || seconds > uint64(math.MaxInt64/time.Second) {
			return math.MaxInt64
		}
		return time.Duration(seconds) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
