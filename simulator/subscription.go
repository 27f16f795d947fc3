package simulator

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// oauthBeta is the anthropic-beta value without which Anthropic refuses an
// OAuth token, as Claude Code sends it with a subscription's token.
const oauthBeta = "oauth-2025-04-20"

// unifiedClaims are the windows of a subscription's "unified" allowance the
// dialect shows: their header name, the claim that names them in
// -representative-claim, and the used share from which their status is
// allowed_warning. The shares are those at which Claude Code's client
// warns (its EARLY_WARNING_CONFIGS: 0.9 of the five hours, 0.75 of the
// week); Anthropic does not document the server's, which has been seen
// advertising 0.75 in -surpassed-threshold.
var unifiedClaims = []struct {
	window, claim string
	warnAt        float64
}{
	{"5h", "five_hour", 0.9},
	{"7d", "seven_day", 0.75},
}

// fallbackPercentage is the share of the allowance left for a fallback
// model, which subscription answers carry; the exporter reads no figure in it.
const fallbackPercentage = "0.5"

// writeUnified writes the unified windows of Claude subscription traffic
// from the key's "unified" buckets, for a request that takes u: per window
// the used share (floored to hundredths, so that a window not yet spent
// never shows 1), its reset in Unix seconds and its status (rejected when
// it cannot take the request or is empty); overall, the worst status, the
// claim that decides it (the worst window, the fuller of equals) and that
// claim's reset.
func writeUnified(h http.Header, bs buckets, u usage, now time.Time) {
	const prefix = "anthropic-ratelimit-unified-"
	worst, claim, reset, worstUsed := -1, "", "", -1.0
	for _, c := range unifiedClaims {
		b := bs["unified"][c.window]
		if b == nil {
			continue
		}
		used := math.Min(math.Max(1-b.level/b.limit, 0), 1)
		status := statusAllowed
		switch {
		case b.level < u.of("unified") || b.level <= 0:
			status = statusRejected
		case used >= c.warnAt:
			status = statusAllowedWarning
			h.Set(prefix+c.window+"-surpassed-threshold", strconv.FormatFloat(c.warnAt, 'f', -1, 64))
		}
		at := strconv.FormatInt(now.Add(ceilTo(b.resetSeconds(), time.Second)).Unix(), 10)
		h.Set(prefix+c.window+"-utilization", strconv.FormatFloat(math.Floor(used*100+1e-9)/100, 'f', -1, 64))
		h.Set(prefix+c.window+"-reset", at)
		h.Set(prefix+c.window+"-status", statuses[status])
		if status > worst || status == worst && used > worstUsed {
			worst, claim, reset, worstUsed = status, c.claim, at, used
		}
	}
	if worst < 0 {
		return
	}
	h.Set(prefix+"status", statuses[worst])
	h.Set(prefix+"representative-claim", claim)
	h.Set(prefix+"reset", reset)
	h.Set(prefix+"fallback-percentage", fallbackPercentage)
}

// writeBadUnified writes unified windows whose figures are not numbers.
func writeBadUnified(h http.Header) {
	for _, c := range unifiedClaims {
		h.Set("anthropic-ratelimit-unified-"+c.window+"-utilization", "unknown")
	}
}

// Window statuses, worst last, as the unified headers word them.
const (
	statusAllowed = iota
	statusAllowedWarning
	statusRejected
)

var statuses = [...]string{"allowed", "allowed_warning", "rejected"}

// hasToken reports whether a comma-separated header (anthropic-beta) lists
// token, in any of its values.
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for field := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(field) == token {
				return true
			}
		}
	}
	return false
}
