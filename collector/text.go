package collector

import (
	"math"
	"strconv"
)

// appendSample appends one sample line of the text exposition format,
// written as prometheus/common's expfmt writes it: labels sorted by name,
// values escaped, the shortest float that reads back the same.
func appendSample(buf []byte, name string, labelNames []string, sorted []int, labelValues []string, v float64) []byte {
	buf = append(buf, name...)
	if len(sorted) > 0 {
		sep := byte('{')
		for _, i := range sorted {
			buf = append(buf, sep)
			buf = append(buf, labelNames[i]...)
			buf = append(buf, '=', '"')
			buf = appendEscaped(buf, labelValues[i])
			buf = append(buf, '"')
			sep = ','
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ' ')
	buf = appendFloat(buf, v)
	return append(buf, '\n')
}

// appendEscaped escapes a label value: backslash, double quote and new line.
func appendEscaped(buf []byte, s string) []byte {
	i := 0
	for i < len(s) && s[i] != '\\' && s[i] != '"' && s[i] != '\n' {
		i++
	}
	buf = append(buf, s[:i]...) // most values whole: names, numbers, words
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf = append(buf, '\\', '\\')
		case '"':
			buf = append(buf, '\\', '"')
		case '\n':
			buf = append(buf, '\\', 'n')
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

func appendFloat(buf []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, +1):
		return append(buf, "+Inf"...)
	case math.IsInf(f, -1):
		return append(buf, "-Inf"...)
	}
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}
