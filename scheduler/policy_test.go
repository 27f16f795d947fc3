package scheduler

import (
	"math"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

func limit(resource, window string, v float64) ratelimit.Observation {
	return ratelimit.Observation{Kind: ratelimit.Limit, Resource: resource, Window: window, Value: v}
}

func TestQuotaInterval(t *testing.T) {
	freeTrial := []ratelimit.Observation{
		limit("requests", "minute", 5), limit("requests", "hour", 150), limit("requests", "day", 2400),
		limit("tokens", "minute", 30000), limit("tokens", "hour", 1e6), limit("tokens", "day", 1e6),
	}
	for _, tc := range []struct {
		name   string
		obs    []ratelimit.Observation
		share  float64
		tokens float64
		want   time.Duration
		window string
	}{
		{"14,400 a day at 5%: 120s", []ratelimit.Observation{limit("requests", "day", 14400)}, 0.05, 10, 120 * time.Second, "requests/day"},
		{"free trial: the day window sets it", freeTrial, 0.05, 10, 720 * time.Second, "requests/day"},
		{"free trial at 50%", freeTrial, 0.5, 10, 72 * time.Second, "requests/day"},
		{"tokens set it when a probe is dear", []ratelimit.Observation{limit("requests", "day", 1e6), limit("tokens", "minute", 1000)}, 0.05, 100, 120 * time.Second, "tokens/minute"},
		{"tokens unknown: only requests count", []ratelimit.Observation{limit("requests", "day", 1e6), limit("tokens", "minute", 1000)}, 0.05, 0, 1728 * time.Millisecond, "requests/day"},
		{"share 1 turns it off", freeTrial, 1, 10, 0, ""},
		{"no limits known", nil, 0.05, 10, 0, ""},
		{"unnamed window is skipped", []ratelimit.Observation{limit("requests", "", 10)}, 0.05, 10, 0, ""},
		{"Anthropic's input tokens count", []ratelimit.Observation{limit("requests", "minute", 1000), limit("input_tokens", "minute", 100)}, 0.05, 9, 108 * time.Second, "input_tokens/minute"},
		{"Fireworks' generated tokens count", []ratelimit.Observation{limit("tokens_generated", "second", 10)}, 0.05, 10, 20 * time.Second, "tokens_generated/second"},
		{"an IETF policy's window of 10s", []ratelimit.Observation{limit("burst", "10s", 10), limit("requests", "10s", 2)}, 0.5, 10, 10 * time.Second, "requests/10s"},
		{"free_model_requests are requests", []ratelimit.Observation{limit("free_model_requests", "day", 1440)}, 0.05, 10, 1200 * time.Second, "free_model_requests/day"},
		{"credits are not priced", []ratelimit.Observation{limit("credits", "month", 1)}, 0.05, 10, 0, ""},
		{"a bogus usage stops at a day", []ratelimit.Observation{limit("tokens", "minute", 100)}, 0.05, 1e15, 24 * time.Hour, "tokens/minute"},
		{"a tiny limit stops at a day", []ratelimit.Observation{limit("requests", "month", 1e-300)}, 0.05, 10, 24 * time.Hour, "requests/month"},
		{"a zero limit is skipped", []ratelimit.Observation{limit("requests", "day", 0)}, 0.05, 10, 0, ""},
		{"remaining is not a limit", []ratelimit.Observation{{Kind: ratelimit.Remaining, Resource: "requests", Window: "day", Value: 1}}, 0.05, 10, 0, ""},
	} {
		got, why := quotaInterval(tc.obs, tc.share, tc.tokens)
		if got != tc.want || why.Window != tc.window {
			t.Errorf("%s: got %s (%s), want %s (%s)", tc.name, got, why.Window, tc.want, tc.window)
		}
	}
}

func TestProviderHold(t *testing.T) {
	exhausted := []ratelimit.Observation{
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 0},
		{Kind: ratelimit.Reset, Resource: "requests", Window: "minute", Value: 41.5},
		{Kind: ratelimit.Remaining, Resource: "tokens", Window: "day", Value: 10},
		{Kind: ratelimit.Reset, Resource: "tokens", Window: "day", Value: 30000},
	}
	for _, tc := range []struct {
		name   string
		r      prober.Result
		want   time.Duration
		reason string
	}{
		{"success", prober.Result{Outcome: prober.Success}, 0, ""},
		{"429 Retry-After", prober.Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: 30 * time.Second}, Outcome: prober.RateLimited}, 30 * time.Second, "Retry-After"},
		{"429 Retry-After capped", prober.Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: 5 * time.Hour}, Outcome: prober.RateLimited}, time.Hour, "Retry-After"},
		{"503 Retry-After", prober.Result{Reading: ratelimit.Reading{StatusCode: 503, RetryAfter: time.Minute}, Outcome: prober.HTTPError}, time.Minute, "Retry-After"},
		{"529 Retry-After (overloaded)", prober.Result{Reading: ratelimit.Reading{StatusCode: 529, RetryAfter: 2 * time.Minute}, Outcome: prober.HTTPError}, 2 * time.Minute, "Retry-After"},
		{"500 Retry-After is backoff's business", prober.Result{Reading: ratelimit.Reading{StatusCode: 500, RetryAfter: time.Minute}, Outcome: prober.HTTPError}, 0, ""},
		{"a window at 0 waits for its reset", prober.Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: 12 * time.Second, Observations: exhausted}, Outcome: prober.RateLimited}, 41500 * time.Millisecond, "requests/minute exhausted until its reset"},
		{"also after a 200", prober.Result{Reading: ratelimit.Reading{Observations: exhausted}, Outcome: prober.Success}, 41500 * time.Millisecond, "requests/minute exhausted until its reset"},
		{"reset capped at a day", prober.Result{Reading: ratelimit.Reading{Observations: []ratelimit.Observation{
			{Kind: ratelimit.Remaining, Resource: "requests", Window: "week", Value: 0},
			{Kind: ratelimit.Reset, Resource: "requests", Window: "week", Value: 1e9},
		}}, Outcome: prober.Success}, 24 * time.Hour, "requests/week exhausted until its reset"},
		{"a reset too long for a Duration is capped, not negative", prober.Result{Reading: ratelimit.Reading{Observations: []ratelimit.Observation{
			{Kind: ratelimit.Remaining, Resource: "requests", Window: "day", Value: 0},
			{Kind: ratelimit.Reset, Resource: "requests", Window: "day", Value: 9.3e9},
		}}, Outcome: prober.Success}, 24 * time.Hour, "requests/day exhausted until its reset"},
		{"429 Retry-After of 7 days capped", prober.Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: 7 * 24 * time.Hour}, Outcome: prober.RateLimited}, time.Hour, "Retry-After"},
		{"429 Retry-After past a Duration capped", prober.Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: math.MaxInt64}, Outcome: prober.RateLimited}, time.Hour, "Retry-After"},
		{"a rejected window waits for its reset", prober.Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: 10 * time.Second, Observations: []ratelimit.Observation{
			{Kind: ratelimit.Reset, Resource: "unified", Window: "5h", Value: 7200},
			{Kind: ratelimit.Status, Resource: "unified", Window: "5h", Value: ratelimit.StatusRejected},
			{Kind: ratelimit.Utilization, Resource: "unified", Window: "5h", Value: 1},
			{Kind: ratelimit.Reset, Resource: "unified", Window: "7d", Value: 300000},
			{Kind: ratelimit.Status, Resource: "unified", Window: "7d", Value: ratelimit.StatusAllowedWarning},
		}}, Outcome: prober.RateLimited}, 2 * time.Hour, "unified/5h rejected until its reset"},
		{"a rejected week's reset capped at a day", prober.Result{Reading: ratelimit.Reading{StatusCode: 429, Observations: []ratelimit.Observation{
			{Kind: ratelimit.Reset, Resource: "unified", Window: "7d", Value: 5 * 86400},
			{Kind: ratelimit.Status, Resource: "unified", Window: "7d", Value: ratelimit.StatusRejected},
		}}, Outcome: prober.RateLimited}, 24 * time.Hour, "unified/7d rejected until its reset"},
		{"a rejected window without a reset: Retry-After alone", prober.Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: 10 * time.Second, Observations: []ratelimit.Observation{
			{Kind: ratelimit.Status, Resource: "unified", Window: "5h", Value: ratelimit.StatusRejected},
			{Kind: ratelimit.Reset, Resource: "unified", Window: "7d", Value: 300000},
		}}, Outcome: prober.RateLimited}, 10 * time.Second, "Retry-After"},
		{"allowed and warned windows hold nothing", prober.Result{Reading: ratelimit.Reading{StatusCode: 200, Observations: []ratelimit.Observation{
			{Kind: ratelimit.Reset, Resource: "unified", Window: "5h", Value: 7200},
			{Kind: ratelimit.Status, Resource: "unified", Window: "5h", Value: ratelimit.StatusAllowed},
			{Kind: ratelimit.Utilization, Resource: "unified", Window: "5h", Value: 0.42},
			{Kind: ratelimit.Reset, Resource: "unified", Window: "7d", Value: 300000},
			{Kind: ratelimit.Status, Resource: "unified", Window: "7d", Value: ratelimit.StatusAllowedWarning},
		}}, Outcome: prober.Success}, 0, ""},
	} {
		got, reason := providerHold(&tc.r.Reading)
		if got != tc.want || reason != tc.reason {
			t.Errorf("%s: got %s %q, want %s %q", tc.name, got, reason, tc.want, tc.reason)
		}
	}
}

