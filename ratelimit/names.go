package ratelimit

import "strings"

// HeaderPrefix starts the most common family of rate-limit header names.
const HeaderPrefix = "x-ratelimit-"

// prefixes start every family of rate-limit header names, lower-cased.
var prefixes = []string{HeaderPrefix, "x-tokenlimit-", "anthropic-ratelimit-", "anthropic-priority-", "anthropic-fast-"}

// Gateway prefixes. LiteLLM forwards the provider's own headers under
// llmProviderPrefix and answers with its own x-ratelimit-* for the limits of
// its virtual keys; it names itself in x-litellm-* headers.
const (
	llmProviderPrefix = "llm_provider-"
	litellmPrefix     = "x-litellm-"
	// GatewayResourcePrefix starts the resource of a limit that a gateway
	// in front of the provider enforces, not the provider: LiteLLM's own
	// x-ratelimit-* are litellm_requests and litellm_tokens.
	GatewayResourcePrefix = "litellm_"
)

// azureUtilization is the share of a provisioned (PTU) Azure OpenAI
// deployment in use, in percent.
const azureUtilization = "azure-openai-deployment-utilization"

// percentUtilization is the kind of a utilization written in percent, with
// or without its sign: read as a Utilization from 0 to 1.
const percentUtilization Kind = "utilization_percent"

// unifiedPrefix starts the windows of Claude subscription traffic: each a
// used share (-utilization), a reset and a status, not a limit.
const unifiedPrefix = "anthropic-ratelimit-unified-"

// overLimit is a flag, not a figure: Fireworks sends "yes" on every
// response, so counting it as an invalid value would count every probe.
const overLimit = "x-ratelimit-over-limit"

// isRateLimitHeader reports whether name, in any case, is a rate-limit
// header that Parse reads: a name of one of the families the package
// documents, also under LiteLLM's llm_provider- prefix, or exactly one of
// the IETF draft's five fields. Other names that start with "ratelimit" are
// not, and neither is x-ratelimit-over-limit.
func isRateLimitHeader(name string) bool {
	lower := strings.ToLower(name)
	return isDraftField(lower) || isFamilyHeader(lower)
}

// isFamilyHeader reports whether a lower-cased name belongs to a family of
// rate-limit header names that carry one value each.
func isFamilyHeader(lower string) bool {
	lower = strings.TrimPrefix(lower, llmProviderPrefix)
	switch {
	case lower == overLimit:
		return false
	case lower == azureUtilization:
		return true
	case strings.HasPrefix(lower, unifiedPrefix):
		// A unified name that ends in no figure is a word about the others
		// (representative-claim, fallback-percentage), not a value; one
		// that ends in a figure is, even when its claim is malformed.
		rest := strings.TrimPrefix(lower, unifiedPrefix)
		for _, k := range unifiedSuffixes {
			if rest == string(k) || strings.HasSuffix(rest, "-"+string(k)) {
				return true
			}
		}
		return false
	}
	for _, p := range prefixes {
		if strings.HasPrefix(lower, p) {
			return true
		}
	}
	return false
}

// parseName reads a lower-cased rate-limit header name.
func parseName(name string) (kind Kind, resource, window string, ok bool) {
	switch {
	case name == azureUtilization:
		return percentUtilization, "deployment", "", true
	case strings.HasPrefix(name, unifiedPrefix):
		return parseUnifiedName(strings.TrimPrefix(name, unifiedPrefix))
	case strings.HasPrefix(name, "x-tokenlimit-"):
		switch k := Kind(strings.TrimPrefix(name, "x-tokenlimit-")); k {
		case Limit, Remaining:
			return k, "tokens", "", true
		}
		return "", "", "", false
	case strings.HasPrefix(name, "anthropic-"):
		return parseAnthropicName(name)
	}
	rest := strings.TrimPrefix(name, HeaderPrefix)
	for _, k := range []Kind{Limit, Remaining, Reset} {
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
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		if _, named := windowLengths[rest[i+1:]]; named {
			return kind, resourceName(rest[:i]), intern(rest[i+1:]), true
		}
	}
	return kind, resourceName(rest), "", true
}

// parseAnthropicName reads an anthropic-ratelimit-*, anthropic-priority-*
// or anthropic-fast-* name, per minute as Anthropic documents; the last two
// are the resources priority_* and fast_*.
func parseAnthropicName(name string) (kind Kind, resource, window string, ok bool) {
	rest, tier := strings.TrimPrefix(name, "anthropic-ratelimit-"), ""
	for _, t := range []string{"priority", "fast"} {
		if r, found := strings.CutPrefix(name, "anthropic-"+t+"-"); found {
			rest, tier = r, t+"_"
		}
	}
	for _, k := range []Kind{Limit, Remaining, Reset} {
		if r, found := strings.CutSuffix(rest, "-"+string(k)); found && validNamePart(r) {
			return k, tier + resourceName(r), "minute", true
		}
	}
	return "", "", "", false
}

// unifiedSuffixes are the figures a unified window's header can end in.
var unifiedSuffixes = []Kind{Utilization, Reset, Status, Limit, Remaining}

// parseUnifiedName reads what follows anthropic-ratelimit-unified-: the
// overall status and reset (resource unified, no window), or a claim's
// figure. A claim that is a count and a unit ("5h", "7d") is the window of
// resource unified; one with a model after it ("7d_opus") the window of
// unified_opus; any other ("overage") is the resource unified_overage. A
// name that ends in no figure (representative-claim, fallback-percentage)
// is not a rate-limit value: ok is false.
func parseUnifiedName(rest string) (kind Kind, resource, window string, ok bool) {
	for _, k := range unifiedSuffixes {
		if rest == string(k) {
			return k, "unified", "", true
		}
		claim, found := strings.CutSuffix(rest, "-"+string(k))
		if !found || !validNamePart(claim) {
			continue
		}
		claim = strings.ReplaceAll(claim, "-", "_")
		span, model, _ := strings.Cut(claim, "_")
		if _, timed := WindowLength(span); timed && !strings.HasPrefix(span, "0") {
			if model != "" {
				return k, "unified_" + model, span, true
			}
			return k, "unified", span, true
		}
		return k, "unified_" + claim, "", true
	}
	return "", "", "", false
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

// maxNameBytes bounds a resource's name, with its window: an observation
// is kept by the collector and by each history entry of a proxied response,
// and an upstream may send 1 MiB of names.
const maxNameBytes = 128

// validNamePart accepts lower-case letters, digits, '_' and inner hyphens,
// up to maxNameBytes.
func validNamePart(s string) bool {
	if s == "" || len(s) > maxNameBytes || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
