package ratelimit

import (
	"math"
	"strconv"
	"strings"
	"time"
)

func parseValues(kind Kind, values []string, ref time.Time) (float64, bool) {
	var (
		result float64
		seen   bool
	)
	for _, line := range values {
		for more := true; more; { // the fields of strings.Split(line, ","), without the slice
			var field string
			field, line, more = strings.Cut(line, ",")
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
	switch kind {
	case Status:
		for i, word := range Statuses {
			if s == word {
				return float64(i), true
			}
		}
		return 0, false
	case percentUtilization:
		v, ok := parseValue(Utilization, strings.TrimSuffix(s, "%"), ref)
		return v / 100, ok
	}
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
