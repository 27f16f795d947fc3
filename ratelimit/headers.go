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

// HeaderPrefix starts the most common family of rate-limit header names.
const HeaderPrefix = "x-ratelimit-"

// prefixes start every family of rate-limit header names, lower-cased.
var prefixes = []string{HeaderPrefix, "x-tokenlimit-", "anthropic-ratelimit-", "anthropic-priority-"}

// IsRateLimitHeader reports whether name, in any case, belongs to a family
// of rate-limit headers that ParseHeaders reads.
func IsRateLimitHeader(name string) bool {
	lower := strings.ToLower(name)
	for _, p := range prefixes {
		if strings.HasPrefix(lower, p) {
			return true
		}
	}
	return false
}

// windows are the header-name segments that name a window.
var windows = map[string]bool{"second": true, "minute": true, "hour": true, "day": true, "week": true, "month": true}

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

// Parser reads rate-limit headers with what one provider documents about
// them. The zero Parser knows nothing beyond the header names.
type Parser struct {
	// Windows gives, by resource, the window of headers whose name gives
	// none (x-ratelimit-limit-requests, x-tokenlimit-limit): Groq documents
	// its requests pair as per day and its tokens pair as per minute.
	// Resources it does not list keep the window "".
	Windows map[string]string
}

// ParseHeaders is Parse with no clock of its own: absolute resets count from
// the response's Date header, and are dropped when it has none.
func ParseHeaders(h http.Header) (obs []Observation, dropped int) {
	return Parse(h, time.Time{})
}

// Parse is the zero Parser's Parse.
func Parse(h http.Header, now time.Time) (obs []Observation, dropped int) {
	return Parser{}.Parse(h, now)
}

// Parse returns the valid rate-limit observations in h, sorted by
// resource, window, kind and then value, and how many rate-limit headers it
// dropped, as invalid or past MaxObservations.
//
// A header is a rate-limit header when IsRateLimitHeader says so; each one
// (a key of h, with all its values) yields either one observation or one
// drop, so len(obs)+dropped is the number of such keys. The names read:
//
//   - x-ratelimit-{limit|remaining|reset}-{resource}[-{window}]: the last
//     segment is the window only when it is second, minute, hour, day, week
//     or month; otherwise the window is "" and the segment is the resource's.
//     Resources use _ for - (input-tokens: input_tokens), and req is
//     requests. Bare x-ratelimit-{limit|remaining|reset} is requests.
//   - x-tokenlimit-{limit|remaining}: tokens.
//   - anthropic-ratelimit-{resource}-{limit|remaining|reset}, per minute as
//     Anthropic documents, and anthropic-priority-{resource}-{...}, resource
//     priority_{resource}.
//
// Values must be finite, non-negative decimal numbers. Resets may also be
// Go durations ("6m0s"), RFC 3339 timestamps, Unix epoch seconds (a number
// above 1e9) or milliseconds (above 1e12); absolute ones become seconds from
// the response's Date header (the provider's clock) or, without one, from
// now (zero now: dropped), and a time already past is 0. Repeated headers or
// comma lists count only when every value agrees.
//
// Past MaxObservations valid values, the first MaxObservations in the sort
// order above are kept and the rest dropped, so the result depends only on
// the header's contents, never on map order. For n headers this takes
// O(n log MaxObservations) time and holds at most MaxObservations
// observations. (Value breaks ties only when h holds one name in two
// spellings, which net/http, canonicalizing names, never produces; both are
// then kept.)
func (p Parser) Parse(h http.Header, now time.Time) (obs []Observation, dropped int) {
	ref := now
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		ref = date
	}
	heaped := false // obs is a max-heap, full, once a value has overflowed it
	for name, values := range h {
		if !IsRateLimitHeader(name) {
			continue
		}
		kind, resource, window, ok := parseName(strings.ToLower(name))
		if !ok {
			dropped++
			continue
		}
		value, ok := parseValues(kind, values, ref)
		if !ok {
			dropped++
			continue
		}
		if window == "" {
			window = p.Windows[resource]
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
		if Compare(o, obs[0]) < 0 {
			obs[0] = o
			siftDown(obs, 0)
		}
	}
	slices.SortFunc(obs, Compare)
	return obs, dropped
}

