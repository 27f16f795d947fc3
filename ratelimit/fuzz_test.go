package ratelimit

import (
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
)

// maxFuzzHeaders bounds the header values one fuzz input expands to, twice
// MaxObservations, so that each run, and the minimizing of inputs that need
// more than MaxObservations headers, stays fast.
const maxFuzzHeaders = 128

// FuzzParseHeaders parses a whole response header built from two arguments:
//
//   - lines holds one header value per line, "name: value", split at the
//     first colon (a line without one is a name with an empty value). The
//     value is passed as is, so it may hold comma lists or a structured
//     field's List; a repeated name adds a value. Names go into the map as
//     written, not canonicalized, so one input may mix families
//     (x-ratelimit-*, x-tokenlimit-*, anthropic-* with the unified windows,
//     azure-openai-deployment-utilization, any of them under LiteLLM's
//     llm_provider-, the IETF draft's RateLimit-Policy, RateLimit and
//     RateLimit-{Limit,Remaining,Reset}) and spell one name several ways.
//   - copies adds, for each line, that many more headers named after it with
//     "0", "1", ... in it and the same value, so that small inputs readily
//     pass MaxObservations (up to maxFuzzHeaders values in all). The number
//     goes before a last segment limit, remaining or reset of a name of four
//     segments or more (anthropic-ratelimit-requests0-limit), so that such
//     copies stay valid, and at the end otherwise (RateLimit0: not a
//     rate-limit header at all). A structured field's List passes the cap
//     on its own.
//
// Every input must give at most MaxObservations observations, each finite,
// non-negative and fit for a label, sorted, the same whatever the map order,
// and exactly the documented cap and accounting: the first MaxObservations,
// in sort order, of what the rate-limit headers give read apart (each on
// its own, but the fields of the draft whose windows tie them together read
// together, and each with a gateway's mark if the whole has one), with
// every other value they could hold counted as dropped.
func FuzzParseHeaders(f *testing.F) {
	for _, seed := range []struct {
		lines  string
		copies uint8
	}{
		{"x-ratelimit-limit-requests-day: 14400", 0},
		{"x-ratelimit-reset-tokens-minute: 11.382867097854614", 0},
		{"x-ratelimit-reset-requests: 6m0s\nX-Request-Id: abc", 0},
		{"X-RateLimit-Remaining-Tokens-Hour: 5, 5\nX-RateLimit-Remaining-Tokens-Hour: 5", 0},
		{"x-ratelimit-limit-requests-day: 1e400", 0},
		{"x-ratelimit-limit-input-tokens-minute: ٣", 0},
		{"x-ratelimit-limit-requests-day: 2\nX-Ratelimit-Limit-Requests-Day: 1", 0},
		{"x-ratelimit-limit-requests-day: 2400\nx-ratelimit-remaining-tokens: 7\nx-ratelimit-reset-tokens-: 1", 30},
		{"x-ratelimit-remaining-tokens: -1\nx-ratelimit-limit-project-tokens: 5000", 0},
		{"anthropic-fast-output-tokens-remaining: 9\nanthropic-fast-output-tokens: 9", 0},
		{"anthropic-ratelimit-unified-status: allowed\nanthropic-ratelimit-unified-5h-utilization: 0.42\n" +
			"anthropic-ratelimit-unified-7d_opus-status: rejected\nanthropic-ratelimit-unified-7d-reset: 1765180800\n" +
			"anthropic-ratelimit-unified-representative-claim: five_hour\nanthropic-ratelimit-unified-0h-status: nope", 0},
		{"anthropic-ratelimit-unified-5h-status: allowed\nanthropic-ratelimit-unified-5h--utilization: 1", 20},
		{"azure-openai-deployment-utilization: 68.5%\nx-ratelimit-remaining-requests: 249\nretry-after-ms: 5340", 0},
		{"x-litellm-model-id: abc\nx-ratelimit-remaining-requests: 50\nllm_provider-x-ratelimit-remaining-requests: 14370\n" +
			"llm_provider-anthropic-ratelimit-unified-5h-status: rejected\nllm_provider-x-ratelimit-over-limit: yes", 0},
	} {
		f.Add(seed.lines, seed.copies)
	}
	f.Fuzz(func(t *testing.T, lines string, copies uint8) {
		checkParseHeaders(t, lines, copies)
	})
}

