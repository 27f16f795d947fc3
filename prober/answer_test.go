package prober

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// What a body says joins what the header said: its windows (a refusal's
// too), the longer of two waits, whether a 2xx was served, and the cause
// from the status, the body's code and the whole reading.
func TestTakeAnswer(t *testing.T) {
	obs := func(kind ratelimit.Kind, resource, window string, v float64) ratelimit.Observation {
		return ratelimit.Observation{Kind: kind, Resource: resource, Window: window, Value: v}
	}
	for _, tc := range []struct {
		name   string
		header ratelimit.Reading // what the header said
		answer provider.Answer
		want   Result
	}{
		{
			name:   "a served 2xx without values is a success",
			header: ratelimit.Reading{StatusCode: 200},
			answer: provider.Answer{Served: true, Tokens: 3},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 200, Served: true}, Outcome: Success, Tokens: 3},
		},
		{
			name:   "a 2xx without values, not served, read nothing",
			header: ratelimit.Reading{StatusCode: 200},
			answer: provider.Answer{Tokens: 3},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 200}, Outcome: NoHeaders, Tokens: 3},
		},
		{
			name:   "a 2xx asks for no wait",
			header: ratelimit.Reading{StatusCode: 200, Observations: []ratelimit.Observation{obs(ratelimit.Limit, "requests", "day", 5)}},
			answer: provider.Answer{RetryAfter: time.Minute},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 200, Observations: []ratelimit.Observation{obs(ratelimit.Limit, "requests", "day", 5)}}, Outcome: Success},
		},
		{
			name:   "a 429 body's windows join the header's, sorted, and say the cause",
			header: ratelimit.Reading{StatusCode: 429, Observations: []ratelimit.Observation{obs(ratelimit.Remaining, "tokens", "minute", 0)}, Dropped: 1, RetryAfter: 30 * time.Second},
			answer: provider.Answer{ErrorCode: "resource_exhausted", RetryAfter: 43 * time.Second, Dropped: 2, Tokens: 9, Observations: []ratelimit.Observation{
				obs(ratelimit.Remaining, "requests", "minute", 0), obs(ratelimit.Remaining, "requests", "day", 0), obs(ratelimit.Limit, "requests", "minute", 10),
			}},
			want: Result{Reading: ratelimit.Reading{StatusCode: 429, Dropped: 3, RetryAfter: 43 * time.Second, Cause: ratelimit.CauseQuotaExhausted, Observations: []ratelimit.Observation{
				obs(ratelimit.Remaining, "requests", "day", 0), obs(ratelimit.Limit, "requests", "minute", 10), obs(ratelimit.Remaining, "requests", "minute", 0),
				obs(ratelimit.Remaining, "tokens", "minute", 0),
			}}, Outcome: RateLimited, ErrorCode: "resource_exhausted"},
		},
		{
			name:   "the header's longer wait wins",
			header: ratelimit.Reading{StatusCode: 429, RetryAfter: time.Minute},
			answer: provider.Answer{RetryAfter: 43 * time.Second},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: time.Minute, Cause: ratelimit.CauseRateLimit}, Outcome: RateLimited},
		},
		{
			name:   "a body's wait of a day is a quota",
			header: ratelimit.Reading{StatusCode: 429},
			answer: provider.Answer{RetryAfter: 25 * time.Hour},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: 25 * time.Hour, Cause: ratelimit.CauseQuotaExhausted}, Outcome: RateLimited},
		},
		{
			name:   "the body's code says the cause",
			header: ratelimit.Reading{StatusCode: 429, Cause: ratelimit.CauseRateLimit},
			answer: provider.Answer{ErrorCode: "insufficient_quota"},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 429, Cause: ratelimit.CauseQuotaExhausted}, Outcome: RateLimited, ErrorCode: "insufficient_quota"},
		},
		{
			name:   "429 queue_exceeded is the provider's capacity",
			header: ratelimit.Reading{StatusCode: 429},
			answer: provider.Answer{ErrorCode: "queue_exceeded"},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 429, Cause: ratelimit.CauseOverloaded}, Outcome: RateLimited, ErrorCode: "queue_exceeded"},
		},
		{
			name:   "529",
			header: ratelimit.Reading{StatusCode: 529},
			answer: provider.Answer{ErrorCode: "overloaded_error"},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 529, Cause: ratelimit.CauseOverloaded}, Outcome: HTTPError, ErrorCode: "overloaded_error"},
		},
		{
			name:   "402",
			header: ratelimit.Reading{StatusCode: 402},
			answer: provider.Answer{ErrorCode: "insufficient_balance"},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 402, Cause: ratelimit.CauseSpendLimit}, Outcome: HTTPError, ErrorCode: "insufficient_balance"},
		},
		{
			name:   "401 has no cause",
			header: ratelimit.Reading{StatusCode: 401},
			answer: provider.Answer{ErrorCode: "invalid_api_key", Served: true},
			want:   Result{Reading: ratelimit.Reading{StatusCode: 401}, Outcome: Unauthorized, ErrorCode: "invalid_api_key"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Result{Reading: tc.header}
			r.take(tc.answer)
			if (r.Err == nil) != (tc.want.Outcome == Success) {
				t.Errorf("err %v with outcome %s", r.Err, r.Outcome)
			}
			r.Err = nil
			if !reflect.DeepEqual(r, tc.want) {
				t.Errorf("got  %+v\nwant %+v", r, tc.want)
			}
		})
	}
}

