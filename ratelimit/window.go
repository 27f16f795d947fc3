package ratelimit

import (
	"slices"
)

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
