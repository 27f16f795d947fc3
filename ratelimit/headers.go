// Package ratelimit reads provider rate-limit headers into observations.
package ratelimit

import (
	"math"
	"net/http"
	"sort"
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
// upstream cannot create unbounded series. Cerebras sends 18.
const MaxObservations = 64

// Observation is one valid rate-limit header value.
type Observation struct {
	Kind     Kind
	Resource string // such as "requests" or "tokens"
	Window   string // such as "minute", "hour", "day"; empty when the name carries none
	Value    float64
}

// ParseHeaders returns the valid rate-limit observations in h, sorted by
// resource, window and kind, and how many rate-limit values it dropped as invalid.
//
// A header name is x-ratelimit-{limit|remaining|reset}-{resource}[-{window}]:
// the window is the part after the last hyphen, so new resources and windows
// need no code change. Values must be finite, non-negative decimal numbers;
// resets may also be Go durations ("6m0s"). Repeated headers or comma lists
// count only when every value agrees.
func ParseHeaders(h http.Header) (obs []Observation, dropped int) {
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
		if !ok || len(obs) == MaxObservations {
			dropped++
			continue
		}
		obs = append(obs, Observation{Kind: kind, Resource: resource, Window: window, Value: value})
	}
	sort.Slice(obs, func(i, j int) bool {
		a, b := obs[i], obs[j]
		if a.Resource != b.Resource {
			return a.Resource < b.Resource
		}
		if a.Window != b.Window {
			return a.Window < b.Window
		}
		return a.Kind < b.Kind
	})
	return obs, dropped
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
