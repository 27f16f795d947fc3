package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// providerKey is the simulator key of the provider tests.
const providerKey = "sk-test-canary-providers-3b9e"

// window is one series the exporter must show: its resource and window
// labels, and the response headers it comes from (%s: limit, remaining,
// reset; no reset header when noReset).
type window struct {
	resource, window, header string
	noReset                  bool
}

// providerCase is one provider probed through the built binary.
type providerCase struct {
	provider string
	dialect  simulator.Dialect
	model    string // "" for OpenRouter's per-key probe
	basePath string // base_url under the simulator's address
	limits   simulator.Limits
	windows  []window
	// reset turns a reset header into seconds from the response.
	reset func(value string, h http.Header) (float64, error)
	// capField is the request field that caps the answer at one token.
	capField string
	// reason is the 429's error code as the exporter should label it;
	// "" when the provider's probe cannot be rate limited here.
	reason string
	// cause is the 429's cause where the windows' names do not tell it.
	cause string
}

// refusalCause is the cause of a 429 once Exhaust has emptied every
// requests window: one of a day or longer, named in the headers, makes it a
// quota.
func (tc providerCase) refusalCause() string {
	if tc.cause != "" {
		return tc.cause
	}
	for _, w := range tc.windows {
		if w.resource == "requests" && (w.window == "day" || w.window == "week" || w.window == "month") {
			return "quota_exhausted"
		}
	}
	return "rate_limit"
}

func floatReset(v string, _ http.Header) (float64, error) { return strconv.ParseFloat(v, 64) }

func durationReset(v string, _ http.Header) (float64, error) {
	d, err := time.ParseDuration(v)
	return d.Seconds(), err
}

// timestampReset counts an RFC 3339 reset from the response's Date: the
// provider's clock, not ours.
func timestampReset(v string, h http.Header) (float64, error) {
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return 0, err
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return 0, fmt.Errorf("no Date to count %s from: %w", v, err)
	}
	return max(at.Sub(date).Seconds(), 0), nil
}

