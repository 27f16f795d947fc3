package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Claude subscription traffic through the built exporter's proxy: the
// official Anthropic SDK configured from the environment, as Claude Code is
// (ANTHROPIC_BASE_URL at the proxy, the subscription's OAuth token in
// ANTHROPIC_AUTH_TOKEN, the oauth beta). The token is no API key a probe
// could use, so it is not configured: the proxy records it under its
// fingerprint. /metrics shows the 5h and 7d windows' used shares, resets
// and statuses exactly as sent; a spent window shows rejected, and the
// 429's cause says which kind of window ran out.
func TestClaudeSubscriptionThroughTheProxy(t *testing.T) {
	const (
		apiKey = "sk-test-canary-subscription-api-5d1e"
		token  = "sk-ant-oat01-test-canary-subscription-0c9b"
		model  = "claude-sonnet-4-5"
	)
	claude := simulator.NewDialect(simulator.Anthropic, model, "claude-haiku-4-5")
	claude.AddKey(apiKey, simulator.Limits{"requests": {"minute": 50}})
	claude.AddKey(token, simulator.Limits{"unified": {"5h": 500, "7d": 1000}})
	claude.SetSubscription(token, true)
	upstream := httptest.NewServer(claude)
	t.Cleanup(upstream.Close)

	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {interval: 1h}
keys:
  - {name: api, provider: anthropic, api_key: %s, base_url: %s}
proxy:
  listen_address: %s
  unknown_keys: fingerprint
  routes: [{path_prefix: /anthropic/, upstream: %s, provider: anthropic}]
`, apiKey, upstream.URL, proxyAddr, upstream.URL))
	e := start(t, nil, "--config.file="+cfg, "--log.level=debug")

	t.Setenv("ANTHROPIC_BASE_URL", "http://"+proxyAddr+"/anthropic")
	t.Setenv("ANTHROPIC_AUTH_TOKEN", token)
	t.Setenv("ANTHROPIC_API_KEY", "")
	client := anthropic.NewClient(anthropicoption.WithHeader("anthropic-beta", "oauth-2025-04-20"), anthropicoption.WithMaxRetries(0))
	send := func() (*http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var resp *http.Response
		_, err := client.Messages.New(ctx, anthropic.MessageNewParams{
			Model:     model,
			MaxTokens: 5,
			Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello"))},
		}, anthropicoption.WithResponseInto(&resp))
		return resp, err
	}

	digest := sha256.Sum256([]byte(token))
	id := []string{"key", "sha256:" + hex.EncodeToString(digest[:6]), "model", model, "provider", "anthropic"}
	// windowLines are the lines /metrics must show for the unified windows
	// of an answer: each window's used share and reset (counted from the
	// answer's Date) and the status of each window and overall.
	windowLines := func(h http.Header) []string {
		t.Helper()
		date, err := http.ParseTime(h.Get("Date"))
		if err != nil {
			t.Fatalf("no Date: %v", err)
		}
		line := func(name, value string, labels ...string) string {
			return series(name, append(append([]string{}, id...), labels...)...) + " " + value
		}
		var lines []string
		for _, w := range []string{"5h", "7d", ""} {
			prefix := "anthropic-ratelimit-unified-"
			if w != "" {
				prefix += w + "-"
				lines = append(lines, line("ratelimit_utilization", h.Get(prefix+"utilization"), "resource", "unified", "window", w))
			}
			reset, err := strconv.ParseInt(h.Get(prefix+"reset"), 10, 64)
			if err != nil {
				t.Fatalf("%sreset: %v", prefix, err)
			}
			lines = append(lines, line("ratelimit_reset_seconds", strconv.FormatInt(reset-date.Unix(), 10), "resource", "unified", "window", w))
			for _, status := range []string{"allowed", "allowed_warning", "rejected"} {
				lines = append(lines, line("ratelimit_window_status", map[bool]string{true: "1", false: "0"}[h.Get(prefix+"status") == status],
					"resource", "unified", "status", status, "window", w))
			}
		}
		return lines
	}
	// waitForSeries is waitFor on parsed series: the lines are name{labels} value.
	waitForSeries := func(lines ...string) map[string]float64 {
		t.Helper()
		var got map[string]float64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			_, text := e.get(t, "/metrics")
			got = metricsOf(t, text)
			if missing := missingSeries(got, lines); len(missing) == 0 {
				return got
			}
		}
		for _, l := range missingSeries(got, lines) {
			t.Errorf("/metrics lacks %s", l)
		}
		t.FailNow()
		return nil
	}

	resp, err := send()
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("anthropic-ratelimit-unified-5h-utilization") == "" || resp.Header.Get("anthropic-ratelimit-unified-7d-utilization") == "" {
		t.Fatalf("the answer carries no unified windows: %v", resp.Header)
	}
	waitForSeries(append(windowLines(resp.Header),
		series("ratelimit_observations_total", append(id, "source", "proxy")...)+" 1")...)

	// The five hours are spent: 429, the 5h window and the whole rejected,
	// for a short window's reason.
	claude.Consume(token, model, 0, 500)
	resp, err = send()
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || resp.Header.Get("anthropic-ratelimit-unified-5h-status") != "rejected" {
		t.Fatalf("five hours spent: %v", err)
	}
	waitForSeries(append(windowLines(resp.Header),
		series("ratelimit_proxy_rate_limited_total", append([]string{"cause", "rate_limit"}, id...)...)+" 1")...)

	// The week is spent too: no use retrying within hours.
	claude.Consume(token, model, 0, 1000)
	if resp, err = send(); !errors.As(err, &apiErr) || resp.Header.Get("anthropic-ratelimit-unified-7d-status") != "rejected" {
		t.Fatalf("week spent: %v", err)
	}
	waitForSeries(append(windowLines(resp.Header),
		series("ratelimit_proxy_rate_limited_total", append([]string{"cause", "quota_exhausted"}, id...)...)+" 1")...)

	if _, text := e.get(t, "/metrics"); strings.Contains(text, token) || strings.Contains(e.Logs(), token) {
		t.Error("the token shows in /metrics or the logs")
	}
}

// missingSeries returns the lines, name{labels} value, that got lacks.
func missingSeries(got map[string]float64, lines []string) []string {
	var missing []string
	for _, l := range lines {
		i := strings.LastIndexByte(l, ' ')
		want, err := strconv.ParseFloat(l[i+1:], 64)
		if v, ok := got[l[:i]]; err != nil || !ok || v != want {
			missing = append(missing, l)
		}
	}
	return missing
}
