package ratelimit

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// windowLengths are the windows a header name can end in, and their lengths.
var windowLengths = map[string]time.Duration{
	"second": time.Second,
	"minute": time.Minute,
	"hour":   time.Hour,
	"day":    24 * time.Hour,
	"week":   7 * 24 * time.Hour,
	"month":  30 * 24 * time.Hour,
}

// WindowLength is how long a window of an observation is: one that header
// names give, or "{n}s" from an IETF policy. A window nobody named ("") has
// no length, nor has one too long for a time.Duration.
func WindowLength(window string) (time.Duration, bool) {
	if length, ok := windowLengths[window]; ok {
		return length, true
	}
	digits, ok := strings.CutSuffix(window, "s")
	if !ok {
		return 0, false
	}
	seconds, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || seconds == 0 || seconds > math.MaxInt64/uint64(time.Second) {
		return 0, false
	}
	return time.Duration(seconds) * time.Second, true
}

// windowOfSeconds names a window of n > 0 seconds. Only minute, hour and day
// are named, as they always were, so other policies' series keep their labels.
func windowOfSeconds(n int64) string {
	for _, name := range [...]string{"minute", "hour", "day"} {
		if int64(windowLengths[name]/time.Second) == n {
			return name
		}
	}
	return strconv.FormatInt(n, 10) + "s"
}

// Window holds what one response said of one resource and window: its
// three figures in one entry, a third of what three observations take.
type Window struct {
	Resource, Window string
	Values           [3]float64 // by kind: limit, remaining, reset (seconds)
	Has              [3]bool
}

// KindIndex is the index into Window.Values of each kind.
var KindIndex = map[Kind]int{Limit: 0, Remaining: 1, Reset: 2}

// Windows groups observations, sorted as Parse returns them, into windows,
// reusing buf. Two values of one figure (a gateway's RateLimit-Limit beside
// the provider's x-ratelimit-limit) keep the most cautious: the least limit
// and remaining, the latest reset, so that a window one header says is
// empty never shows as full. It returns how many values it left out.
func Windows(obs []Observation, buf []Window) ([]Window, int) {
	left := 0
	for _, o := range obs {
		if n := len(buf); n == 0 || buf[n-1].Resource != o.Resource || buf[n-1].Window != o.Window {
			buf = append(buf, Window{Resource: o.Resource, Window: o.Window})
		}
		w := &buf[len(buf)-1]
		k := KindIndex[o.Kind]
		if w.Has[k] {
			left++
			if o.Kind != Reset {
				continue // sorted by value: the first was the least
			}
		}
		w.Values[k], w.Has[k] = o.Value, true
	}
	return slices.Clip(buf), left
}
