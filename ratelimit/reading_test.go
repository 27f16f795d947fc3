package ratelimit

import (
	"math"
	"testing"
	"time"
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