// The cause of a refused probe, through a real response: from the status,
// the body's code and the header's values.
func TestProbeCause(t *testing.T) {
	for _, tc := range []struct {
		name, provider string
		status         int
		header         http.Header
		body           string
		outcome        Outcome
		cause          ratelimit.Cause
		retryAfter     time.Duration
	}{
		{"plain 429", "cerebras", 429, http.Header{"Retry-After": {"2"}}, `{"code":"request_quota_exceeded"}`, RateLimited, ratelimit.CauseRateLimit, 2 * time.Second},
		{"Cerebras's queue", "cerebras", 429, nil, `{"code":"queue_exceeded"}`, RateLimited, ratelimit.CauseOverloaded, 0},
		{"a day window at 0", "cerebras", 429, http.Header{"X-Ratelimit-Remaining-Tokens-Day": {"0"}}, `{"code":"token_quota_exceeded"}`, RateLimited, ratelimit.CauseQuotaExhausted, 0},
		{"OpenAI's quota", "openai", 429, nil, `{"error":{"code":"insufficient_quota"}}`, RateLimited, ratelimit.CauseQuotaExhausted, 0},
		{"Azure's wait in milliseconds", "openai_compatible", 429, http.Header{"Retry-After-Ms": {"5340"}, "Retry-After": {"6"}}, `{"error":{"code":"429"}}`, RateLimited, ratelimit.CauseRateLimit, 5340 * time.Millisecond},
		{"Anthropic overloaded", "anthropic", 529, nil, `{"type":"error","error":{"type":"overloaded_error"}}`, HTTPError, ratelimit.CauseOverloaded, 0},
		{"a subscription's week rejected", "anthropic", 429, http.Header{"Anthropic-Ratelimit-Unified-7d-Status": {"rejected"}}, `{"type":"error","error":{"type":"rate_limit_error"}}`, RateLimited, ratelimit.CauseQuotaExhausted, 0},
		{"served", "cerebras", 200, http.Header{"X-Ratelimit-Remaining-Requests-Day": {"0"}}, `{}`, Success, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for name, values := range tc.header {
					w.Header()[name] = values
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			tgt := target(srv.URL, canary)
			tgt.Key.Provider = tc.provider
			r := New("test").Probe(context.Background(), tgt)
			if r.Outcome != tc.outcome || r.Cause != tc.cause || r.RetryAfter != tc.retryAfter {
				t.Errorf("outcome %s, cause %q, retry after %s; want %s, %q, %s", r.Outcome, r.Cause, r.RetryAfter, tc.outcome, tc.cause, tc.retryAfter)
			}
		})
	}
}
