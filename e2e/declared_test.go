package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// sampleValue returns the value of the series in a /metrics body.
func sampleValue(body, series string) (float64, bool) {
	for line := range strings.SplitSeq(body, "\n") {
		if value, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(value, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// A key that declares limits, its traffic sent through the built exporter
// with openai-go: /metrics shows each declared limit at once, and what is
// left of a window only once a whole window has been counted, exactly the
// limit minus what was spent in it; a reload that keeps the key keeps its
// count.
func TestDeclaredLimitsThroughTheBinary(t *testing.T) {
	const key = "sk-test-canary-declared-4d1f"
	sim := simulator.NewDialect(simulator.OpenAI, "gpt-4o-mini")
	sim.AddKey(key, simulator.Limits{"requests": {"minute": 1e6}, "tokens": {"minute": 1e9}})
	upstream := httptest.NewServer(sim)
	t.Cleanup(upstream.Close)
	proxyAddr := testkit.FreeAddr(t)
	config := func(tokens int) string {
		return fmt.Sprintf(`probe: {interval: 1h}
keys:
  - name: declared
    provider: openai
    api_key: %s
    base_url: %s/v1
    models: [gpt-4o-mini]
    limits:
      - {resource: requests, window: 2s, limit: 100}
      - {resource: tokens, window: 2s, limit: %d}
      - {resource: requests, window: 31d, limit: 1000000}
proxy:
  listen_address: %s
  routes: [{path_prefix: /openai/, upstream: %q, provider: openai}]
`, key, upstream.URL, tokens, proxyAddr, upstream.URL)
	}
	cfg := testkit.WriteConfig(t, config(1000))
	e := start(t, nil, "--config.file="+cfg)

	series := func(family, resource, window string) string {
		return family + `{key="declared",model="gpt-4o-mini",provider="openai",resource="` + resource + `",window="` + window + `"}`
	}
	body := e.waitFor(t,
		series("ratelimit_limit", "requests", "2s")+" 100",
		series("ratelimit_limit", "tokens", "2s")+" 1000",
		`ratelimit_configured_limit{key="declared",model="gpt-4o-mini",provider="openai",resource="requests",source="config",window="31d"} 1e+06`,
		`ratelimit_proxy_usage_total{key="declared",model="gpt-4o-mini",provider="openai",resource="requests"} 0`)
	// The 31-day window began before the exporter: it is never counted
	// whole here, unless it ended during the test (once in 31 days).
	if end, _ := sampleValue(body, series("ratelimit_reset_timestamp_seconds", "requests", "31d")); float64(time.Now().Unix()) < end {
		if strings.Contains(body, series("ratelimit_remaining_estimate", "requests", "31d")) {
			t.Error("an estimate of a window the exporter did not count whole")
		}
	}

	client := openai.NewClient(option.WithBaseURL("http://"+proxyAddr+"/openai/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{
		Model:               "gpt-4o-mini",
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		MaxCompletionTokens: openai.Int(3),
	}
	// An answer, a stream that asks for its usage, one that does not:
	// 3 requests, 12 + 12 tokens.
	traffic := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.Chat.Completions.New(ctx, params); err != nil {
			t.Fatal(err)
		}
		for _, usage := range []bool{true, false} {
			p := params
			if usage {
				p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := client.Chat.Completions.NewStreaming(ctx, p)
			for stream.Next() {
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// What is left is exact when the traffic and the scrape fall in one
	// window: the scrape's reset timestamp says which. A round that
	// straddles a window's end is sent again.
	rounds := 0
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			t.Fatal("5 rounds of traffic each straddled a window's end")
		}
		e.waitFor(t, series("ratelimit_remaining_estimate", "requests", "2s")+" ")
		began := time.Now()
		traffic()
		rounds++
		_, body = e.get(t, "/metrics")
		scraped := time.Now()
		end, _ := sampleValue(body, series("ratelimit_reset_timestamp_seconds", "requests", "2s"))
		if float64(began.UnixNano())/1e9 < end-2 || float64(scraped.UnixNano())/1e9 >= end {
			continue
		}
		for resource, want := range map[string]float64{"requests": 100 - 3, "tokens": 1000 - 24} {
			if got, ok := sampleValue(body, series("ratelimit_remaining_estimate", resource, "2s")); !ok || got != want {
				t.Errorf("%s left: %v (%v), want %v", resource, got, ok, want)
			}
		}
		break
	}
	usage := func(resource string, n float64) string {
		return fmt.Sprintf(`ratelimit_proxy_usage_total{key="declared",model="gpt-4o-mini",provider="openai",resource="%s"} %g`, resource, n)
	}
	r := float64(rounds)
	e.waitFor(t, usage("requests", 3*r), usage("input_tokens", 18*r), usage("output_tokens", 6*r), usage("tokens", 24*r))

	// A reload that keeps the key and its windows keeps what they
	// counted: the estimate stays, under the new limit, with no window to
	// wait for.
	if err := os.WriteFile(cfg, []byte(config(2000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, body := e.do(t, http.MethodPost, "/-/reload"); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	_, body = e.get(t, "/metrics")
	for _, want := range []string{
		series("ratelimit_limit", "tokens", "2s") + " 2000",
		series("ratelimit_remaining_estimate", "tokens", "2s") + " ",
		usage("requests", 3*r), usage("tokens", 24*r),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("after the reload, /metrics lacks %s", want)
		}
	}
	if strings.Contains(body, key) || strings.Contains(e.Logs(), key) {
		t.Error("the key shows in /metrics or the log")
	}
}

// The README's example of declared limits, the first yaml block of its
// subsection of Sources, loads.
func TestReadmeDeclaredLimitsExampleLoads(t *testing.T) {
	blocks := readmeYAMLBlocks(t, "### Declared limits, counted from the proxy's traffic")
	if len(blocks) == 0 || !strings.Contains(blocks[0], "limits:") {
		t.Fatalf("no yaml block of declared limits: %q", blocks)
	}
	cfg := testkit.WriteConfig(t, blocks[0])
	if code, out := runOnce(t, []string{"GEMINI_API_KEY=sk-test-canary-readme-declared"}, "--config.file="+cfg, "--config.check"); code != 0 {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
