package provider

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// afternoon is 14:00 Pacific standard time: the next midnight there is 10
// hours away.
var afternoon = time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)

func geminiAt(now time.Time) generateContent {
	return generateContent{now: func() time.Time { return now }}
}

func TestGeminiRequest(t *testing.T) {
	p := lookup(t, "gemini")
	req := p.Probe.Request(p.BaseURL, p.Model, Options{})
	if want := "https://generativelanguage.googleapis.com/v1beta/models/gemini-3.5-flash-lite:generateContent"; req.Method != http.MethodPost || req.URL != want {
		t.Errorf("%s %s, want POST %s", req.Method, req.URL, want)
	}
	const body = `{"contents":[{"parts":[{"text":"Hi"}],"role":"user"}],"generationConfig":{"maxOutputTokens":1}}`
	if string(req.Body) != body {
		t.Errorf("body %s, want %s", req.Body, body)
	}
	h := http.Header{}
	p.Probe.Authorize(h, "AIza-k")
	if len(h) != 1 || h.Get("X-Goog-Api-Key") != "AIza-k" {
		t.Errorf("the key goes in %v", h)
	}
	if p.MinInterval != time.Hour {
		t.Errorf("MinInterval %s: a probe that learns nothing until a quota runs out goes hourly", p.MinInterval)
	}
}

// The real 429 body: each violation is a window with nothing left; the
// limit where quotaValue gives it; minute windows reset after retryDelay,
// the day window at midnight Pacific time. Together they are a quota
// exhausted, not a rate to wait out.
func TestReadGemini429Sample(t *testing.T) {
	a := geminiAt(afternoon).Read(testkit.Fixture(t, "gemini-429.json"))
	slices.SortFunc(a.Observations, ratelimit.Compare)
	want := []ratelimit.Observation{
		obs(ratelimit.Limit, "input_tokens", "minute", 250000), obs(ratelimit.Remaining, "input_tokens", "minute", 0), obs(ratelimit.Reset, "input_tokens", "minute", 43),
		obs(ratelimit.Remaining, "requests", "day", 0), obs(ratelimit.Reset, "requests", "day", 10*60*60),
		obs(ratelimit.Limit, "requests", "minute", 10), obs(ratelimit.Remaining, "requests", "minute", 0), obs(ratelimit.Reset, "requests", "minute", 43),
	}
	if !slices.Equal(a.Observations, want) {
		t.Errorf("observations\n got %v\nwant %v", a.Observations, want)
	}
	if a.RetryAfter != 43*time.Second || a.ErrorCode != "resource_exhausted" || a.Dropped != 0 || a.Served || a.Tokens != 0 {
		t.Errorf("RetryAfter %s, code %q, %d dropped, served %v, %v tokens; want 43s, resource_exhausted, 0, false, 0",
			a.RetryAfter, a.ErrorCode, a.Dropped, a.Served, a.Tokens)
	}
	r := ratelimit.Reading{StatusCode: 429, Observations: a.Observations, RetryAfter: a.RetryAfter}
	if cause := ratelimit.Classify(429, a.ErrorCode, &r); cause != ratelimit.CauseQuotaExhausted {
		t.Errorf("cause %q, want %q: the day's requests ran out", cause, ratelimit.CauseQuotaExhausted)
	}
	r.Observations = slices.DeleteFunc(slices.Clone(r.Observations), func(o ratelimit.Observation) bool { return o.Window == "day" })
	if cause := ratelimit.Classify(429, a.ErrorCode, &r); cause != ratelimit.CauseRateLimit {
		t.Errorf("minute windows alone: cause %q, want %q", cause, ratelimit.CauseRateLimit)
	}
}

