// Package ratelimit reads provider rate-limit headers into observations.
package ratelimit

import (
	"cmp"
	"net/http"
	"slices"
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

// MaxObservations bounds what one response may add, so a hostile or broken
// upstream cannot create unbounded series. Cerebras sends 18. When a response
// holds more valid rate-limit values, ParseHeaders keeps the first
// MaxObservations in its sort order and counts the rest as dropped.
const MaxObservations = 64

// Observation is one valid rate-limit header value.
type Observation struct {
	Kind     Kind
	Resource string // such as "requests" or "tokens"
	Window   string // such as "minute", "hour", "day", or "10s" from an IETF policy; empty when unknown
	Value    float64
}

// Parser reads rate-limit headers with what one provider documents about
// them. The zero Parser knows nothing beyond the header names.
type Parser struct {
	// Windows gives, by resource, the window of headers whose name gives
	// none (x-ratelimit-limit-requests, x-tokenlimit-limit, the IETF
	// draft's RateLimit-Limit) and of draft policies without a w: Groq
	// documents its requests pair as per day and its tokens pair as per
	// minute. Resources it does not list keep the window "".
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
// resource, window, kind and then value, and how many rate-limit values it
// dropped, as invalid or past MaxObservations.
//
// A header is a rate-limit header when IsRateLimitHeader says so. Every
// value such headers could hold is either an observation or a drop, so
// len(obs)+dropped counts those values: one for each key of h (with all its
// values) except RateLimit-Policy and RateLimit; for each key of those two,
// one per member of a RateLimit-Policy List (its q) and two per member of a
// RateLimit List (its r and t), or one when the field is not a List or has
// no members. The names read:
//
//   - x-ratelimit-{limit|remaining|reset}-{resource}[-{window}]: the last
//     segment is the window only when it is second, minute, hour, day, week
//     or month; otherwise the window is "" and the segment is the resource's.
//     Resources use _ for - (input-tokens: input_tokens), and req is
//     requests. Bare x-ratelimit-{limit|remaining|reset} is requests.
//     x-ratelimit-over-limit is a flag, not a value: neither read nor
//     dropped.
//   - x-tokenlimit-{limit|remaining}: tokens.
//   - anthropic-ratelimit-{resource}-{limit|remaining|reset}, per minute as
//     Anthropic documents, and anthropic-priority-{resource}-{...}, resource
//     priority_{resource}.
//   - RateLimit-Policy and RateLimit, the IETF HTTPAPI draft "RateLimit
//     header fields for HTTP" from draft-08 on: structured-field Lists (RFC
//     9651, formerly 8941) of Items named by a String or a Token, the
//     policy. The name, lower-cased with _ for -, is the resource as it is
//     (req stays req); a name other than letters, digits, '_' and inner
//     hyphens, or a member that is not such an Item, drops what the member
//     holds. A policy's q is its limit and its w its window in seconds: 60,
//     3600 and 86400 are minute, hour and day, any other positive Integer n
//     is "{n}s", and a w of another kind drops the policy, whose limit would
//     otherwise be filed under a window nobody can name. A RateLimit
//     member's r is the remaining and t the seconds until reset, in the
//     window of the first policy of its name. Each of q, r and t is dropped
//     unless it is a non-negative Integer or Decimal; other parameters (pk,
//     qu) are ignored. Repeated fields are one List, as RFC 9651 joins them.
//   - RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset, the draft's
//     older fields (draft-06 and before): requests, read as the x-ratelimit
//     family's values. A RateLimit-Limit that is not such a value may
//     still be a structured List whose first member is the limit, as in
//     draft-06 where quota policies follow it ("100, 100;w=60"): the w of
//     the first member equal to the limit (the limit's own included) then
//     gives the window of all three fields, named as a policy's.
//
// A window that neither the name nor a policy gives is the Parser's
// Windows for the resource, else "".
//
// Values must be finite, non-negative decimal numbers. Resets, except the
// structured t, may also be Go durations ("6m0s"), RFC 3339 timestamps, Unix
// epoch seconds (a number above 1e9) or milliseconds (above 1e12); absolute
// ones become seconds from the response's Date header (the provider's clock)
// or, without one, from now (zero now: dropped), and a time already past is
// 0. Outside the structured fields, repeated headers or comma lists count
// only when every value agrees.
//
// Past MaxObservations valid values, the first MaxObservations in the sort
// order above are kept and the rest dropped, so the result depends only on
// the header's contents, never on map order. For n values this takes
// O(n log MaxObservations) time and holds at most MaxObservations
// observations. (Value breaks ties only when two headers give one
// resource, window and kind: one name in two spellings, which net/http,
// canonicalizing names, never produces; two families giving one figure, as
// x-ratelimit-limit and RateLimit-Limit do; or one policy named twice. All
// are then kept: the collector keeps the most cautious of them.)
func (p Parser) Parse(h http.Header, now time.Time) (obs []Observation, dropped int) {
	ref := now
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		ref = date
	}
	var kept capped
	var draft []string // the IETF draft's fields, read once the loop is done
	for name, values := range h {
		lower := strings.ToLower(name)
		if isDraftField(lower) {
			draft = append(draft, name)
			continue
		}
		if !isFamilyHeader(lower) {
			continue
		}
		kind, resource, window, ok := parseName(lower)
		if !ok {
			kept.dropped++
			continue
		}
		value, ok := parseValues(kind, values, ref)
		if !ok {
			kept.dropped++
			continue
		}
		if window == "" {
			window = p.Windows[resource]
		}
		kept.add(Observation{Kind: kind, Resource: resource, Window: window, Value: value})
	}
	if draft != nil {
		p.parseDraft(h, draft, ref, &kept)
	}
	slices.SortFunc(kept.obs, Compare)
	return kept.obs, kept.dropped
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