// checkParseHeaders is the body of FuzzParseHeaders.
func checkParseHeaders(t testing.TB, lines string, copies uint8) {
	h := http.Header{}
	var names []string // in insertion order
	n := 0             // header values added
	add := func(name, value string) {
		if _, ok := h[name]; !ok {
			names = append(names, name)
		}
		h[name] = append(h[name], value)
		n++
	}
	for line := range strings.SplitSeq(lines, "\n") {
		if n >= maxFuzzHeaders {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		add(name, value)
		for i := 0; i < int(copies) && n < maxFuzzHeaders; i++ {
			add(copyName(name, i), value)
		}
	}
	// The same header, built with its names in the reverse order.
	reversed := make(http.Header, len(h))
	for _, name := range slices.Backward(names) {
		reversed[name] = h[name]
	}

	obs, dropped := Parser{}.Parse(h, time.Time{})
	if len(obs) > MaxObservations || dropped < 0 {
		t.Fatalf("%d observations and %d dropped", len(obs), dropped)
	}
	// Unread names only headers Parse dropped, each once.
	if unread := (Parser{}).Unread(h, time.Time{}); len(unread) > dropped {
		t.Fatalf("Unread names %d headers, Parse dropped %d values: %q", len(unread), dropped, unread)
	}
	for i, o := range obs {
		if math.IsNaN(o.Value) || math.IsInf(o.Value, 0) || math.Signbit(o.Value) {
			t.Fatalf("invalid value kept: %+v", o)
		}
		if o.Resource == "" || strings.ContainsAny(o.Resource+o.Window, "\"\n\\{}= ") {
			t.Fatalf("resource or window unfit for a label value: %+v", o)
		}
		switch o.Kind {
		case Limit, Remaining, Reset, Utilization:
		case Status:
			if o.Value != StatusAllowed && o.Value != StatusAllowedWarning && o.Value != StatusRejected {
				t.Fatalf("a status that is no word: %+v", o)
			}
		default:
			t.Fatalf("a kind no header holds: %+v", o)
		}
		if i > 0 && fuzzLess(o, obs[i-1]) {
			t.Fatalf("not sorted: %+v before %+v", obs[i-1], o)
		}
	}

	// Determinism: the same contents give the same result, whatever the
	// map's insertion order (and Go varies its iteration order per range).
	obs2, dropped2 := Parser{}.Parse(reversed, time.Time{})
	if !reflect.DeepEqual(obs, obs2) || dropped != dropped2 {
		t.Fatalf("parsing the same header again differs: %d dropped then %d; %s",
			dropped, dropped2, diffObservations(obs, obs2))
	}

	// The cap and the accounting: read apart, the rate-limit headers give
	// every value they could hold as one observation or one drop; read
	// together, the first MaxObservations observations in sort order are
	// kept and every other value is dropped. The draft's fields are read
	// apart only as the two groups whose windows tie them together.
	type group struct {
		header http.Header
		values int // what its headers could hold
	}
	groups := map[string]*group{}
	for name, vs := range h {
		key, values := "header "+name, 0
		switch lower := strings.ToLower(name); lower {
		case "ratelimit-policy", "ratelimit":
			key, values = "structured", structuredValues(lower, vs)
		case "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset":
			key, values = "older", 1
		default:
			values = familyValues(lower)
		}
		if got := isRateLimitHeader(name); got != (values > 0) {
			t.Fatalf("isRateLimitHeader(%q) = %v", name, got)
		}
		g := groups[key]
		if g == nil {
			g = &group{header: http.Header{}}
			groups[key] = g
		}
		g.header[name] = vs
		g.values += values
	}
	gateway := false // a LiteLLM gateway answered: its own x-ratelimit-* are litellm_*
	for name := range h {
		lower := strings.ToLower(name)
		gateway = gateway || strings.HasPrefix(lower, "x-litellm-") || strings.HasPrefix(lower, "llm_provider-")
	}
	var all []Observation
	considered := 0
	for key, g := range groups {
		if date, ok := h["Date"]; ok {
			g.header["Date"] = date // absolute resets count from it
		}
		if gateway {
			g.header["X-Litellm-Fuzz"] = []string{"1"}
		}
		one, d := Parser{}.Parse(g.header, time.Time{})
		if len(one)+d != g.values {
			t.Fatalf("%s read apart gave %v and %d dropped, want %d values in all", key, one, d, g.values)
		}
		considered += g.values
		all = append(all, one...)
	}
	if len(obs)+dropped != considered {
		t.Fatalf("%d observations and %d dropped from %d rate-limit values", len(obs), dropped, considered)
	}
	sort.Slice(all, func(i, j int) bool { return fuzzLess(all[i], all[j]) })
	want := all[:min(len(all), MaxObservations)]
	if !reflect.DeepEqual(obs, want) {
		t.Fatalf("kept the wrong observations of %d: %s", len(all), diffObservations(obs, want))
	}
}

// familyValues is how many values a lower-cased header name outside the
// IETF draft holds, as the package documents it: one for a name of a
// family, also under LiteLLM's llm_provider- prefix, none for others, for
// the over-limit flag, or for a unified name that ends in no figure.
func familyValues(lower string) int {
	lower = strings.TrimPrefix(lower, "llm_provider-")
	if lower == "x-ratelimit-over-limit" {
		return 0
	}
	if lower == "azure-openai-deployment-utilization" {
		return 1
	}
	if rest, ok := strings.CutPrefix(lower, "anthropic-ratelimit-unified-"); ok {
		for _, figure := range []string{"utilization", "reset", "status", "limit", "remaining"} {
			if rest == figure || strings.HasSuffix(rest, "-"+figure) {
				return 1
			}
		}
		return 0
	}
	for _, prefix := range []string{"x-ratelimit-", "x-tokenlimit-", "anthropic-ratelimit-", "anthropic-priority-", "anthropic-fast-"} {
		if strings.HasPrefix(lower, prefix) {
			return 1
		}
	}
	return 0
}

// copyName names the i-th copy of a header name: the number before a last
// segment limit, remaining or reset of a name of four segments or more,
// else at the end.
func copyName(name string, i int) string {
	number := strconv.Itoa(i)
	cut := strings.LastIndexByte(name, '-')
	if cut < 0 || strings.Count(name, "-") < 3 {
		return name + number
	}
	switch strings.ToLower(name[cut+1:]) {
	case "limit", "remaining", "reset":
		return name[:cut] + number + name[cut:]
	}
	return name + number
}

// structuredValues is how many values a RateLimit-Policy or RateLimit field
// (lower-cased name) could hold, as the package documents it: one per member
// of a policy List, two per member of a RateLimit List, and one for a field
// that is no List or an empty one.
func structuredValues(lower string, vs []string) int {
	list, err := httpsfv.UnmarshalList(vs)
	switch {
	case err != nil || len(list) == 0:
		return 1
	case lower == "ratelimit":
		return 2 * len(list)
	}
	return len(list)
}

// fuzzLess is the documented order of Parse's result, written apart
// from the code under test: resource, window, kind, then value.
func fuzzLess(a, b Observation) bool {
	if a.Resource != b.Resource {
		return a.Resource < b.Resource
	}
	if a.Window != b.Window {
		return a.Window < b.Window
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Value < b.Value
}

// diffObservations describes where got and want first differ.
func diffObservations(got, want []Observation) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at index %d got %+v, want %+v (of %d and %d)", i, got[i], want[i], len(got), len(want))
		}
	}
	return fmt.Sprintf("got %d observations, want %d", len(got), len(want))
}
