package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// The built exporter as a proxy: the official SDKs send their requests
// through it with their own keys, and /metrics shows what the last answer
// said, read at no cost: no probe is sent for it.
func TestProxyThroughTheBinary(t *testing.T) {
	const anthropicKey = "sk-test-canary-passive-ant-91c4"
	cerebras := simulator.New("llama3.1-8b")
	cerebras.AddKey(goodKey, simulator.FreeTrial())
	claude := simulator.NewDialect(simulator.Anthropic, "claude-haiku-4-5")
	claude.AddKey(anthropicKey, simulator.Limits{"requests": {"minute": 50}, "tokens": {"minute": 48000},
		"input_tokens": {"minute": 40000}, "output_tokens": {"minute": 8000}})
	mux := http.NewServeMux()
	mux.Handle("/cerebras/", cerebras)
	mux.Handle("/anthropic/", claude)
	upstream := httptest.NewServer(mux)
	t.Cleanup(upstream.Close)

	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe:
  interval: 1h
keys:
  - {name: good, api_key: %s, base_url: %s/cerebras/v1}
  - {name: claude, provider: anthropic, api_key: %s, base_url: %s/anthropic}
proxy:
  listen_address: %s
  unknown_keys: fingerprint
  routes:
    - {path_prefix: /cerebras/, upstream: %s/cerebras, provider: cerebras}
    - {path_prefix: /anthropic/, upstream: %s/anthropic, provider: anthropic}
`, goodKey, upstream.URL, anthropicKey, upstream.URL, proxyAddr, upstream.URL, upstream.URL))
	e := start(t, nil, "--config.file="+cfg, "--log.level=debug")
	e.waitFor(t,
		`ratelimit_observations_total{key="good",model="llama3.1-8b",provider="cerebras",source="probe"} 1`,
		`ratelimit_observations_total{key="claude",model="claude-haiku-4-5",provider="anthropic",source="probe"} 1`)
	probesBefore := cerebras.Requests() + claude.Requests()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var chatResp *http.Response
	oai := openai.NewClient(option.WithBaseURL("http://"+proxyAddr+"/cerebras/v1"), option.WithAPIKey(goodKey), option.WithMaxRetries(0))
	if _, err := oai.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:               "llama3.1-8b",
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello")},
		MaxCompletionTokens: openai.Int(5),
	}, option.WithResponseInto(&chatResp)); err != nil {
		t.Fatal(err)
	}
	var msgResp *http.Response
	ant := anthropic.NewClient(anthropicoption.WithBaseURL("http://"+proxyAddr+"/anthropic"), anthropicoption.WithAPIKey(anthropicKey), anthropicoption.WithMaxRetries(0))
	if _, err := ant.Messages.New(ctx, anthropic.MessageNewParams{
		Model:     "claude-haiku-4-5",
		MaxTokens: 5,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello"))},
	}, anthropicoption.WithResponseInto(&msgResp)); err != nil {
		t.Fatal(err)
	}
	// A key the config does not know, under its fingerprint.
	stranger := openai.NewClient(option.WithBaseURL("http://"+proxyAddr+"/cerebras/v1"), option.WithAPIKey("sk-test-canary-passive-stranger"), option.WithMaxRetries(0))
	cerebras.AddKey("sk-test-canary-passive-stranger", simulator.FreeTrial())
	if _, err := stranger.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "llama3.1-8b", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
	}); err != nil {
		t.Fatal(err)
	}

	body := e.waitFor(t,
		`ratelimit_remaining{key="good",model="llama3.1-8b",provider="cerebras",resource="tokens",window="minute"} `+chatResp.Header.Get("x-ratelimit-remaining-tokens-minute"),
		`ratelimit_remaining{key="claude",model="claude-haiku-4-5",provider="anthropic",resource="input_tokens",window="minute"} `+msgResp.Header.Get("anthropic-ratelimit-input-tokens-remaining"),
		`ratelimit_observations_total{key="good",model="llama3.1-8b",provider="cerebras",source="proxy"} 1`,
		`ratelimit_observations_total{key="claude",model="claude-haiku-4-5",provider="anthropic",source="proxy"} 1`,
		`ratelimit_proxy_requests_total{code="200",route="/cerebras/"} 2`,
		`ratelimit_proxy_requests_total{code="200",route="/anthropic/"} 1`,
		`ratelimit_observations_total{key="sha256:`,
	)
	if got := cerebras.Requests() + claude.Requests() - probesBefore; got != 3 {
		t.Errorf("%d requests reached the providers, want the applications' 3 and no probe", got)
	}
	for _, key := range []string{goodKey, anthropicKey, "sk-test-canary-passive-stranger"} {
		if strings.Contains(body, key) || strings.Contains(e.Logs(), key) {
			t.Errorf("a key shows in /metrics or the debug log")
		}
	}
}

// The proxy's budgets through the binary: a flood of strangers' keys under
// unknown_keys: fingerprint cannot keep a configured key's new model from
// being recorded, what does not fit is counted, and a 429 without
// rate-limit headers is recorded as a 429, not as a row of zero probes.
func TestStrangersCannotCrowdOutConfiguredKeys(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test-Throttle") != "" {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Header().Set("X-Ratelimit-Limit-Requests-Minute", "100")
		w.Header().Set("X-Ratelimit-Remaining-Requests-Minute", "50")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"choices":[]}`)
	}))
	t.Cleanup(upstream.Close)
	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {interval: 1h}
keys:
  - {name: good, api_key: %s, base_url: %s/v1, models: [llama3.1-8b]}
proxy:
  listen_address: %s
  unknown_keys: fingerprint
  routes: [{path_prefix: /c/, upstream: %s, provider: cerebras}]
`, goodKey, upstream.URL, proxyAddr, upstream.URL))
	e := start(t, nil, "--config.file="+cfg)

	send := func(key, model string, throttle bool) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+proxyAddr+"/c/v1/chat/completions",
			strings.NewReader(`{"model":"`+model+`","messages":[]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		if throttle {
			req.Header.Set("X-Test-Throttle", "1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	const strangers = 1005
	keys := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range keys {
				send(key, "llama3.1-8b", false)
			}
		}()
	}
	for i := range strangers {
		keys <- fmt.Sprintf("sk-test-canary-stranger-%04d", i)
	}
	close(keys)
	wg.Wait()
	send(goodKey, "new-model", false)
	send(goodKey, "throttled-model", true)

	body := e.waitFor(t,
		`ratelimit_remaining{key="good",model="new-model",provider="cerebras",resource="requests",window="minute"} 50`,
		`ratelimit_proxy_rate_limited_total{cause="rate_limit",key="good",model="throttled-model",provider="cerebras"} 1`,
		`ratelimit_readings_dropped_total{reason="fingerprints_budget"} 5`)
	if lines := grepLines(body, `model="throttled-model"`); strings.Count(lines, "\n")+1 != 4 || strings.Contains(lines, "ratelimit_probes_total") {
		t.Errorf("a proxied 429 without headers, for a model the config does not list, shows:\n%s\nwant its 429 and its proxy readings only", lines)
	}
}
