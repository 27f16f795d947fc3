package ratelimit

import (
	"math"
	"slices"
	"strconv"
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

// unitLengths are the units of a window written as a count and a unit:
// "10s" from an IETF policy, "5h" and "7d" from Anthropic's unified windows.
var unitLengths = map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}

// WindowLength is how long a window of an observation is: one that header
// names give, or a count and a unit ("10s", "5h", "7d"). A window nobody
// named ("") has no length, nor has one too long for a time.Duration.
func WindowLength(window string) (time.Duration, bool) {
	if length, ok := windowLengths[window]; ok {
		return length, true
	}
	if len(window) < 2 {
		return 0, false
	}
	unit, ok := unitLengths[window[len(window)-1]]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(window[:len(window)-1], 10, 64)
	if err != nil || n == 0 || n > math.MaxInt64/uint64(unit) {
		return 0, false
	}
	return time.Duration(n) * unit, true
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
// figures in one entry, a fraction of what one observation each takes.
type Window struct {
	Resource, Window string
	Values           [len(Kinds)]float64 // by kind, in the order of Kinds; reset in seconds
	Has              [len(Kinds)]bool
}

// KindIndex is the index into Window.Values of each kind.
var KindIndex = func() map[Kind]int {
	m := make(map[Kind]int, len(Kinds))
	for i, k := range Kinds {
		m[k] = i
	}
	return m
}()

// greatestIsCautious reports whether a figure is the more cautious the
// greater it is: a later reset, more of a window used, a status nearer
// rejected.
func greatestIsCautious(k Kind) bool { return k == Reset || k == Utilization || k == Status }

// Windows groups observations, sorted as Parse returns them, into windows,
// reusing buf. Two values of one figure (a gateway's RateLimit-Limit beside
// the provider's x-ratelimit-limit) keep the most cautious: the least limit,
// remaining and balance, the latest reset, the greatest utilization and the
// worst status, so that a window one header says is empty never shows as
// full. It returns how many values it left out.
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
			if !greatestIsCautious(o.Kind) {
				continue // sorted by value: the first was the least
			}
		}
		w.Values[k], w.Has[k] = o.Value, true
	}
	return slices.Clip(buf), left
}
