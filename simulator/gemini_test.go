package simulator

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// geminiProbe is the exporter's Gemini probe body.
const geminiProbe = `{"contents":[{"parts":[{"text":"Hi"}],"role":"user"}],"generationConfig":{"maxOutputTokens":1}}`

// Gemini answers without any rate-limit header; its usage is in the body.
func TestGeminiServes(t *testing.T) {
	s := NewDialect(Gemini, "m")
	s.SetClock(func() time.Time { return start })
	s.AddKey(simKey, Limits{"requests": {"minute": 8, "day": 1024}, "input_tokens": {"minute": 512}})
	const path = "/v1beta/models/m:generateContent"
	for i, r := range []*http.Request{
		request(http.MethodPost, path, geminiProbe, "X-Goog-Api-Key", simKey),
		request(http.MethodPost, path+"?key="+simKey, geminiProbe),
	} {
		name := []string{"x-goog-api-key", "?key="}[i]
		w := serve(s, r)
		want := `{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"MAX_TOKENS","index":0}],` +
			`"modelVersion":"m","responseId":"sim0000000` + strconv.Itoa(i+1) + `","usageMetadata":{"candidatesTokenCount":1,"promptTokenCount":9,"totalTokenCount":10}}` + "\n"
		if w.Code != 200 || w.Body.String() != want {
			t.Errorf("%s: %d\n got %s\nwant %s", name, w.Code, w.Body, want)
		}
		for _, mismatch := range headerMismatches(w.Header(), map[string]string{"Content-Type": "application/json"}, true) {
			t.Errorf("%s: %s", name, mismatch)
		}
		e, ok := s.LastExchange(simKey)
		if !ok || e.Path != path || e.Status != 200 || e.Header.Get("X-Goog-Api-Key") != "" {
			t.Errorf("%s: LastExchange %+v", name, e)
		}
	}
	// A system instruction and a longer answer are read too: 8 + 1 + 2 prompt tokens, 5 answered.
	w := serve(s, request(http.MethodPost, path, `{"systemInstruction":{"parts":[{"text":"Be brief"}]},"contents":[{"parts":[{"text":"Hi"}]}],`+
		`"generationConfig":{"maxOutputTokens":5,"temperature":0}}`, "X-Goog-Api-Key", simKey))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"usageMetadata":{"candidatesTokenCount":5,"promptTokenCount":11,"totalTokenCount":16}`) {
		t.Errorf("a system instruction: %d %s", w.Code, w.Body)
	}
}

// Gemini refuses what its API would, in its error shape.
func TestGeminiRefuses(t *testing.T) {
	s := NewDialect(Gemini, "m")
	s.AddKey(simKey, Limits{"requests": {"minute": 100}})
	const path = "/gemini/v1beta/models/m:generateContent"
	key := []string{"X-Goog-Api-Key", simKey}
	for _, ref := range []refusal{
		{"no key", request(http.MethodPost, path, geminiProbe), 400, "400 INVALID_ARGUMENT"},
		{"Bearer instead of x-goog-api-key", request(http.MethodPost, path, geminiProbe, "Authorization", "Bearer "+simKey), 400, "400 INVALID_ARGUMENT"},
		{"wrong key", request(http.MethodPost, path, geminiProbe, "X-Goog-Api-Key", "AIza-wrong"), 400, "400 INVALID_ARGUMENT"},
		{"wrong key in the query", request(http.MethodPost, path+"?key=AIza-wrong", geminiProbe), 400, "400 INVALID_ARGUMENT"},
		{"GET", request(http.MethodGet, path, "", key...), 405, "405 NOT_FOUND"},
		{"streamGenerateContent", request(http.MethodPost, "/v1beta/models/m:streamGenerateContent", geminiProbe, key...), 404, "404 NOT_FOUND"},
		{"chat completions", request(http.MethodPost, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"Hi"}]}`, key...), 404, "404 NOT_FOUND"},
		{"a chat body", request(http.MethodPost, path, `{"model":"m","messages":[{"role":"user","content":"Hi"}]}`, key...), 400, "400 INVALID_ARGUMENT"},
		{"no contents", request(http.MethodPost, path, `{"generationConfig":{"maxOutputTokens":1}}`, key...), 400, "400 INVALID_ARGUMENT"},
		{"empty parts", request(http.MethodPost, path, `{"contents":[{"role":"user","parts":[]}]}`, key...), 400, "400 INVALID_ARGUMENT"},
		{"a chat role", request(http.MethodPost, path, `{"contents":[{"role":"assistant","parts":[{"text":"Hi"}]}]}`, key...), 400, "400 INVALID_ARGUMENT"},
		{"max_tokens", request(http.MethodPost, path, `{"contents":[{"parts":[{"text":"Hi"}]}],"generationConfig":{"max_tokens":1}}`, key...), 400, "400 INVALID_ARGUMENT"},
		{"zero maxOutputTokens", request(http.MethodPost, path, `{"contents":[{"parts":[{"text":"Hi"}]}],"generationConfig":{"maxOutputTokens":0}}`, key...), 400, "400 INVALID_ARGUMENT"},
		{"not JSON", request(http.MethodPost, path, `contents`, key...), 400, "400 INVALID_ARGUMENT"},
		{"unknown model", request(http.MethodPost, "/v1beta/models/other:generateContent", geminiProbe, key...), 404, "404 NOT_FOUND"},
		{"no model", request(http.MethodPost, "/v1beta/:generateContent", geminiProbe, key...), 404, "404 NOT_FOUND"},
	} {
		w := serve(s, ref.req)
		if w.Code != ref.status || errorID(Gemini, w.Body.Bytes()) != ref.id || strings.Contains(w.Body.String(), simKey) {
			t.Errorf("%s: %d %s, want %d %s", ref.name, w.Code, w.Body, ref.status, ref.id)
		}
	}
}

