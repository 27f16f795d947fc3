package ratelimit

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestWindowLength(t *testing.T) {
	for _, tc := range []struct {
		window string
		want   time.Duration
		ok     bool
	}{
		{"second", time.Second, true},
		{"minute", time.Minute, true},
		{"hour", time.Hour, true},
		{"day", 24 * time.Hour, true},
		{"week", 7 * 24 * time.Hour, true},
		{"month", 30 * 24 * time.Hour, true},
		{"10s", 10 * time.Second, true},
		{"604800s", 7 * 24 * time.Hour, true},
		{"9223372036s", 9223372036 * time.Second, true},

		{"", 0, false},
		{"fortnight", 0, false},
		{"s", 0, false},
		{"0s", 0, false},
		{"-5s", 0, false},
		{"+5s", 0, false},
		{"1.5s", 0, false},
		{"10", 0, false},
		{"9223372037s", 0, false}, // past what a Duration holds
		{"999999999999999s", 0, false},

		{"30m", 30 * time.Minute, true},
		{"5h", 5 * time.Hour, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"106751d", 106751 * 24 * time.Hour, true},
		{"0h", 0, false},
		{"h", 0, false},
		{"d", 0, false},
		{"5w", 0, false},
		{"5H", 0, false},
		{"2562048h", 0, false},              // past what a Duration holds
		{"99999999999999999999d", 0, false}, // past what a uint64 holds
		{"9999999999999999999h", 0, false},
	} {
		if got, ok := WindowLength(tc.window); got != tc.want || ok != tc.ok {
			t.Errorf("WindowLength(%q) = %v, %v; want %v, %v", tc.window, got, ok, tc.want, tc.ok)
		}
	}
}

// Every window the parser gives, from a header name or a policy's w, has
// the length it was read as.
func TestParsedWindowsHaveLengths(t *testing.T) {
	for name, length := range windowLengths {
		h := http.Header{"X-Ratelimit-Limit-Requests-" + name: {"1"}}
		obs, _ := Parser{}.Parse(h, time.Time{})
		if len(obs) != 1 || obs[0].Window != name {
			t.Errorf("the header name's window %q read as %v", name, obs)
			continue
		}
		if got, ok := WindowLength(obs[0].Window); !ok || got != length {
			t.Errorf("WindowLength(%q) = %v, %v; want %v", name, got, ok, length)
		}
	}
	for _, w := range []int64{1, 10, 60, 90, 3600, 86400, 604800, 2592000, 999999999999999} {
		h := http.Header{"Ratelimit-Policy": {fmt.Sprintf(`"a";q=1;w=%d`, w)}}
		obs, _ := Parser{}.Parse(h, time.Time{})
		if len(obs) != 1 {
			t.Errorf("w=%d read as %v", w, obs)
			continue
		}
		got, ok := WindowLength(obs[0].Window)
		if fits := w <= 9223372036; ok != fits || fits && got != time.Duration(w)*time.Second {
			t.Errorf("w=%d is window %q of length %v, %v", w, obs[0].Window, got, ok)
		}
	}
}

// Two values of one figure keep the most cautious: the least limit,
// remaining and balance; the latest reset, the greatest utilization, the
// status nearest rejected. Each value left out is counted.
func TestWindowsKeepTheMostCautious(t *testing.T) {
	obs := []Observation{
		{Balance, "USD", "", 3}, {Balance, "USD", "", 5},
		{Limit, "unified", "5h", 10}, {Limit, "unified", "5h", 20},
		{Remaining, "unified", "5h", 1}, {Remaining, "unified", "5h", 2},
		{Reset, "unified", "5h", 30}, {Reset, "unified", "5h", 60},
		{Status, "unified", "5h", StatusAllowed}, {Status, "unified", "5h", StatusRejected},
		{Utilization, "unified", "5h", 0.2}, {Utilization, "unified", "5h", 0.9},
	}
	slices.SortFunc(obs, Compare)
	got, left := Windows(obs, nil)
	want := []Window{
		{Resource: "USD", Values: [len(Kinds)]float64{0, 0, 0, 0, 0, 3}, Has: [len(Kinds)]bool{false, false, false, false, false, true}},
		{Resource: "unified", Window: "5h",
			Values: [len(Kinds)]float64{10, 1, 60, 0.9, StatusRejected, 0},
			Has:    [len(Kinds)]bool{true, true, true, true, true, false}},
	}
	if !reflect.DeepEqual(got, want) || left != 6 {
		t.Errorf("got %+v, %d left out\nwant %+v, 6", got, left, want)
	}
}
