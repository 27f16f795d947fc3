package ratelimit

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind says which of a window's figures an observation holds.
type Kind string

// The kinds a rate-limit header or answer can carry.
const (
	Limit     Kind = "limit"
	Remaining Kind = "remaining"
	Reset     Kind = "reset"
	// Utilization is the share of the window used, from 0 to 1: what a
	// window that gives no limit or remaining says instead (Anthropic's
	// unified windows, Azure's provisioned deployments).
	Utilization Kind = "utilization"
	// Status is the window's state as the provider words it: the index in
	// Statuses of allowed, allowed_warning or rejected.
	Status Kind = "status"
	// Balance is money left on an account, in the currency that is the
	// observation's Resource (DeepSeek's balance).
	Balance Kind = "balance"
)

// Kinds lists every kind, in the order of Window.Values.
var Kinds = [...]Kind{Limit, Remaining, Reset, Utilization, Status, Balance}

// Statuses are the values of a Status observation, by index: the words
// Anthropic's unified windows use.
var Statuses = [...]string{"allowed", "allowed_warning", "rejected"}

// The indexes of Statuses.
const (
	StatusAllowed        = 0
	StatusAllowedWarning = 1
	StatusRejected       = 2
)

// MaxObservations bounds what one response may add, so a hostile or broken
// upstream cannot create unbounded series. Cerebras sends 18.
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
	// Windows gives, by resource, the window of values whose header name or
	// policy gives none (Groq documents requests per day, tokens per
	// minute). Resources it does not list keep the window "".
	Windows map[string]string
}

// Parse returns the valid rate-limit observations in h, sorted as Compare
// orders them, and how many rate-limit values it dropped as invalid or past
// MaxObservations; the package documentation says what it reads. Absolute
// resets count from h's Date header, else from now; with neither, they are
// dropped.
func (p Parser) Parse(h http.Header, now time.Time) (obs []Observation, dropped int) {
	ref := now
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		ref = date
	}
	gateway := behindGateway(h)
	kept := capped{room: len(h)}
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
		own := strings.TrimPrefix(lower, llmProviderPrefix) // the provider's name for it
		kind, resource, window, ok := parseName(own)
		if !ok {
			kept.dropped++
			continue
		}
		value, ok := parseValues(kind, values, ref)
		if !ok {
			kept.dropped++
			continue
		}
		if kind == percentUtilization {
			kind = Utilization
		}
		if gateway && own == lower && strings.HasPrefix(lower, HeaderPrefix) {
			// The gateway's own limits: the provider's documented
			// windows are not theirs.
			resource = GatewayResourcePrefix + resource
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

// Unread is a rate-limit header of the family Parse reads that it dropped.
type Unread struct {
	Header string
	Reason string
}

// Unread lists the headers of h that Parse drops by their name or their
// value, sorted by name, for a probe's log. Values past MaxObservations and
// the IETF draft's fields are counted by Parse alone.
func (p Parser) Unread(h http.Header, now time.Time) []Unread {
	ref := now
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		ref = date
	}
	var unread []Unread
	for name, values := range h {
		lower := strings.ToLower(name)
		if isDraftField(lower) || !isFamilyHeader(lower) {
			continue
		}
		kind, _, _, ok := parseName(strings.TrimPrefix(lower, llmProviderPrefix))
		switch {
		case !ok:
			unread = append(unread, Unread{name, "a rate-limit header name of no known kind, resource and window"})
		case !validValues(kind, values, ref):
			unread = append(unread, Unread{name, "not a valid value, or several values that differ"})
		}
	}
	slices.SortFunc(unread, func(a, b Unread) int { return strings.Compare(a.Header, b.Header) })
	return unread
}

func validValues(kind Kind, values []string, ref time.Time) bool {
	_, ok := parseValues(kind, values, ref)
	return ok
}

// behindGateway reports whether a LiteLLM proxy answered: it names itself
// in x-litellm-* headers, or forwards the provider's own under
// llm_provider-. Its unprefixed x-ratelimit-* are then its own limits.
func behindGateway(h http.Header) bool {
	for name := range h {
		if lowerHasPrefix(name, litellmPrefix) || lowerHasPrefix(name, llmProviderPrefix) {
			return true
		}
	}
	return false
}

// lowerHasPrefix is strings.HasPrefix(strings.ToLower(name), prefix) for a
// lower-case ASCII prefix, without building the lower-cased name when name
// is ASCII, as header names are.
func lowerHasPrefix(name, prefix string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			return strings.HasPrefix(strings.ToLower(name), prefix)
		}
	}
	return len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix)
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
