package ratelimit

import (
	"net/http"
	"strings"
	"time"
)

// Cause says why a provider refused a request, as far as its answer tells:
// each asks for another reaction, and a client that takes one for another
// retries for ever or gives up too soon.
type Cause string

// The causes, the cause label's values.
const (
	// CauseRateLimit: a short window ran out; retry after its reset.
	CauseRateLimit Cause = "rate_limit"
	// CauseQuotaExhausted: a window of a day or longer ran out, or the
	// account's quota did (insufficient_quota); retrying soon is no use.
	CauseQuotaExhausted Cause = "quota_exhausted"
	// CauseSpendLimit: a spend or billing limit was reached, or the
	// account's credit ran out (402); only someone raising it helps.
	CauseSpendLimit Cause = "spend_limit"
	// CauseOverloaded: the provider is short of capacity (503, 529,
	// queue_exceeded); not the key's limits at all.
	CauseOverloaded Cause = "overloaded"
	// CauseConcurrency: too many requests in flight at once.
	CauseConcurrency Cause = "concurrency"
)

// Causes lists every cause.
var Causes = [...]Cause{CauseRateLimit, CauseQuotaExhausted, CauseSpendLimit, CauseOverloaded, CauseConcurrency}

// StatusOverloaded is Anthropic's status for an overloaded API.
const StatusOverloaded = 529

// longWait is the length from which an exhausted window is a quota rather
// than a rate.
const longWait = 24 * time.Hour

// longReset is the wait, asked or until an exhausted window's reset, from
// which the refusal is a quota: about a day, as a day window that has
// just run out resets in a little less than one.
const longReset = 23 * time.Hour

// Error codes that say the cause outright, lower-cased.
var causeOfCode = map[string]Cause{
	"insufficient_quota":         CauseQuotaExhausted,
	"quota_exceeded":             CauseQuotaExhausted,
	"resource_exhausted":         CauseRateLimit, // Gemini's status: its violations say which quota
	"billing_hard_limit_reached": CauseSpendLimit,
	"billing_error":              CauseSpendLimit,
	"spend_limit_exceeded":       CauseSpendLimit,
	"budget_exceeded":            CauseSpendLimit,
	"insufficient_balance":       CauseSpendLimit,
	"overloaded_error":           CauseOverloaded,
	"queue_exceeded":             CauseOverloaded,
	"server_overloaded":          CauseOverloaded,
}

// Classify says why a response of status refused a request, from its
// status, the plain error code of its body ("" if none) and its reading;
// "" for a status that is not a refusal (402, 429, 503 or 529).
func Classify(status int, code string, r *Reading) Cause {
	switch status {
	case http.StatusTooManyRequests:
	case http.StatusPaymentRequired:
		return CauseSpendLimit
	case http.StatusServiceUnavailable, StatusOverloaded:
		return CauseOverloaded
	default:
		return ""
	}
	code = strings.ToLower(code)
	if c, ok := causeOfCode[code]; ok && c != CauseRateLimit {
		return c
	}
	switch {
	case strings.Contains(code, "concurren"):
		return CauseConcurrency
	case strings.Contains(code, "spend") || strings.Contains(code, "budget") || strings.Contains(code, "billing"):
		return CauseSpendLimit
	case strings.HasSuffix(code, "_per_day") || strings.Contains(code, "daily"):
		return CauseQuotaExhausted
	}
	if r.RetryAfter >= longReset || exhaustedForLong(r.Observations) {
		return CauseQuotaExhausted
	}
	return CauseRateLimit
}

// exhaustedForLong reports whether obs say that a window is exhausted
// (nothing remaining, all of it used, or rejected) and that it is a day or
// longer, or resets a day or more from now. obs need not be sorted.
func exhaustedForLong(obs []Observation) bool {
	type figures struct {
		exhausted bool
		reset     float64
	}
	var windows map[[2]string]*figures
	for _, o := range obs {
		if windows == nil {
			windows = map[[2]string]*figures{}
		}
		f := windows[[2]string{o.Resource, o.Window}]
		if f == nil {
			f = &figures{}
			windows[[2]string{o.Resource, o.Window}] = f
		}
		switch o.Kind {
		case Remaining:
			f.exhausted = f.exhausted || o.Value == 0
		case Utilization:
			f.exhausted = f.exhausted || o.Value >= 1
		case Status:
			f.exhausted = f.exhausted || o.Value == StatusRejected
		case Reset:
			f.reset = max(f.reset, o.Value)
		}
	}
	for name, f := range windows {
		if !f.exhausted {
			continue
		}
		if length, ok := WindowLength(name[1]); ok && length >= longWait || f.reset >= longReset.Seconds() {
			return true
		}
	}
	return false
}
