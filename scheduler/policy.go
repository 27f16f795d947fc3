package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Caps on how long the provider's answers can hold probes off.
const (
	maxRetryAfter = time.Hour      // a Retry-After
	maxBackoff    = time.Hour      // repeated failures
	maxResetWait  = 24 * time.Hour // a window at 0 until its reset; bounds a bogus reset value
)

// stretch says why an interval was made longer than configured.
type stretch struct {
	Window string  // such as "requests/day"
	Limit  float64 // the window's limit
}

// quotaInterval returns the shortest interval between probes of one key and
// model that spends at most share of every window's limit, given the limits
// last read and the tokens one probe costs (0 when unknown), and the window
// that sets it. With no limits known, or share 1, it returns 0.
func quotaInterval(obs []ratelimit.Observation, share, tokensPerProbe float64) (time.Duration, stretch) {
	var longest time.Duration
	var why stretch
	if share >= 1 || share <= 0 {
		return 0, why
	}
	for _, o := range obs {
		length, known := ratelimit.WindowLength(o.Window)
		if o.Kind != ratelimit.Limit || o.Value <= 0 || !known {
			continue
		}
		cost := probeCost(o.Resource, tokensPerProbe)
		if cost <= 0 {
			continue
		}
		probesAllowed := share * o.Value / cost
		// In float seconds, capped before it becomes a Duration: a tiny
		// limit or a huge cost must not overflow into a negative interval.
		seconds := min(length.Seconds()/probesAllowed, maxStretch.Seconds())
		if interval := time.Duration(seconds * float64(time.Second)); interval > longest {
			longest, why = interval, stretch{Window: o.Resource + "/" + o.Window, Limit: o.Value}
		}
	}
	return longest, why
}

// maxStretch bounds a stretched interval: a bogus limit or usage must not
// stop probing for months.
const maxStretch = 24 * time.Hour

// probeCost is what one probe spends of a resource: one request of
// requests, every token billed of any token resource (input, output,
// prompt, generated: the whole bill bounds each part).
func probeCost(resource string, tokensPerProbe float64) float64 {
	switch {
	case resource == "requests" || strings.HasSuffix(resource, "_requests"):
		return 1
	case strings.Contains(resource, "tokens"):
		return tokensPerProbe
	}
	return 0
}

// isBackoffFailure reports whether r is a failure that repeated probes
// cannot fix soon: refused keys, other client errors, outages, timeouts.
func isBackoffFailure(r *prober.Result) bool {
	switch r.Outcome {
	case prober.Unauthorized, prober.HTTPError, prober.Timeout, prober.NetworkError:
		return true
	}
	return false
}

// retryAfterStatuses are the statuses whose Retry-After is honoured: too
// many requests, unavailable, and the overloaded status some providers use.
var retryAfterStatuses = map[int]bool{429: true, 503: true, 529: true}

// providerHold returns how long the provider asked, by r, that no probe of
// the same key and model be sent, and why: the Retry-After of a 429, 503 or
// 529, or a window with nothing left, or rejected, until its reset.
func providerHold(r *ratelimit.Reading) (time.Duration, string) {
	var wait time.Duration
	var reason string
	if retryAfterStatuses[r.StatusCode] && r.RetryAfter > 0 {
		wait, reason = min(r.RetryAfter, maxRetryAfter), "Retry-After"
	}
	resets := map[[2]string]float64{}
	for _, o := range r.Observations {
		if o.Kind == ratelimit.Reset {
			resets[[2]string{o.Resource, o.Window}] = o.Value
		}
	}
	for _, o := range r.Observations {
		var state string
		switch {
		case o.Kind == ratelimit.Remaining && o.Value == 0:
			state = "exhausted"
		case o.Kind == ratelimit.Status && o.Value == ratelimit.StatusRejected:
			state = "rejected"
		default:
			continue
		}
		reset, ok := resets[[2]string{o.Resource, o.Window}]
		if d := untilReset(reset); ok && d > wait {
			wait, reason = d, fmt.Sprintf("%s/%s %s until its reset", o.Resource, o.Window, state)
		}
	}
	return wait, reason
}

// untilReset is a reset in seconds as a wait, at most maxResetWait; capped
// in seconds first, as one too long for a Duration would overflow into a
// negative wait, no wait at all.
func untilReset(seconds float64) time.Duration {
	return time.Duration(min(seconds, maxResetWait.Seconds()) * float64(time.Second))
}

// failureBackoff returns how long to wait after r, the failures-th failure
// in a row, before probing again: base doubled per failure, capped at
// maxBackoff, with jitter for outages, which end for every client at once.
// jitter returns a number in [0, 1). It returns 0 for results that are not
// failures to back off from.
func failureBackoff(r *prober.Result, failures int, base time.Duration, jitter func() float64) (time.Duration, string) {
	if !isBackoffFailure(r) || failures < 1 {
		return 0, ""
	}
	backoff := max(base, time.Second)
	for i := 0; i < failures && backoff < maxBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, maxBackoff)
	if r.StatusCode >= 500 || r.Outcome == prober.Timeout || r.Outcome == prober.NetworkError {
		return min(time.Duration(float64(backoff)*(0.5+jitter())), maxBackoff), "backoff with jitter"
	}
	return backoff, "backoff"
}
