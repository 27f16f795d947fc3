package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// At info, the log says what changed, not every probe that worked: a
// thousand keys that work log nothing each interval.
func TestSuccessfulProbesLogAtDebug(t *testing.T) {
	sim, url := startSimulator(t)
	var keys strings.Builder
	for i := range 20 {
		key := fmt.Sprintf("sk-test-canary-logs-%04d", i)
		sim.AddKey(key, simulator.FreeTrial())
		fmt.Fprintf(&keys, "  - {name: k%d, api_key: %s, base_url: %s, models: [llama3.1-8b, llama-3.3-70b]}\n", i, key, url)
	}
	cfg := testkit.WriteConfig(t, "probe: {interval: 200ms, max_quota_share: 1}\nkeys:\n"+keys.String())
	e := start(t, nil, "--config.file="+cfg)
	e.waitFor(t, `ratelimit_observations_total{key="k19",model="llama-3.3-70b",provider="cerebras",source="probe"} 3`)
	if lines := grepLines(e.Logs(), "Probe succeeded"); lines != "" {
		t.Errorf("successful probes logged at info:\n%s", lines)
	}
}
