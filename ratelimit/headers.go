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

	"github.com/dunglas/httpsfv"
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

// The fields of the IETF HTTPAPI draft "RateLimit header fields for HTTP",
// lower-cased: the structured pair of draft-08 onward and the three plain
// fields of draft-06 and before.
const (
	fieldPolicy    = "ratelimit-policy"
	fieldRateLimit = "ratelimit"
	fieldLimit     = "ratelimit-limit"
	fieldRemaining = "ratelimit-remaining"
	fieldReset     = "ratelimit-reset"
)

// overLimit is a flag, not a figure: Fireworks sends "yes" on every
// response, so counting it as an invalid value would count every probe.
const overLimit = "x-ratelimit-over-limit"

// IsRateLimitHeader reports whether name, in any case, is a rate-limit
// header that Parse reads: a name of one of the families Parse documents,
// or exactly one of the IETF draft's five fields. Other names that start
// with "ratelimit" are not, and neither is x-ratelimit-over-limit.
func IsRateLimitHeader(name string) bool {
	lower := strings.ToLower(name)
	return isDraftField(lower) || isFamilyHeader(lower)
}

// isDraftField reports whether a lower-cased name is one of the IETF
// draft's fields.
func isDraftField(lower string) bool {
	switch lower {
	case fieldPolicy, fieldRateLimit, fieldLimit, fieldRemaining, fieldReset:
		return true
	}
	return false
}