// Compare orders observations as Parse returns them: by resource, window,
// kind, then value.
func Compare(a, b Observation) int {
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
			if c < len(h) && Compare(h[c], h[top]) > 0 {
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

// parseName reads a lower-cased rate-limit header name.
func parseName(name string) (kind Kind, resource, window string, ok bool) {
	kinds := []Kind{Limit, Remaining, Reset}
	switch {
	case strings.HasPrefix(name, "x-tokenlimit-"):
		switch k := Kind(strings.TrimPrefix(name, "x-tokenlimit-")); k {
		case Limit, Remaining:
			return k, "tokens", "", true
		}
		return "", "", "", false
	case strings.HasPrefix(name, "anthropic-"):
		rest, priority := strings.CutPrefix(name, "anthropic-priority-")
		if !priority {
			rest = strings.TrimPrefix(name, "anthropic-ratelimit-")
		}
		for _, k := range kinds {
			if r, found := strings.CutSuffix(rest, "-"+string(k)); found && validNamePart(r) {
				resource = resourceName(r)
				if priority {
					resource = "priority_" + resource
				}
				return k, resource, "minute", true
			}
		}
		return "", "", "", false
	}
	rest := strings.TrimPrefix(name, HeaderPrefix)
	for _, k := range kinds {
		if rest == string(k) {
			return k, "requests", "", true
		}
		if after, found := strings.CutPrefix(rest, string(k)+"-"); found {
			kind, rest = k, after
			break
		}
	}
	if kind == "" || !validNamePart(rest) {
		return "", "", "", false
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 && windows[rest[i+1:]] {
		return kind, resourceName(rest[:i]), intern(rest[i+1:]), true
	}
	return kind, resourceName(rest), "", true
}

// resourceName is a header's resource segments as a label value.
func resourceName(s string) string {
	if s == "req" {
		return "requests"
	}
	return intern(strings.ReplaceAll(s, "-", "_"))
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
	case "input_tokens":
		return "input_tokens"
	case "output_tokens":
		return "output_tokens"
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

func parseValues(kind Kind, values []string, ref time.Time) (float64, bool) {
	var (
		result float64
		seen   bool
	)
	for _, line := range values {
		for _, field := range strings.Split(line, ",") {
			v, ok := parseValue(kind, strings.TrimSpace(field), ref)
			if !ok || (seen && v != result) {
				return 0, false
			}
			result, seen = v, true
		}
	}
	return result, seen
}

// Bare reset numbers above these are Unix epoch times: no window resets
// 31 years from now.
const (
	epochSeconds      = 1e9
	epochMilliseconds = 1e12
)

func parseValue(kind Kind, s string, ref time.Time) (float64, bool) {
	if isDecimal(s) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, false
		}
		switch {
		case kind != Reset || v <= epochSeconds:
			return v, true
		case v > epochMilliseconds:
			return secondsUntil(time.UnixMilli(int64(v)), ref)
		default:
			return secondsUntil(time.Unix(0, int64(v*1e9)), ref)
		}
	}
	if kind == Reset && s != "" && s[0] != '-' && s[0] != '+' {
		if d, err := time.ParseDuration(s); err == nil {
			return d.Seconds(), true
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return secondsUntil(t, ref)
		}
	}
	return 0, false
}

// secondsUntil turns an absolute reset into seconds from ref; a reset
// already past is 0. Without ref there is nothing to count from.
func secondsUntil(reset, ref time.Time) (float64, bool) {
	if ref.IsZero() {
		return 0, false
	}
	return max(reset.Sub(ref).Seconds(), 0), true
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
