package ratelimit

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

// Unread names each header Parse drops by its name or value, and why.
func TestUnread(t *testing.T) {
	h := http.Header{}
	h.Set("X-Ratelimit-Limit-Requests", "100")
	h.Set("X-Ratelimit-Remaining-Requests", "unknown")
	h["X-Ratelimit-Limit-Tokens"] = []string{"10", "20"}
	h.Set("X-Ratelimit-Frobnicate", "1")
	h.Set("Content-Type", "application/json")
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	_, dropped := Parser{}.Parse(h, now)
	got := Parser{}.Unread(h, now)
	want := []Unread{
		{"X-Ratelimit-Frobnicate", "a rate-limit header name of no known kind, resource and window"},
		{"X-Ratelimit-Limit-Tokens", "not a valid value, or several values that differ"},
		{"X-Ratelimit-Remaining-Requests", "not a valid value, or several values that differ"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Unread: %q, want %q", got, want)
	}
	if dropped != len(want) {
		t.Errorf("Parse dropped %d, Unread names %d", dropped, len(want))
	}
}
