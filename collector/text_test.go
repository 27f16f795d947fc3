package collector

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A label value written by appendEscaped reads back the same through
// expfmt, whichever of backslash, double quote and new line comes first
// or last: the value is copied whole up to the first of them.
func FuzzAppendEscaped(f *testing.F) {
	for _, s := range []string{"", "plain", "\\", "\"", "\n", "a\\b\"c\nd", "a\nb\\c\"", "\u65e5\u672c\\", "x\"", "trailing\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if !utf8.ValidString(value) {
			t.Skip("label values are UTF-8")
		}
		line := string(appendSample(nil, "x", []string{"l"}, []int{0}, []string{value}, 1))
		families, err := expfmtParser().TextToMetricFamilies(strings.NewReader(line))
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got := families["x"].GetMetric()[0].GetLabel()[0].GetValue(); got != value {
			t.Fatalf("%q reads back as %q, want %q", line, got, value)
		}
	})
}