var providerCases = []providerCase{
	{
		provider: "cerebras", dialect: simulator.Cerebras, model: "llama3.1-8b", basePath: "/v1",
		limits: simulator.FreeTrial(), reset: floatReset, capField: "max_completion_tokens", reason: "request_quota_exceeded",
		windows: []window{
			{"requests", "minute", "x-ratelimit-%s-requests-minute", false}, {"requests", "hour", "x-ratelimit-%s-requests-hour", false},
			{"requests", "day", "x-ratelimit-%s-requests-day", false}, {"tokens", "minute", "x-ratelimit-%s-tokens-minute", false},
			{"tokens", "hour", "x-ratelimit-%s-tokens-hour", false}, {"tokens", "day", "x-ratelimit-%s-tokens-day", false},
		},
	},
	{
		provider: "openai", dialect: simulator.OpenAI, model: "gpt-4o-mini", basePath: "/v1",
		limits: simulator.Limits{"requests": {"minute": 500}, "tokens": {"minute": 200000}},
		reset:  durationReset, capField: "max_completion_tokens", reason: "rate_limit_exceeded",
		// Both pairs are per minute or per day by the account's tier: no window.
		windows: []window{{"requests", "", "x-ratelimit-%s-requests", false}, {"tokens", "", "x-ratelimit-%s-tokens", false}},
	},
	{
		provider: "groq", dialect: simulator.Groq, model: "llama-3.1-8b-instant", basePath: "/openai/v1",
		limits: simulator.Limits{"requests": {"day": 14400}, "tokens": {"minute": 18000}},
		reset:  durationReset, capField: "max_tokens", reason: "rate_limit_exceeded",
		windows: []window{{"requests", "day", "x-ratelimit-%s-requests", false}, {"tokens", "minute", "x-ratelimit-%s-tokens", false}},
	},
	{
		provider: "mistral", dialect: simulator.Mistral, model: "mistral-small-latest", basePath: "/v1",
		limits:   simulator.Limits{"requests": {"minute": 60}, "tokens": {"minute": 500000, "month": 1e9}},
		capField: "max_tokens", reason: "rate_limit_exceeded",
		windows: []window{
			{"requests", "minute", "x-ratelimit-%s-req-minute", true}, {"tokens", "minute", "x-ratelimit-%s-tokens-minute", true},
			{"tokens", "month", "x-ratelimit-%s-tokens-month", true},
		},
	},
	{
		provider: "together", dialect: simulator.Together, model: "meta-llama/Llama-3.2-3B-Instruct-Turbo", basePath: "/v1",
		limits: simulator.Limits{"requests": {"minute": 600}, "tokens": {"minute": 180000}},
		reset:  floatReset, capField: "max_tokens", reason: "rate_limit_exceeded",
		windows: []window{{"requests", "", "x-ratelimit-%s", false}, {"tokens", "", "x-tokenlimit-%s", true}},
	},
	{
		provider: "fireworks", dialect: simulator.Fireworks, model: "accounts/fireworks/models/llama-v3p1-8b-instruct", basePath: "/inference/v1",
		limits:   simulator.Limits{"requests": {"minute": 600}, "tokens_prompt": {"minute": 60000}, "tokens_generated": {"minute": 6000}},
		capField: "max_tokens", reason: "rate_limit_exceeded",
		windows: []window{
			{"requests", "", "x-ratelimit-%s-requests", true}, {"tokens_prompt", "second", "x-ratelimit-%s-tokens-prompt", true},
			{"tokens_generated", "second", "x-ratelimit-%s-tokens-generated", true},
		},
	},
	{
		provider: "sambanova", dialect: simulator.SambaNova, model: "Meta-Llama-3.1-8B-Instruct", basePath: "/v1",
		limits: simulator.Limits{"requests": {"minute": 480, "day": 28800}},
		reset:  floatReset, capField: "max_tokens", reason: "rate_limit_exceeded",
		windows: []window{{"requests", "minute", "x-ratelimit-%s-requests", false}, {"requests", "day", "x-ratelimit-%s-requests-day", false}},
	},
	{
		// An OpenAI-compatible server: Groq's dialect, none of Groq's documented windows.
		// Its empty requests window resets in hours: a quota, though unnamed.
		provider: "openai_compatible", dialect: simulator.Groq, model: "llama-3.1-8b-instant", basePath: "/v1",
		limits: simulator.Limits{"requests": {"day": 14400}, "tokens": {"minute": 18000}},
		reset:  durationReset, capField: "max_tokens", reason: "rate_limit_exceeded", cause: "quota_exhausted",
		windows: []window{{"requests", "", "x-ratelimit-%s-requests", false}, {"tokens", "", "x-ratelimit-%s-tokens", false}},
	},
	{
		provider: "anthropic", dialect: simulator.Anthropic, model: "claude-haiku-4-5", basePath: "",
		limits: simulator.Limits{"requests": {"minute": 50}, "tokens": {"minute": 48000}, "input_tokens": {"minute": 40000}, "output_tokens": {"minute": 8000}},
		reset:  timestampReset, capField: "max_tokens", reason: "rate_limit_error",
		windows: []window{
			{"requests", "minute", "anthropic-ratelimit-requests-%s", false}, {"tokens", "minute", "anthropic-ratelimit-tokens-%s", false},
			{"input_tokens", "minute", "anthropic-ratelimit-input-tokens-%s", false}, {"output_tokens", "minute", "anthropic-ratelimit-output-tokens-%s", false},
		},
	},
	{
		provider: "openrouter", dialect: simulator.OpenRouter, basePath: "/api/v1",
		limits: simulator.Limits{"credits": {"month": 25}, "free_model_requests": {"day": 1000}},
	},
	{
		// xAI documents no window for its headers; its 429's code is a
		// sentence, no reason.
		provider: "xai", dialect: simulator.XAI, model: "grok-4.20-0309-non-reasoning", basePath: "/v1",
		limits: simulator.Limits{"requests": {"minute": 1800}, "tokens": {"minute": 1e7}},
		reset:  durationReset, capField: "max_completion_tokens",
		windows: []window{{"requests", "", "x-ratelimit-%s-requests", false}, {"tokens", "", "x-ratelimit-%s-tokens", false}},
	},
}

// probeURL is where the provider's probe goes, as its documentation says.
func probeURL(tc providerCase) string {
	switch tc.provider {
	case "anthropic":
		return tc.basePath + "/v1/messages"
	case "openrouter":
		return tc.basePath + "/key"
	}
	return tc.basePath + "/chat/completions"
}

