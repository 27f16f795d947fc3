// Package ratelimit reads provider rate-limit headers into observations.
package ratelimit

import (
	"cmp"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind says which of a window's three figures an observation holds.
type Kind string

// The kinds a rate-limit header can carry.
const (
	Limit     Kind = "limit"
	Remaining Kind = "remaining"
	Reset     Kind = "reset"
)

// HeaderPrefix starts every rate-limit header name (compared case-insensitively).
const HeaderPrefix = "x-ratelimit-"

// MaxObservations bounds what one response may add, so a hostile or broken
// upstream cannot create unbounded series. Cerebras sends 18. When a response
// holds more valid rate-limit values, ParseHeaders keeps the first
// MaxObservations in its sort order and counts the rest as dropped.
const MaxObservations = 64

// Observation is one valid rate-limit header value.
type Observation struct {
	Kind     Kind
	Resource string // such as "requests" or "tokens"
	Window   string // such as "minute", "hour", "day"; empty when the name carries none
	Value    float64
}

// ParseHeaders returns the valid rate-limit observations in h, sorted by
// resource, window, kind and then value, and how many rate-limit headers it
// dropped, as invalid or past MaxObservations.
//
// A header is a rate-limit header when its name, lower-cased, starts with
// HeaderPrefix; each one (a key of h, with all its values) yields either one
// observation or one drop, so len(obs)+dropped is the number of such keys.
//
// A header name is x-ratelimit-{limit|remaining|reset}-{resource}[-{window}]:
// the window is the part after the last hyphen, so new resources and windows
// need no code change. Values must be finite, non-negative decimal numbers;
// resets may also be Go durations ("6m0s"). Repeated headers or comma lists
// count only when every value agrees.
//
// Past MaxObservations valid values, the first MaxObservations in the sort
// order above are kept and the rest dropped, so the result depends only on
// the header's contents, never on map order. For n headers this takes
// O(n log MaxObservations) time and holds at most MaxObservations
// observations. (Value breaks ties only when h holds one name in two
// spellings, which net/http, canonicalizing names, never produces; both are
// then kept.)
func ParseHeaders(h http.Header) (obs []Observation, dropped int) {
	heaped := false // obs is a max-heap, full, once a value has overflowed it
	for name, values := range h {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, HeaderPrefix) {
			continue
		}
		kind, resource, window, ok := parseName(lower[len(HeaderPrefix):])
		if !ok {
			dropped++
			continue
		}
		value, ok := parseValues(kind, values)
		if !ok {
			dropped++
			continue
		}
		o := Observation{Kind: kind, Resource: resource, Window: window, Value: value}
		if len(obs) < MaxObservations {
			obs = append(obs, o)
			continue
		}
		// Full: o displaces the greatest kept observation if it sorts before it.
		dropped++
		if !heaped {
			for i := len(obs)/2 - 1; i >= 0; i-- {
				siftDown(obs, i)
			}
			heaped = true
		}
		if compareObservations(o, obs[0]) < 0 {
			obs[0] = o
			siftDown(obs, 0)
		}
	}
	slices.SortFunc(obs, compareObservations)
	return obs, dropped
}

// compareObservations orders by resource, window, kind, then value.
func compareObservations(a, b Observation) int {
	if c := strings.Compare(a.Resource, b.Resource); c != 0 {
		return c
	}
	if c := strings.Compare(a.Window, b.Window); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
		return c
	}
	return cmp.Compare(a.Value, b.Value)
}

// siftDown moves h[i] down until no child below it sorts after it, restoring
// a max-heap whose subtrees below i already are heaps.
func siftDown(h []Observation, i int) {
	for {
		top := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(h) && compareObservations(h[c], h[top]) > 0 {
				top = c
			}
		}
		if top == i {
			return
		}
		h[i], h[top] = h[top], h[i]
		i = top
	}
}

func parseName(rest string) (kind Kind, resource, window string, ok bool) {
	for _, k := range []Kind{Limit, Remaining, Reset} {
		if after, found := strings.CutPrefix(rest, string(k)+"-"); found {
			kind, rest = k, after
			break
		}
	}
	if kind == "" || !validNamePart(rest) {
		return "", "", "", false
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		return kind, intern(rest[:i]), intern(rest[i+1:]), true
	}
	return kind, intern(rest), "", true
}

// intern returns the common names as constants, so that the observations
// kept between probes do not each hold on to a copy of their header's name.
func intern(s string) string {
	switch s {
	case "requests":
		return "requests"
	case "tokens":
		return "tokens"
	case "minute":
		return "minute"
	case "hour":
		return "hour"
	case "day":
		return "day"
	}
	return s
}

// validNamePart accepts lower-case letters, digits, '_' and inner hyphens.
func validNamePart(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func parseValues(kind Kind, values []string) (float64, bool) {
	var (
		result float64
		seen   bool
	)
	for _, line := range values {
		for _, field := range strings.Split(line, ",") {
			v, ok := parseValue(kind, strings.TrimSpace(field))
			if !ok || (seen && v != result) {
				return 0, false
			}
			result, seen = v, true
		}
	}
	return result, seen
}

func parseValue(kind Kind, s string) (float64, bool) {
	if isDecimal(s) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, false
		}
		return v, true
	}
	if kind == Reset && s != "" && s[0] != '-' && s[0] != '+' {
		if d, err := time.ParseDuration(s); err == nil {
			return d.Seconds(), true
		}
	}
	return 0, false
}

// isDecimal accepts digits with an optional fraction and exponent: no sign,
// no hex, no underscores, no "NaN" or "Inf" that strconv would take.
func isDecimal(s string) bool {
	i, digits := 0, 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		expDigits := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			expDigits++
		}
		if expDigits == 0 {
			return false
		}
	}
	return i == len(s)
}
