package ratelimit

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// The IETF draft's fields, lower-cased: the structured pair of draft-08 on,
// and the three plain fields of draft-06 and before.
const (
	fieldPolicy    = "ratelimit-policy"
	fieldRateLimit = "ratelimit"
	fieldLimit     = "ratelimit-limit"
	fieldRemaining = "ratelimit-remaining"
	fieldReset     = "ratelimit-reset"
)

// isDraftField reports whether a lower-cased name is one of the IETF
// draft's fields.
func isDraftField(lower string) bool {
	switch lower {
	case fieldPolicy, fieldRateLimit, fieldLimit, fieldRemaining, fieldReset:
		return true
	}
	return false
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
	p.parseOlderFields(h, names, ref, kept)
}

// parseOlderFields reads RateLimit-Limit, -Remaining and -Reset, all in the
// window the first RateLimit-Limit that gives one says.
func (p Parser) parseOlderFields(h http.Header, names []string, ref time.Time, kept *capped) {
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
	return windowOfSeconds(w), true
}

// parseDraftLimit reads a RateLimit-Limit field: a number, or a draft-06
// List whose first member is the limit and whose policies may give its
// window ("" when none does).
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