// geminiError is a 429 body with the given violations and retryDelay.
func geminiError(retryDelay string, violations ...map[string]any) string {
	details := []any{map[string]any{"@type": quotaFailureType, "violations": violations}}
	if retryDelay != "" {
		details = append(details, map[string]any{"@type": retryInfoType, "retryDelay": retryDelay})
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": 429, "message": "You exceeded your current quota", "status": "RESOURCE_EXHAUSTED", "details": details}})
	return string(b)
}

func TestReadGemini(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		want       []ratelimit.Observation
		retryAfter time.Duration
		code       string
		served     bool
		tokens     float64
		dropped    int
	}{
		{name: "served", body: `{"candidates":[{"content":{"parts":[{"text":"Hello"}],"role":"model"},"finishReason":"MAX_TOKENS"}],` +
			`"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":1,"totalTokenCount":3},"modelVersion":"gemini-3.5-flash-lite"}`,
			served: true, tokens: 3},
		{name: "served, cut before any candidate", body: `{"usageMetadata":{"promptTokenCount":2,"totalTokenCount":2}}`, served: true, tokens: 2},
		{name: "an empty object is no answer", body: `{}`},
		{name: "a stream's array: its first element", body: "[" + geminiError("3s", map[string]any{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel", "quotaValue": "5"}) + "]",
			want:       []ratelimit.Observation{obs(ratelimit.Limit, "requests", "minute", 5), obs(ratelimit.Remaining, "requests", "minute", 0), obs(ratelimit.Reset, "requests", "minute", 3)},
			retryAfter: 3 * time.Second, code: "resource_exhausted"},
		{name: "an empty array", body: `[]`},
		{name: "not JSON", body: `<html>`},
		{name: "paid tier: the same names", body: geminiError("1.5s",
			map[string]any{"quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count", "quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute", "quotaValue": "1000000"},
			map[string]any{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-PaidTier2", "quotaValue": 2000}),
			want: []ratelimit.Observation{
				obs(ratelimit.Limit, "input_tokens", "minute", 1e6), obs(ratelimit.Remaining, "input_tokens", "minute", 0), obs(ratelimit.Reset, "input_tokens", "minute", 1.5),
				obs(ratelimit.Limit, "requests", "minute", 2000), obs(ratelimit.Remaining, "requests", "minute", 0), obs(ratelimit.Reset, "requests", "minute", 1.5),
			}, retryAfter: 1500 * time.Millisecond, code: "resource_exhausted"},
		{name: "a scope after the window, and one quota twice: the least limit", body: geminiError("5s",
			map[string]any{"quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinutePerUser", "quotaValue": "500"},
			map[string]any{"quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute", "quotaValue": "900"},
			map[string]any{"quotaId": "GenerateContentInputTokensPerModelPerDay-FreeTier"}),
			want: []ratelimit.Observation{
				obs(ratelimit.Remaining, "input_tokens", "day", 0), obs(ratelimit.Reset, "input_tokens", "day", 36000),
				obs(ratelimit.Limit, "input_tokens", "minute", 500), obs(ratelimit.Remaining, "input_tokens", "minute", 0), obs(ratelimit.Reset, "input_tokens", "minute", 5),
			}, retryAfter: 5 * time.Second, code: "resource_exhausted"},
		{name: "a limit of 0: the tier has no access to the model", body: geminiError("25.465784708s",
			map[string]any{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "quotaValue": "0"}),
			want:       []ratelimit.Observation{obs(ratelimit.Limit, "requests", "day", 0), obs(ratelimit.Remaining, "requests", "day", 0), obs(ratelimit.Reset, "requests", "day", 36000)},
			retryAfter: 25465784708 * time.Nanosecond, code: "resource_exhausted"},
		{name: "no quota id: the metric names the resource, no window", body: geminiError("",
			map[string]any{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count", "quotaValue": "250000"}),
			want: []ratelimit.Observation{obs(ratelimit.Limit, "input_tokens", "", 250000), obs(ratelimit.Remaining, "input_tokens", "", 0)},
			code: "resource_exhausted"},
		{name: "bad values are dropped and counted, the rest kept", body: geminiError("soon",
			map[string]any{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel", "quotaValue": "ten"},
			map[string]any{"quotaId": "GenerateContentInputTokensPerModelPerMinute", "quotaValue": "-5"},
			map[string]any{"quotaId": "Per Minute", "quotaMetric": "generativelanguage.googleapis.com/Échec"}),
			want:    []ratelimit.Observation{obs(ratelimit.Remaining, "input_tokens", "minute", 0), obs(ratelimit.Remaining, "requests", "minute", 0)},
			code:    "resource_exhausted",
			dropped: 4},
		{name: "a wait in another form than proto3's is dropped", body: geminiError("1e3s"), dropped: 1, code: "resource_exhausted"},
		{name: "a wait beyond a Duration", body: geminiError("99999999999999999999s"), retryAfter: 1<<63 - 1, code: "resource_exhausted"},
		{name: "another error: its status, nothing else", body: `{"error":{"code":403,"message":"Method doesn't allow unregistered callers","status":"PERMISSION_DENIED"}}`,
			code: "permission_denied"},
		{name: "overloaded", body: `{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}`, code: "unavailable"},
		{name: "a status that is free text is no code", body: `{"error":{"code":400,"status":"API key AIza-k not valid"}}`},
		{name: "nor one that is not google.rpc.Code's", body: `{"error":{"code":400,"status":"aiza_sy_k0123"}}`},
		// A key echoed where a quota is named never becomes a label.
		{name: "names made of other words than a resource's", body: geminiError("2s",
			map[string]any{"quotaId": "AIzaSyDxKey0123PerMinute", "quotaMetric": "generativelanguage.googleapis.com/aiza_sy_dx_key"},
			map[string]any{"quotaId": "GenerateRequestsAIzaSyDxPerDay"}),
			retryAfter: 2 * time.Second, code: "resource_exhausted", dropped: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := geminiAt(afternoon).Read([]byte(tc.body))
			slices.SortFunc(a.Observations, ratelimit.Compare)
			if !slices.Equal(a.Observations, tc.want) {
				t.Errorf("observations\n got %v\nwant %v", a.Observations, tc.want)
			}
			if a.RetryAfter != tc.retryAfter || a.ErrorCode != tc.code || a.Served != tc.served || a.Tokens != tc.tokens || a.Dropped != tc.dropped {
				t.Errorf("RetryAfter %s, code %q, served %v, %v tokens, %d dropped; want %s, %q, %v, %v, %d",
					a.RetryAfter, a.ErrorCode, a.Served, a.Tokens, a.Dropped, tc.retryAfter, tc.code, tc.served, tc.tokens, tc.dropped)
			}
		})
	}
}

// A body cannot make more windows than a reading holds.
func TestReadGeminiBounded(t *testing.T) {
	var violations []map[string]any
	words := slices.Sorted(maps.Keys(resourceWords))
	for i := range 100 {
		violations = append(violations, map[string]any{"quotaId": "GenerateContentInputTokensPerModelPerMinute", "quotaMetric": "x", "quotaValue": i})
		violations = append(violations, map[string]any{"quotaMetric": fmt.Sprintf("generativelanguage.googleapis.com/%s_%s", words[i%len(words)], words[i/len(words)])})
	}
	a := geminiAt(afternoon).Read([]byte(geminiError("1s", violations...)))
	if len(a.Observations) > ratelimit.MaxObservations || a.Dropped != 100-ratelimit.MaxObservations/3+1 {
		t.Errorf("%d observations, %d dropped", len(a.Observations), a.Dropped)
	}
}

// Daily quotas reset at midnight Pacific time, summer time included.
func TestUntilPacificMidnight(t *testing.T) {
	for _, tc := range []struct {
		now  string
		want time.Duration
	}{
		{"2026-12-04T22:00:00Z", 10 * time.Hour},                // 14:00 PST
		{"2026-07-01T00:30:00Z", 6*time.Hour + 30*time.Minute},  // 17:30 PDT
		{"2026-07-01T07:00:00Z", 24 * time.Hour},                // midnight PDT: the next one
		{"2026-03-08T08:30:00Z", 22*time.Hour + 30*time.Minute}, // 00:30 PST, the day summer time begins: 23 hours long
		{"2026-11-01T12:00:00Z", 20 * time.Hour},                // 04:00 PST, the day summer time ends
	} {
		now, err := time.Parse(time.RFC3339, tc.now)
		if err != nil {
			t.Fatal(err)
		}
		if got := untilPacificMidnight(now); got != tc.want {
			t.Errorf("at %s: %s, want %s", tc.now, got, tc.want)
		}
	}
}

// A Gemini path names the model it calls; one with a slash (escaped,
// %2F) is named but not read, never left to the body.
func TestModelInGeminiPath(t *testing.T) {
	type reading struct {
		model string
		named bool
	}
	for path, want := range map[string]reading{
		"/v1beta/models/gemini-3.5-flash-lite:generateContent":              {"gemini-3.5-flash-lite", true},
		"/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent":      {"gemini-2.5-flash", true},
		"/v1/models/gemini-2.5-pro:generateContent":                         {"gemini-2.5-pro", true},
		"/v1beta/models/gemini-2.5-flash:countTokens":                       {},
		"/v1beta/models/gemini-2.5-flash":                                   {},
		"/v1beta/models/:generateContent":                                   {},
		"/v1beta/models/a/b:generateContent":                                {"", true},
		"/v1beta/tunedModels/x:generateContent":                             {},
		"/v1beta/models/gemini-2.5-flash:generateContent/models/x:generate": {},
	} {
		if model, named := modelInGeminiPath(path); model != want.model || named != want.named {
			t.Errorf("%s: %q, %v; want %+v", path, model, named, want)
		}
	}
}
