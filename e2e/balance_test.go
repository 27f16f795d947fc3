package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// DeepSeek, probed by the built binary: its free balance endpoint becomes
// a balance per currency and, from is_available, the status of resource
// "balance", which turns rejected once the account may no longer pay.
func TestDeepSeekBalanceThroughTheBinary(t *testing.T) {
	const key = "sk-test-canary-deepseek-7a2c"
	sim := simulator.NewDialect(simulator.DeepSeek)
	sim.AddKey(key, nil)
	sim.SetBalance(key, simulator.Balance{Available: true, Currencies: []simulator.CurrencyBalance{{Currency: "CNY", Granted: 10, ToppedUp: 100}}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	// Scrape mode with no min_interval: each scrape probes.
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: scrape, min_interval: 0s}
keys:
  - {name: wallet, provider: deepseek, api_key: %s, base_url: %s}
`, key, srv.URL))
	e := start(t, nil, "--config.file="+cfg)

	id := []string{"key", "wallet", "model", "", "provider", "deepseek"}
	check := func(got map[string]float64, name string, want float64, labels ...string) {
		t.Helper()
		s := series(name, append(append([]string{}, id...), labels...)...)
		if name == "ratelimit_balance" { // currency sorts first
			s = series(name, append([]string{"currency", "CNY"}, id...)...)
		}
		if v, ok := got[s]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", s, v, ok, want)
		}
	}
	statuses := func(got map[string]float64, current string) {
		t.Helper()
		for _, status := range []string{"allowed", "allowed_warning", "rejected"} {
			check(got, "ratelimit_window_status", map[bool]float64{true: 1}[status == current], "resource", "balance", "status", status)
		}
	}

	_, text := e.get(t, "/metrics")
	ex, ok := sim.LastExchange(key)
	if !ok || ex.Method != http.MethodGet || ex.Path != "/user/balance" || ex.Status != 200 || len(ex.Body) != 0 {
		t.Fatalf("the probe: %+v, %v; /metrics:\n%s", ex, ok, text)
	}
	got := metricsOf(t, text)
	check(got, "ratelimit_probe_success", 1)
	check(got, "ratelimit_balance", 110)
	statuses(got, "allowed")
	check(got, "ratelimit_probe_tokens_total", 0)
	check(got, "ratelimit_header_errors_total", 0)

	sim.SetBalance(key, simulator.Balance{Currencies: []simulator.CurrencyBalance{{Currency: "CNY"}}})
	_, text = e.get(t, "/metrics")
	got = metricsOf(t, text)
	check(got, "ratelimit_probe_success", 1)
	check(got, "ratelimit_balance", 0)
	statuses(got, "rejected")
	if n := sim.Requests(); n != 2 {
		t.Errorf("%d probes for two scrapes, want 2", n)
	}
}

// `check` prints what the new providers' probes read: DeepSeek's balance
// and its status, xAI's two windows, an Azure provisioned deployment's
// share used beside its remaining-only windows, and a Gemini answer that
// only says it served. Only the names and values are asserted, one line
// each, whatever the columns around them.
func TestCheckShowsBalanceAndXAI(t *testing.T) {
	const (
		deepseekKey = "sk-test-canary-check-deepseek-41d0"
		xaiKey      = "xai-test-canary-check-xai-8e37"
	)
	deepseek := simulator.NewDialect(simulator.DeepSeek)
	deepseek.AddKey(deepseekKey, nil)
	deepseek.SetBalance(deepseekKey, simulator.Balance{Available: true, Currencies: []simulator.CurrencyBalance{{Currency: "CNY", Granted: 10, ToppedUp: 100}}})
	xai := simulator.NewDialect(simulator.XAI)
	xai.AddKey(xaiKey, simulator.Limits{"requests": {"minute": 1800}, "tokens": {"minute": 1e7}})
	azure := simulator.NewDialect(simulator.AzureOpenAI, "ptu-gpt-4o")
	azure.SetClock(func() time.Time { return time.Unix(1795000000, 0) }) // no refill
	azure.AddKey(ptuKey, simulator.Limits{"requests": {"minute": 600}, "deployment": {"minute": 1000}})
	azure.Consume(ptuKey, "ptu-gpt-4o", 0, 115) // with the probe's 10 tokens, 12.5% in use
	gemini := simulator.NewDialect(simulator.Gemini)
	gemini.AddKey(geminiKey, geminiLimits)
	mux := http.NewServeMux()
	mux.Handle("/deepseek/", deepseek)
	mux.Handle("/xai/", xai)
	mux.Handle("/azure/", azure)
	mux.Handle("/google/", gemini)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`keys:
  - {name: wallet, provider: deepseek, api_key: %s, base_url: %s/deepseek}
  - {name: grok, provider: xai, api_key: %s, base_url: %s/xai/v1}
  - {name: ptu, provider: azure_openai, api_key: %s, base_url: %s/azure, models: [ptu-gpt-4o]}
  - {name: gem, provider: gemini, api_key: %s, base_url: %s/google/v1beta}
`, deepseekKey, srv.URL, xaiKey, srv.URL, ptuKey, srv.URL, geminiKey, srv.URL))

	code, stdout, stderr := runCheckCommand(t, "check", "--config.file="+cfg)
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
	}
	ex, _ := xai.LastExchange(xaiKey)
	for _, words := range [][]string{
		{"wallet", "deepseek", "CNY", "110"},
		{"wallet", "deepseek", "balance", "allowed"},
		{"grok", "xai", "requests", ex.ResponseHeader.Get("x-ratelimit-remaining-requests"), ex.ResponseHeader.Get("x-ratelimit-limit-requests")},
		{"grok", "xai", "tokens", ex.ResponseHeader.Get("x-ratelimit-remaining-tokens"), ex.ResponseHeader.Get("x-ratelimit-limit-tokens")},
		{"ptu", "azure_openai", "deployment", "(not", "given)", "12.5%", "used"},
		{"ptu", "azure_openai", "requests", "minute", "599", "of", "?"},
		{"gem", "gemini", geminiModel, "served:", "no", "window", "empty"},
	} {
		if !hasLineWith(stdout, words) {
			t.Errorf("no line of the table has all of %q:\n%s", words, stdout)
		}
	}
	if strings.Contains(stdout+stderr, deepseekKey) || strings.Contains(stdout+stderr, xaiKey) ||
		strings.Contains(stdout+stderr, ptuKey) || strings.Contains(stdout+stderr, geminiKey) {
		t.Errorf("the check shows a key:\n%s\n%s", stdout, stderr)
	}
}

// hasLineWith reports whether a line of text holds every one of words, as
// a whole field.
func hasLineWith(text string, words []string) bool {
	for line := range strings.SplitSeq(text, "\n") {
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
		found := 0
		for _, w := range words {
			if slices.Contains(fields, w) {
				found++
			}
		}
		if found == len(words) {
			return true
		}
	}
	return false
}