func TestFailureBackoff(t *testing.T) {
	jitter := func() float64 { return 0.25 } // scales by 0.75
	unauthorized := prober.Result{Reading: ratelimit.Reading{StatusCode: 401}, Outcome: prober.Unauthorized}
	for _, tc := range []struct {
		name     string
		r        prober.Result
		failures int
		base     time.Duration
		want     time.Duration
		reason   string
	}{
		{"first 401 doubles the interval", unauthorized, 1, time.Minute, 2 * time.Minute, "backoff"},
		{"second 401", unauthorized, 2, time.Minute, 4 * time.Minute, "backoff"},
		{"fifth 401", unauthorized, 5, time.Minute, 32 * time.Minute, "backoff"},
		{"capped at an hour", unauthorized, 6, time.Minute, time.Hour, "backoff"},
		{"many failures do not overflow", unauthorized, 500, 24 * time.Hour, time.Hour, "backoff"},
		{"unreadable key file", prober.Result{Outcome: prober.Unauthorized}, 1, time.Minute, 2 * time.Minute, "backoff"},
		{"404 model", prober.Result{Reading: ratelimit.Reading{StatusCode: 404}, Outcome: prober.HTTPError}, 1, time.Minute, 2 * time.Minute, "backoff"},
		{"503 with jitter", prober.Result{Reading: ratelimit.Reading{StatusCode: 503}, Outcome: prober.HTTPError}, 1, time.Minute, 90 * time.Second, "backoff with jitter"},
		{"network error with jitter", prober.Result{Outcome: prober.NetworkError}, 2, time.Minute, 3 * time.Minute, "backoff with jitter"},
		{"timeout with jitter", prober.Result{Outcome: prober.Timeout}, 1, 10 * time.Second, 15 * time.Second, "backoff with jitter"},
		{"scrape mode min_interval 0 backs off from 1s", unauthorized, 1, 0, 2 * time.Second, "backoff"},
		{"429 is not a failure to back off from", prober.Result{Reading: ratelimit.Reading{StatusCode: 429}, Outcome: prober.RateLimited}, 1, time.Minute, 0, ""},
		{"no headers is not either", prober.Result{Reading: ratelimit.Reading{StatusCode: 200}, Outcome: prober.NoHeaders}, 1, time.Minute, 0, ""},
	} {
		got, reason := failureBackoff(&tc.r, tc.failures, tc.base, jitter)
		if got != tc.want || reason != tc.reason {
			t.Errorf("%s: got %s %q, want %s %q", tc.name, got, reason, tc.want, tc.reason)
		}
	}
}
