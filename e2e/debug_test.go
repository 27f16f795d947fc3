package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// /probe?debug=true shows the log of a target's probe, its settings and
// its metrics, for a probe that read limits, one the provider refused and
// one that met no server, and for each header that carries a key; no page
// holds a key.
func TestProbeDebugLog(t *testing.T) {
	const (
		anthropicKey = "sk-ant-test-canary-debug-anthropic-3e8a"
		geminiKey    = "AIza-test-canary-debug-gemini-9c2d"
		unreachable  = "sk-test-canary-debug-unreachable-51b7"
	)
	_, url := startSimulator(t)
	anthropicSim := simulator.NewDialect(simulator.Anthropic, "claude-haiku-4-5")
	anthropicSim.AddKey(anthropicKey, simulator.Limits{"requests": {"minute": 50}, "tokens": {"minute": 30000}})
	anthropic := httptest.NewServer(anthropicSim)
	defer anthropic.Close()
	geminiSim := simulator.NewDialect(simulator.Gemini, geminiModel)
	geminiSim.AddKey(geminiKey, geminiLimits)
	gemini := httptest.NewServer(geminiSim)
	defer gemini.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // its port now refuses connections
	canaries := []string{goodKey, revokedKey, anthropicKey, geminiKey, unreachable}

	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: scrape, min_interval: 0s, timeout: 2s}
keys:
  - {name: good, api_key: %[2]s, base_url: %[1]s, models: [llama3.1-8b], probe_interval: 1h}
  - {name: revoked, api_key_file: %[3]s, base_url: %[1]s, models: [llama3.1-8b]}
  - {name: claude, provider: anthropic, api_key: %[4]s, base_url: %[5]s, models: [claude-haiku-4-5]}
  - {name: gem, provider: gemini, api_key: %[6]s, base_url: %[7]s/v1beta, models: [%[8]s], probe_interval: 0s}
  - {name: nowhere, api_key: %[9]s, base_url: %[10]s/v1, models: [llama3.1-8b]}