// metricsOf parses an exposition into samples by name and labels, the
// labels written as sorted name="value" pairs, empty values left out as
// Prometheus leaves them out.
func metricsOf(t *testing.T, text string) map[string]float64 {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	samples := map[string]float64{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			samples[name+labelString(m.GetLabel())] = m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return samples
}

func labelString(labels []*dto.LabelPair) string {
	var parts []string
	for _, l := range labels {
		if l.GetValue() != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// series names a sample as metricsOf does: labels sorted by name.
func series(name string, labels ...string) string {
	var parts []string
	for i := 0; i+1 < len(labels); i += 2 {
		if labels[i+1] != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
		}
	}
	slices.Sort(parts) // name="...": sorting the pairs sorts the names
	return name + "{" + strings.Join(parts, ",") + "}"
}

// Every provider, probed by the built binary through the simulator of its
// dialect: the request is the one the provider expects (the simulator
// refuses any other), and /metrics shows exactly the values sent, under the
// right resource and window, the tokens billed, and a 429's reason.
func TestEveryProviderThroughTheBinary(t *testing.T) {
	for _, tc := range providerCases {
		t.Run(tc.provider, func(t *testing.T) {
			models := []string{tc.model}
			if tc.model == "" {
				models = nil
			}
			sim := simulator.NewDialect(tc.dialect, models...)
			// No refill between the steps: a window that Exhaust emptied
			// still resets in its whole length when the probe reads it.
			clock := time.Now()
			sim.SetClock(func() time.Time { return clock })
			sim.AddKey(providerKey, tc.limits)
			srv := httptest.NewServer(sim)
			t.Cleanup(srv.Close)

			modelLine := "    models: [" + tc.model + "]\n"
			if tc.model == "" {
				modelLine = ""
			}
			// Scrape mode with no min_interval: each scrape probes.
			cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe:
  mode: scrape
  min_interval: 0s
  max_quota_share: 1
keys:
  - name: k
    provider: %s
    api_key: %s
    base_url: %s
%s`, tc.provider, providerKey, srv.URL+tc.basePath, modelLine))
			e := start(t, nil, "--config.file="+cfg)

			_, text := e.get(t, "/metrics")
			ex, ok := sim.LastExchange(providerKey)
			if !ok {
				t.Fatalf("the simulator saw no probe; /metrics:\n%s", text)
			}
			if want := probeURL(tc); ex.Path != want {
				t.Errorf("probe sent to %s, want %s", ex.Path, want)
			}
			if ex.Status != http.StatusOK {
				t.Fatalf("the simulator answered %d: %s", ex.Status, ex.ResponseBody)
			}
			if tc.capField != "" {
				var body map[string]any
				if err := json.Unmarshal(ex.Body, &body); err != nil || body[tc.capField] != 1.0 || body["model"] != tc.model {
					t.Errorf("request body %s: want model %q and %s: 1", ex.Body, tc.model, tc.capField)
				}
			}
			got := metricsOf(t, text)
			id := []string{"key", "k", "model", tc.model, "provider", tc.provider}
			check := func(name string, want float64, labels ...string) {
				t.Helper()
				s := series(name, append(append([]string{}, id...), labels...)...)
				if v, ok := got[s]; !ok || v != want {
					t.Errorf("%s = %v (present %v), want %v", s, v, ok, want)
				}
			}
			check("ratelimit_probe_success", 1)

			wantWindows := len(tc.windows)
			for _, w := range tc.windows {
				at := []string{"resource", w.resource, "window", w.window}
				for _, kind := range []string{"limit", "remaining"} {
					v, err := strconv.ParseFloat(ex.ResponseHeader.Get(fmt.Sprintf(w.header, kind)), 64)
					if err != nil {
						t.Fatalf("header %s: %v", fmt.Sprintf(w.header, kind), err)
					}
					check("ratelimit_"+kind, v, at...)
				}
				if !w.noReset {
					v, err := tc.reset(ex.ResponseHeader.Get(fmt.Sprintf(w.header, "reset")), ex.ResponseHeader)
					if err != nil {
						t.Fatal(err)
					}
					check("ratelimit_reset_seconds", v, at...)
				}
			}
			if tc.provider == "openrouter" {
				var key struct {
					Data struct {
						Limit          float64                            `json:"limit"`
						LimitRemaining float64                            `json:"limit_remaining"`
						Free           struct{ Limit, Remaining float64 } `json:"free_model_daily_requests"`
					} `json:"data"`
				}
				if json.Unmarshal(ex.ResponseBody, &key) != nil {
					t.Fatalf("OpenRouter's answer: %s", ex.ResponseBody)
				}
				check("ratelimit_limit", key.Data.Limit, "resource", "credits", "window", "month")
				check("ratelimit_remaining", key.Data.LimitRemaining, "resource", "credits", "window", "month")
				check("ratelimit_limit", key.Data.Free.Limit, "resource", "free_model_requests", "window", "day")
				check("ratelimit_remaining", key.Data.Free.Remaining, "resource", "free_model_requests", "window", "day")
				wantWindows = 2 // credits and free_model_requests
				check("ratelimit_probe_tokens_total", 0)
			} else {
				var usage struct {
					Usage struct {
						TotalTokens  float64 `json:"total_tokens"`
						InputTokens  float64 `json:"input_tokens"`
						OutputTokens float64 `json:"output_tokens"`
					} `json:"usage"`
				}
				if err := json.Unmarshal(ex.ResponseBody, &usage); err != nil {
					t.Fatal(err)
				}
				u := usage.Usage
				tokens := u.TotalTokens + u.InputTokens + u.OutputTokens // one API gives the first, the other the rest
				if tokens <= 0 {
					t.Fatalf("no usage in %s", ex.ResponseBody)
				}
				check("ratelimit_probe_tokens_total", tokens)
			}
			limits := 0
			for s := range got {
				if strings.HasPrefix(s, "ratelimit_limit{") {
					limits++
				}
			}
			if limits != wantWindows {
				t.Errorf("%d ratelimit_limit series, want %d:\n%s", limits, wantWindows, text)
			}
			if n := got[series("ratelimit_header_errors_total", id...)]; n != 0 {
				t.Errorf("%v header values dropped", n)
			}

			if tc.reason == "" {
				return
			}
			sim.Exhaust(providerKey, tc.model)
			_, text = e.get(t, "/metrics")
			got = metricsOf(t, text)
			check("ratelimit_probes_total", 1, "cause", tc.refusalCause(), "reason", tc.reason, "result", "rate_limited")
			check("ratelimit_probes_total", 0, "cause", "", "reason", "", "result", "rate_limited")
			check("ratelimit_probe_status_code", 429)
		})
	}
}
