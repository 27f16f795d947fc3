package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// The resources a declared limit may count: what the proxy reads of a
// response, a request served (2xx) and the tokens of its usage.
const (
	ResourceRequests     = "requests"
	ResourceTokens       = "tokens"
	ResourceInputTokens  = "input_tokens"
	ResourceOutputTokens = "output_tokens"
)

// LimitResources are the resources a declared limit may count.
var LimitResources = []string{ResourceRequests, ResourceTokens, ResourceInputTokens, ResourceOutputTokens}

// Bounds of a declared limit's window: counting needs whole seconds, and a
// window longer than a month is a budget, not a rate limit.
const (
	MinLimitWindow = time.Second
	MaxLimitWindow = 31 * 24 * time.Hour
)

// Limit is a rate limit a key declares, which the proxy counts its traffic
// against: Limit of Resource per Window, for Model, or for each of the
// key's models when Model is "".
type Limit struct {
	Model    string  `yaml:"model"`
	Resource string  `yaml:"resource"`
	Window   string  `yaml:"window"`
	Limit    float64 `yaml:"limit"`
}

// Length is the limit's window's length; 0 for a window that is not valid.
func (l Limit) Length() time.Duration {
	length, _ := ratelimit.WindowLength(l.Window)
	return length
}

// namedWindows are the window names that a window of their length is
// given, whatever its spelling: the names the providers' headers use, so
// that a declared window and a header's are one series.
var namedWindows = []string{"second", "minute", "hour", "day"}

// canonicalWindow returns the name of a window of window's length among
// namedWindows, or window itself.
func canonicalWindow(window string) string {
	length, ok := ratelimit.WindowLength(window)
	if !ok {
		return window
	}
	for _, name := range namedWindows {
		if l, _ := ratelimit.WindowLength(name); l == length {
			return name
		}
	}
	return window
}

// DeclaredLimits returns the limits k declares, by the model whose traffic
// each counts: a limit that names a model is that model's, and one that
// names none is each of the key's models' unless that model has its own
// limit of the same resource and window length. A key probed once for all
// its models (its one model is "") has its unnamed limits under "", and
// they count all its traffic, whatever the model. nil when k declares none.
func (k *Key) DeclaredLimits() map[string][]Limit {
	if len(k.Limits) == 0 {
		return nil
	}
	byModel := map[string][]Limit{}
	for _, l := range k.Limits {
		if l.Model != "" {
			byModel[l.Model] = append(byModel[l.Model], l)
		}
	}
	for _, l := range k.Limits {
		if l.Model != "" {
			continue
		}
		for _, m := range k.Models {
			if !slices.ContainsFunc(byModel[m], func(o Limit) bool {
				return o.Model != "" && o.Resource == l.Resource && o.Length() == l.Length()
			}) {
				byModel[m] = append(byModel[m], l)
			}
		}
	}
	return byModel
}

// limits checks a key's declared limits: known resources and windows,
// positive limits, printable model names, no window declared twice, and a
// proxy route that carries the key's traffic, as nothing else counts it.
func (v *validator) limits(at string, k *Key, f *keyFacts, p *Proxy) {
	if len(k.Limits) == 0 {
		return
	}
	routed := p != nil && slices.ContainsFunc(p.Routes, func(r Route) bool { return r.Provider == k.Provider })
	if !routed {
		v.fail(at+".limits", "declared limits are counted from the proxy's traffic, and no proxy route has provider %s: add one, or leave limits out", k.Provider)
	}
	type window struct {
		model, resource string
		length          time.Duration
	}
	first := map[window]int{}
	for j, l := range k.Limits {
		path := fmt.Sprintf("%s.limits[%d]", at, j)
		ok := true
		switch {
		case l.Model == "":
		case !Printable(l.Model):
			v.fail(path+".model", "model name %q contains whitespace or control characters", l.Model)
			ok = false
		case f.known && !inPathAsIs(k, f.prov, l.Model):
			// The proxy reads such a provider's model from the path.
			v.fail(path+".model", "model name %q cannot be read back from the request's path: give the model's name as %s's paths do", l.Model, k.Provider)
			ok = false
		}
		if !slices.Contains(LimitResources, l.Resource) {
			v.fail(path+".resource", "unknown resource %q: use %s", l.Resource, strings.Join(LimitResources, ", "))
			ok = false
		}
		length, known := ratelimit.WindowLength(l.Window)
		switch {
		case l.Window == "":
			v.fail(path, "window is required: second, minute, hour, day, or a number and a unit, such as 10s, 5m, 6h or 7d")
			ok = false
		case !known:
			v.fail(path+".window", "unknown window %q: use second, minute, hour, day, or a number and a unit, such as 10s, 5m, 6h or 7d", l.Window)
			ok = false
		case length < MinLimitWindow || length > MaxLimitWindow:
			v.fail(path+".window", "%q must be at least 1s and at most 31d", l.Window)
			ok = false
		}
		switch {
		case math.IsNaN(l.Limit) || math.IsInf(l.Limit, 0):
			v.fail(path+".limit", "must be a number greater than zero")
		case l.Limit <= 0:
			v.fail(path+".limit", "must be greater than zero, got %g", l.Limit)
		}
		if !ok {
			continue
		}
		w := window{l.Model, l.Resource, length}
		if line, seen := first[w]; seen {
			v.fail(path, "%s per %s%s is declared twice (first at line %d)", l.Resource, l.Window, forModel(l.Model), line)
			continue
		}
		first[w] = v.doc.line(path)
	}
}

// forModel is " for model", or "" for a limit of each model.
func forModel(model string) string {
	if model == "" {
		return ""
	}
	return fmt.Sprintf(" for %q", model)
}
