package ratelimit

import (
	"testing"
	"time"
)

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