`, url, goodKey, revokedKeyFile(t), anthropicKey, anthropic.URL, geminiKey, gemini.URL, geminiModel, unreachable, closed.URL))
	e := start(t, nil, "--config.file="+cfg)

	for _, tc := range []struct {
		key, model string
		want       []string
		not        []string
	}{
		{"good", "llama3.1-8b", []string{
			"Logs for the last probe of this target",
			`msg="Beginning probe" key=good model=llama3.1-8b provider=cerebras`,
			`msg="Sending request" method=POST url=` + url + "/chat/completions",
			`msg="Request header" name=Authorization value=<redacted>`,
			`msg="Received response" status="200 OK"`,
			`msg="Response header" name=X-Ratelimit-Limit-Requests-Day value=1000000`,
			`msg="Observation read" kind=limit resource=requests window=minute value=1000`,
			`msg="Probe ended" result=success`,
			`msg="Next probe due" mode=scrape`,
			"Target configuration:\nkey:\n    name: good\n    provider: cerebras\n    api_key: <secret>",
			"Metrics that would have been returned:\n",
			`ratelimit_limit{key="good",model="llama3.1-8b",provider="cerebras",resource="requests",window="minute"} 1000`,
		}, []string{"Backing off"}},
		{"revoked", "llama3.1-8b", []string{
			`msg="Request header" name=Authorization value=<redacted>`,
			`msg="Received response" status="401 Unauthorized"`,
			`msg="Probe ended" result=unauthorized`,
			`err="HTTP 401`,
			`msg="Backing off after failures" failures=1`,
			`ratelimit_probe_success{key="revoked",model="llama3.1-8b",provider="cerebras"} 0`,
		}, []string{"Observation read"}},
		{"claude", "claude-haiku-4-5", []string{
			`msg="Request header" name=X-Api-Key value=<redacted>`,
			`msg="Probe ended" result=success`,
		}, nil},
		{"gem", geminiModel, []string{
			`msg="Request header" name=X-Goog-Api-Key value=<redacted>`,
			`msg="Received response" status="200 OK"`,
		}, nil},
		{"nowhere", "llama3.1-8b", []string{
			`msg="Sending request" method=POST`,
			`msg="Request header" name=Authorization value=<redacted>`,
			`msg="Probe ended" result=network_error`,
			"connection refused",
			`msg="Backing off after failures" failures=1`,
		}, []string{"Received response"}},
	} {
		path := "/probe?key=" + tc.key + "&model=" + tc.model
		status, body := e.get(t, path+"&debug=true")
		if status != http.StatusOK {
			t.Fatalf("%s&debug=true: HTTP %d: %s", path, status, body)
		}
		for _, want := range tc.want {
			if !strings.Contains(body, want) {
				t.Errorf("%s&debug=true lacks %q:\n%s", path, want, body)
			}
		}
		for _, not := range tc.not {
			if strings.Contains(body, not) {
				t.Errorf("%s&debug=true holds %q:\n%s", path, not, body)
			}
		}
		for _, key := range canaries {
			if strings.Contains(body, key) {
				t.Fatalf("%s&debug=true shows a key:\n%s", path, body)
			}
		}
		if tc.key == "good" {
			// Its probe_interval holds the next probe off: /probe serves
			// what the debug page showed, byte for byte.
			_, metrics := e.get(t, path)
			_, shown, _ := strings.Cut(body, "Metrics that would have been returned:\n")
			if shown != metrics {
				t.Errorf("the debug page's metrics differ from /probe's:\n%s\n/probe:\n%s", shown, metrics)
			}
		}
	}
	// In scrape mode a due target is probed by the debug request itself:
	// the log shown begins after the request was sent.
	for range 2 {
		sent := time.Now()
		_, body := e.get(t, "/probe?key=gem&model="+geminiModel+"&debug=true")
		m := regexp.MustCompile(`ts=(\S+) msg="Beginning probe"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("gem's debug log has no probe:\n%s", body)
		}
		if began, err := time.Parse(time.RFC3339Nano, m[1]); err != nil || began.Before(sent) {
			t.Errorf("gem is due at every scrape, but its debug log shows a probe begun at %s, before the request at %s (%v)", m[1], sent.UTC().Format(time.RFC3339Nano), err)
		}
	}
	_, logs := e.get(t, "/metrics")
	for _, key := range canaries {
		if strings.Contains(logs+e.Logs(), key) {
			t.Fatal("a key shows in /metrics or the exporter's log")
		}
	}
}

// In interval mode /probe?debug=true shows the last probe of the schedule
// and sends none of its own.
func TestProbeDebugInIntervalMode(t *testing.T) {
	sim, url := startSimulator(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: interval, interval: 1h}
keys:
  - {name: good, api_key: %s, base_url: %s, models: [llama3.1-8b]}
`, goodKey, url))
	e := start(t, nil, "--config.file="+cfg)
	e.waitFor(t, `ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras"} 1`)
	sent := sim.Requests()
	var first string
	for i := 0; i < 3; i++ {
		_, body := e.get(t, "/probe?key=good&model=llama3.1-8b&debug=true")
		log, _, _ := strings.Cut(body, "\n\n\nTarget configuration:")
		if !strings.Contains(log, `msg="Probe ended" result=success`) || !strings.Contains(log, `msg="Next probe due" mode=interval`) {
			t.Fatalf("debug=true in interval mode:\n%s", body)
		}
		if i == 0 {
			first = log
		} else if log != first {
			t.Errorf("the log changed between two debug=true requests:\n%s\nthen:\n%s", first, log)
		}
		if strings.Contains(body, goodKey) {
			t.Fatalf("debug=true shows the key:\n%s", body)
		}
	}
	if got := sim.Requests(); got != sent {
		t.Errorf("debug=true sent %d probes in interval mode, want none", got-sent)
	}
}
