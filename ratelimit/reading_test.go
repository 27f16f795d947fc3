package ratelimit

import (
	"math"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"Sat, 21 Nov 2026 12:05:00 GMT", 5 * time.Minute},
		{"Sat, 21 Nov 2026 11:55:00 GMT", 0}, // in the past
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"4294967296", 4294967296 * time.Second},
		{"99999999999", math.MaxInt64},
		{"99999999999999999999999", math.MaxInt64}, // the caller caps it
	} {
		if got := RetryAfter(tc.value, now); got != tc.want {
			t.Errorf("RetryAfter(%q) = %s, want %s", tc.value, got, tc.want)
		}
	}
}

// A Retry-After of more seconds than fit 32 bits asks for a very long wait,
// which the scheduler caps at an hour; it must not read as "no wait at all"
// while 4294967295 holds probes for the full hour.
func TestHugeRetryAfterIsNotIgnored(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, v := range []string{"4294967295", "4294967296", "99999999999"} {
		if got := RetryAfter(v, now); got < time.Hour {
			t.Errorf("Retry-After: %s read as %s, want at least an hour", v, got)
		}
	}
}

// Azure's retry-after-ms (or x-ms-retry-after-ms) is the more precise wait
// and wins over Retry-After; one too long for a Duration is the longest
// wait, never none; one that does not read leaves Retry-After to say.
func TestRetryAfterMilliseconds(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		want   time.Duration
	}{
		{"retry-after-ms wins", 429, http.Header{"Retry-After-Ms": {"5340"}, "Retry-After": {"6"}}, 5340 * time.Millisecond},
		{"x-ms-retry-after-ms", 429, http.Header{"X-Ms-Retry-After-Ms": {"250"}}, 250 * time.Millisecond},
		{"retry-after-ms before x-ms-retry-after-ms", 503, http.Header{"Retry-After-Ms": {"100"}, "X-Ms-Retry-After-Ms": {"250"}}, 100 * time.Millisecond},
		{"retry-after-ms 0 leaves Retry-After", 429, http.Header{"Retry-After-Ms": {"0"}, "Retry-After": {"6"}}, 6 * time.Second},
		{"retry-after-ms unreadable leaves Retry-After", 429, http.Header{"Retry-After-Ms": {"soon"}, "Retry-After": {"6"}}, 6 * time.Second},
		{"retry-after-ms negative leaves Retry-After", 429, http.Header{"Retry-After-Ms": {"-5"}, "Retry-After": {"6"}}, 6 * time.Second},
		{"retry-after-ms past a Duration", 429, http.Header{"Retry-After-Ms": {"9223372036855"}}, math.MaxInt64},
		{"retry-after-ms past a uint64", 429, http.Header{"Retry-After-Ms": {"99999999999999999999999"}, "Retry-After": {"6"}}, math.MaxInt64},
		{"the longest that fits", 429, http.Header{"Retry-After-Ms": {"9223372036854"}}, 9223372036854 * time.Millisecond},
		{"a 2xx asks for no wait", 200, http.Header{"Retry-After-Ms": {"5340"}, "Retry-After": {"6"}}, 0},
	} {
		if got := (Parser{}).Read(tc.status, tc.header, now).RetryAfter; got != tc.want {
			t.Errorf("%s: RetryAfter = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// Azure's 429 sample, read whole: its windows at 0, its wait in
// milliseconds, and the cause of a short window.
func TestReadAzure429(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	got := Parser{}.Read(429, testkit.Headers(t, "azure-openai-429.headers"), now)
	want := Reading{Time: now, StatusCode: 429, RetryAfter: 5340 * time.Millisecond, Cause: CauseRateLimit, Observations: []Observation{
		{Remaining, "requests", "", 0}, {Reset, "requests", "", 6},
		{Remaining, "tokens", "", 0}, {Reset, "tokens", "", 6},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
