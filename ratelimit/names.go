package ratelimit

import "strings"

// HeaderPrefix starts the most common family of rate-limit header names.
const HeaderPrefix = "x-ratelimit-"

// prefixes start every family of rate-limit header names, lower-cased.
var prefixes = []string{HeaderPrefix, "x-tokenlimit-", "anthropic-ratelimit-", "anthropic-priority-"}

// overLimit is a flag, not a figure: Fireworks sends "yes" on every
// response, so counting it as an invalid value would count every probe.
const overLimit = "x-ratelimit-over-limit"

// isRateLimitHeader reports whether name, in any case, is a rate-limit
// header that Parse reads: a name of one of the families the package
// documents, or exactly one of the IETF draft's five fields. Other names
// that start with "ratelimit" are not, and neither is x-ratelimit-over-limit.
func isRateLimitHeader(name string) bool {
	lower := strings.ToLower(name)
	return isDraftField(lower) || isFamilyHeader(lower)
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

// parseName reads a lower-cased rate-limit header name.
func parseName(name string) (kind Kind, resource, window string, ok bool) {
	switch {
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

// parseAnthropicName reads an anthropic-ratelimit-* or anthropic-priority-*
// name, per minute as Anthropic documents.
func parseAnthropicName(name string) (kind Kind, resource, window string, ok bool) {
	rest, priority := strings.CutPrefix(name, "anthropic-priority-")
	if !priority {
		rest = strings.TrimPrefix(name, "anthropic-ratelimit-")
	}
	for _, k := range []Kind{Limit, Remaining, Reset} {
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
