package server

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestScrapeTimeout(t *testing.T) {
	for _, tc := range []struct {
		header string
		offset time.Duration
		want   time.Duration
		ok     bool
	}{
		{"", 500 * time.Millisecond, 0, false},
		{"10", 500 * time.Millisecond, 9500 * time.Millisecond, true},
		{"2.5", 500 * time.Millisecond, 2 * time.Second, true},
		{"0.4", 500 * time.Millisecond, 400 * time.Millisecond, true}, // the offset would leave nothing
		{"10", 0, 10 * time.Second, true},
		{"0", 500 * time.Millisecond, 0, false},
		{"-3", 500 * time.Millisecond, 0, false},
		{"soon", 500 * time.Millisecond, 0, false},
		{"NaN", 500 * time.Millisecond, 0, false},
		{"1e300", 500 * time.Millisecond, 0, false},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if tc.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		got, ok := ScrapeTimeout(r, tc.offset)
		if got != tc.want || ok != tc.ok {
			t.Errorf("header %q offset %s: got %s %v, want %s %v", tc.header, tc.offset, got, ok, tc.want, tc.ok)
		}
	}
}
