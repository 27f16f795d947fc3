package testkit

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Value returns the value of the one series of name that c collects whose
// labels include the given name, value pairs; it fails t unless exactly
// one does.
func Value(t *testing.T, c prometheus.Collector, name string, labelPairs ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found []float64
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labelPairs); i += 2 {
				if have[labelPairs[i]] != labelPairs[i+1] {
					continue metrics
				}
			}
			found = append(found, m.GetGauge().GetValue()+m.GetCounter().GetValue())
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labelPairs, len(found))
	}
	return found[0]
}