// isFamilyHeader reports whether a lower-cased name belongs to a family of
// rate-limit header names that carry one value each.
func isFamilyHeader(lower string) bool {
	if lower == overLimit {
		return false
	}
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

// capped gathers observations, at most MaxObservations of them, and counts
// drops. Once full it is a max-heap, so that a new observation displaces
// the greatest kept one only if it sorts before it: what it keeps is the
// first MaxObservations in Compare order, whatever the order of adding.
type capped struct {
	obs     []Observation
	dropped int
	heaped  bool // obs is a max-heap, full, once a value has overflowed it
}

func (c *capped) add(o Observation) {
	if len(c.obs) < MaxObservations {
		c.obs = append(c.obs, o)
		return
	}
	c.dropped++
	if !c.heaped {
		for i := len(c.obs)/2 - 1; i >= 0; i-- {
			siftDown(c.obs, i)
		}
		c.heaped = true
	}
	if Compare(o, c.obs[0]) < 0 {
		c.obs[0] = o
		siftDown(c.obs, 0)
	}
}

// parseDraft reads the IETF draft's fields of h, named in names. Their
// windows tie fields together (a RateLimit member takes its policy's,
// RateLimit-Remaining and -Reset take RateLimit-Limit's), so they are read
// after the others and in name order: the first policy of a name then does
// not depend on map order when h spells a field two ways.
func (p Parser) parseDraft(h http.Header, names []string, ref time.Time, kept *capped) {
	slices.Sort(names)
	policyWindows := map[string]string{} // by resource: the first policy's
	for _, name := range names {
		if strings.EqualFold(name, fieldPolicy) {
			p.parsePolicies(h[name], policyWindows, kept)
		}
	}
	for _, name := range names {
		if strings.EqualFold(name, fieldRateLimit) {
			p.parseRateLimit(h[name], policyWindows, kept)
		}
	}

	window := p.Windows["requests"]
	for _, name := range names {
		if strings.EqualFold(name, fieldLimit) {
			if _, w, ok := parseDraftLimit(h[name]); ok && w != "" {
				window = w
				break
			}
		}
	}
	for _, name := range names {
		var (
			kind  Kind
			value float64
			ok    bool
		)
		switch strings.ToLower(name) {
		case fieldLimit:
			kind = Limit
			value, _, ok = parseDraftLimit(h[name])
		case fieldRemaining:
			kind = Remaining
			value, ok = parseValues(kind, h[name], ref)
		case fieldReset:
			kind = Reset
			value, ok = parseValues(kind, h[name], ref)
		default:
			continue
		}
		if !ok {
			kept.dropped++
			continue
		}
		kept.add(Observation{Kind: kind, Resource: "requests", Window: window, Value: value})
	}
}

// parsePolicies reads one RateLimit-Policy field, noting each policy's
// window in windows unless an earlier policy of that name has.
func (p Parser) parsePolicies(values []string, windows map[string]string, kept *capped) {
	list, err := httpsfv.UnmarshalList(values)
	if err != nil || len(list) == 0 {
		kept.dropped++
		return
	}
	for _, m := range list {
		item, resource, ok := draftMember(m)
		if !ok {
			kept.dropped++
			continue
		}
		window, ok := policyWindow(item)
		if !ok {
			// Its limit would be filed under a window nobody can name.
			kept.dropped++
			continue
		}
		if window == "" {
			window = p.Windows[resource]
		}
		if _, seen := windows[resource]; !seen {
			windows[resource] = window
		}
		q, ok := draftParam(item, "q")
		if !ok {
			kept.dropped++
			continue
		}
		kept.add(Observation{Kind: Limit, Resource: resource, Window: window, Value: q})
	}
}

// parseRateLimit reads one RateLimit field, each member in the window of
// its policy in windows.
func (p Parser) parseRateLimit(values []string, windows map[string]string, kept *capped) {
	list, err := httpsfv.UnmarshalList(values)
	if err != nil || len(list) == 0 {
		kept.dropped++
		return
	}
	for _, m := range list {
		item, resource, ok := draftMember(m)
		if !ok {
			kept.dropped += 2 // its r and t
			continue
		}
		window, ok := windows[resource]
		if !ok {
			window = p.Windows[resource]
		}
		for _, param := range [...]struct {
			key  string
			kind Kind
		}{{"r", Remaining}, {"t", Reset}} {
			if v, ok := draftParam(item, param.key); ok {
				kept.add(Observation{Kind: param.kind, Resource: resource, Window: window, Value: v})
			} else {
				kept.dropped++
			}
		}
	}
}

// draftMember reads a member of a RateLimit-Policy or RateLimit List: an
// Item named by a String or a Token that makes a resource name.
func draftMember(m httpsfv.Member) (item httpsfv.Item, resource string, ok bool) {
	item, ok = m.(httpsfv.Item)
	if !ok {
		return item, "", false
	}
	var name string
	switch v := item.Value.(type) {
	case string:
		name = v
	case httpsfv.Token:
		name = string(v)
	default:
		return item, "", false
	}
	name = strings.ToLower(name)
	if !validNamePart(name) {
		return item, "", false
	}
	// A token is a slice of the whole field; a kept observation should not
	// hold on to it.
	return item, intern(strings.Clone(strings.ReplaceAll(name, "-", "_"))), true
}

// draftParam is an Item's parameter key as a value: a non-negative
// Integer or Decimal.
func draftParam(item httpsfv.Item, key string) (float64, bool) {
	if item.Params == nil {
		return 0, false
	}
	v, ok := item.Params.Get(key)
	if !ok {
		return 0, false
	}
	return draftNumber(v)
}

// draftNumber is a bare item as a value: a non-negative Integer or Decimal.
func draftNumber(bare any) (float64, bool) {
	var v float64
	switch n := bare.(type) {
	case int64:
		v = float64(n)
	case float64:
		v = n
	default:
		return 0, false
	}
	if v < 0 {
		return 0, false
	}
	return v + 0, true // "-0.0" is 0, not -0
}

// policyWindow names the window of an Item's w parameter: "" without one,
// and not ok when w is not a positive Integer.
func policyWindow(item httpsfv.Item) (window string, ok bool) {
	if item.Params == nil {
		return "", true
	}
	v, stated := item.Params.Get("w")
	if !stated {
		return "", true
	}
	w, isInt := v.(int64)
	if !isInt || w <= 0 {
		return "", false
	}
	switch w {
	case 60:
		return "minute", true
	case 3600:
		return "hour", true
	case 86400:
		return "day", true
	}
	return strconv.FormatInt(w, 10) + "s", true
}

// parseDraftLimit reads a RateLimit-Limit field: a plain number as the
// x-ratelimit family's, or a List of numbers whose first member is the
// limit and whose others are the draft-06 quota policies, one of which
// should give the limit's window. It returns that window's name, or "".
func parseDraftLimit(values []string) (limit float64, window string, ok bool) {
	if v, ok := parseValues(Limit, values, time.Time{}); ok {
		return v, "", true
	}
	list, err := httpsfv.UnmarshalList(values)
	if err != nil || len(list) == 0 {
		return 0, "", false
	}
	first, isItem := list[0].(httpsfv.Item)
	if !isItem {
		return 0, "", false
	}
	if limit, ok = draftNumber(first.Value); !ok {
		return 0, "", false
	}
	for _, m := range list {
		item, isItem := m.(httpsfv.Item)
		if !isItem {
			continue
		}
		if quota, ok := draftNumber(item.Value); !ok || quota != limit {
			continue
		}
		if w, ok := policyWindow(item); ok && w != "" {
			return limit, w, true
		}
	}
	return limit, "", true
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
