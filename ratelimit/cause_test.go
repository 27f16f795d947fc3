package ratelimit

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	obs := func(o ...Observation) Reading { return Reading{Observations: o} }
	for _, tc := range []struct {
		name    string
		status  int
		code    string
		reading Reading
		want    Cause
	}{
		{"plain 429", 429, "", Reading{}, CauseRateLimit},
		{"429 rate_limit_exceeded", 429, "rate_limit_exceeded", Reading{}, CauseRateLimit},
		{"429 with a short wait", 429, "", Reading{RetryAfter: 2 * time.Second}, CauseRateLimit},
		{"429 with a minute window at 0", 429, "", obs(Observation{Remaining, "requests", "minute", 0}, Observation{Reset, "requests", "minute", 30}), CauseRateLimit},
		{"429 with a day window not at 0", 429, "", obs(Observation{Remaining, "requests", "day", 5}), CauseRateLimit},
		{"Gemini's status is no cause by itself", 429, "RESOURCE_EXHAUSTED", Reading{}, CauseRateLimit},
		{"Cerebras's token bucket", 429, "token_quota_exceeded", Reading{}, CauseRateLimit},

		{"insufficient_quota", 429, "insufficient_quota", Reading{}, CauseQuotaExhausted},
		{"insufficient_quota in capitals", 429, "INSUFFICIENT_QUOTA", Reading{}, CauseQuotaExhausted},
		{"quota_exceeded", 429, "quota_exceeded", Reading{}, CauseQuotaExhausted},
		{"a per-day code", 429, "requests_per_day", Reading{}, CauseQuotaExhausted},
		{"a daily code", 429, "daily_limit_exceeded", Reading{}, CauseQuotaExhausted},
		{"Retry-After of a day", 429, "", Reading{RetryAfter: 24 * time.Hour}, CauseQuotaExhausted},
		{"Retry-After of a day less a moment", 429, "", Reading{RetryAfter: 24*time.Hour - time.Second}, CauseQuotaExhausted},
		{"Retry-After just under 23 hours", 429, "", Reading{RetryAfter: 23*time.Hour - time.Second}, CauseRateLimit},
		{"Retry-After past a Duration", 429, "", Reading{RetryAfter: math.MaxInt64}, CauseQuotaExhausted},
		{"a day window at 0", 429, "", obs(Observation{Remaining, "requests", "day", 0}), CauseQuotaExhausted},
		{"Gemini's day window at 0", 429, "resource_exhausted", obs(Observation{Remaining, "requests", "minute", 0}, Observation{Remaining, "requests", "day", 0}), CauseQuotaExhausted},
		{"a 7d window rejected", 429, "", obs(Observation{Status, "unified", "7d", StatusRejected}), CauseQuotaExhausted},
		{"a 5h window rejected", 429, "", obs(Observation{Status, "unified", "5h", StatusRejected}), CauseRateLimit},
		{"a 7d window warned", 429, "", obs(Observation{Status, "unified", "7d", StatusAllowedWarning}), CauseRateLimit},
		{"a 7d window used up", 429, "", obs(Observation{Utilization, "unified", "7d", 1}), CauseQuotaExhausted},
		{"a 7d window nearly used up", 429, "", obs(Observation{Utilization, "unified", "7d", 0.99}), CauseRateLimit},
		{"a window at 0 that resets in a day", 429, "", obs(Observation{Remaining, "tokens", "", 0}, Observation{Reset, "tokens", "", 86766}), CauseQuotaExhausted},
		{"an unnamed day window just emptied", 429, "", obs(Observation{Remaining, "requests", "", 0}, Observation{Reset, "requests", "", 86399.99}), CauseQuotaExhausted},
		{"a window at 0 that resets in 22 hours", 429, "", obs(Observation{Remaining, "requests", "", 0}, Observation{Reset, "requests", "", 22 * 3600}), CauseRateLimit},
		{"a window at 0 that resets soon", 429, "", obs(Observation{Remaining, "tokens", "", 0}, Observation{Reset, "tokens", "", 6}), CauseRateLimit},
		{"a window not at 0 that resets in a day", 429, "", obs(Observation{Remaining, "tokens", "", 1}, Observation{Reset, "tokens", "", 86766}), CauseRateLimit},
		{"a reset of another window", 429, "", obs(Observation{Remaining, "tokens", "", 0}, Observation{Reset, "requests", "", 86766}), CauseRateLimit},
		{"the overall unified status rejected until next week", 429, "", obs(Observation{Reset, "unified", "", 5 * 86400}, Observation{Status, "unified", "", StatusRejected}), CauseQuotaExhausted},

		{"billing_hard_limit_reached", 429, "billing_hard_limit_reached", Reading{}, CauseSpendLimit},
		{"budget_exceeded", 429, "budget_exceeded", Reading{}, CauseSpendLimit},
		{"a spend code", 429, "monthly_spend_cap", Reading{}, CauseSpendLimit},
		{"spend before a day window", 429, "spend_limit_exceeded", obs(Observation{Remaining, "requests", "day", 0}), CauseSpendLimit},
		{"402", http.StatusPaymentRequired, "insufficient_balance", Reading{}, CauseSpendLimit},
		{"402 without a code", http.StatusPaymentRequired, "", Reading{}, CauseSpendLimit},

		{"503", 503, "", Reading{}, CauseOverloaded},
		{"503 with a long wait", 503, "", Reading{RetryAfter: 48 * time.Hour}, CauseOverloaded},
		{"529", 529, "overloaded_error", Reading{}, CauseOverloaded},
		{"429 queue_exceeded (Cerebras)", 429, "queue_exceeded", Reading{}, CauseOverloaded},
		{"429 overloaded_error", 429, "overloaded_error", Reading{}, CauseOverloaded},

		{"too many concurrent requests", 429, "too_many_concurrent_requests", Reading{}, CauseConcurrency},
		{"concurrency_limit_exceeded", 429, "concurrency_limit_exceeded", Reading{}, CauseConcurrency},

		{"200", 200, "", Reading{}, ""},
		{"200 with a day window at 0", 200, "", obs(Observation{Remaining, "requests", "day", 0}), ""},
		{"400", 400, "budget_exceeded", Reading{}, ""},
		{"401", 401, "insufficient_quota", Reading{}, ""},
		{"500 overloaded_error", 500, "overloaded_error", Reading{}, ""},
		{"no response", 0, "", Reading{}, ""},
	} {
		if got := Classify(tc.status, tc.code, &tc.reading); got != tc.want {
			t.Errorf("%s: Classify(%d, %q) = %q, want %q", tc.name, tc.status, tc.code, got, tc.want)
		}
	}
}

// Read classifies from what the header says; the body's code comes later.
func TestReadClassifies(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		status int
		header http.Header
		want   Cause
	}{
		{429, http.Header{}, CauseRateLimit},
		{429, http.Header{"Retry-After": {"86400"}}, CauseQuotaExhausted},
		{429, http.Header{"X-Ratelimit-Remaining-Requests-Day": {"0"}}, CauseQuotaExhausted},
		{429, http.Header{"Anthropic-Ratelimit-Unified-7d-Status": {"rejected"}}, CauseQuotaExhausted},
		{529, http.Header{}, CauseOverloaded},
		{200, http.Header{"X-Ratelimit-Remaining-Requests-Day": {"0"}}, ""},
		// A 503's rate-limit values are not read, and its wait says nothing
		// of quotas: overloaded.
		{503, http.Header{"X-Ratelimit-Remaining-Requests-Day": {"0"}, "Retry-After": {"86400"}}, CauseOverloaded},
	} {
		if got := (Parser{}).Read(tc.status, tc.header, now).Cause; got != tc.want {
			t.Errorf("Read(%d, %v).Cause = %q, want %q", tc.status, tc.header, got, tc.want)
		}
	}
}