// A 429 names, in Gemini's words, each documented bucket that cannot take
// the request and the wait until all can; no header says anything.
func TestGeminiRateLimited(t *testing.T) {
	s := NewDialect(Gemini, "m")
	s.SetClock(func() time.Time { return start })
	s.AddKey(simKey, Limits{"requests": {"minute": 8, "hour": 100, "day": 1024}, "input_tokens": {"minute": 512}})
	probe := func() (int, string, http.Header) {
		w := serve(s, request(http.MethodPost, "/v1beta/models/m:generateContent", geminiProbe, "X-Goog-Api-Key", simKey))
		return w.Code, w.Body.String(), w.Header()
	}
	s.Exhaust(simKey, "m")
	// The hour bucket, which Gemini does not have, limits all the same but is not named.
	status, body, header := probe()
	want := `{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[` +
		`{"quotaDimensions":{"location":"global","model":"m"},"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier",` +
		`"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaValue":"8"},` +
		`{"quotaDimensions":{"location":"global","model":"m"},"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier",` +
		`"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests"}]},` +
		`{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},` +
		`{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"85s"}],` + // a day's bucket of 1,024 refills one in 84.375 s
		`"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",` +
		`"status":"RESOURCE_EXHAUSTED"}}` + "\n"
	if status != 429 || body != want {
		t.Errorf("exhausted: %d\n got %s\nwant %s", status, body, want)
	}
	for _, mismatch := range headerMismatches(header, map[string]string{"Content-Type": "application/json"}, true) {
		t.Error(mismatch)
	}

	// Input tokens alone: 9 of the probe's cannot fit in what is left.
	s.AddKey(simKey, Limits{"requests": {"minute": 8}, "input_tokens": {"minute": 512}})
	s.Consume(simKey, "m", 0, 505)
	status, body, _ = probe()
	if status != 429 || !strings.Contains(body, `"violations":[{"quotaDimensions":{"location":"global","model":"m"},"quotaId":"GenerateContentInputTokensPerModelPerMinute-FreeTier",`+
		`"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_input_token_count","quotaValue":"512"}]}`) ||
		!strings.Contains(body, `"retryDelay":"1s"`) { // 2 tokens more in 0.234 s
		t.Errorf("input tokens: %d %s", status, body)
	}
}
