package simulator

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// subscriptionProbe is a one-token message of model, with the key as an
// OAuth token, as Claude Code sends it; header adds or replaces headers.
func subscriptionProbe(model, token string, header ...string) *http.Request {
	r := request(http.MethodPost, "/anthropic/v1/messages", `{"model":"`+model+`","max_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`,
		"Authorization", "Bearer "+token, "Anthropic-Version", "2023-06-01", "Anthropic-Beta", "claude-code-20250219, "+oauthBeta)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

// unified is every header of a subscription answer at start: the
// utilizations, resets (in seconds from start) and statuses of 5h and 7d,
// the overall status and the claim that decides it.
func unified(util5h, util7d string, reset5h, reset7d int64, status5h, status7d, overall, claim string) map[string]string {
	at := func(seconds int64) string { return strconv.FormatInt(start.Unix()+seconds, 10) }
	want := map[string]string{
		"Content-Type": "application/json",
		"Date":         "Wed, 18 Nov 2026 11:06:40 GMT",
		"Anthropic-Ratelimit-Unified-5h-Utilization":       util5h,
		"Anthropic-Ratelimit-Unified-5h-Reset":             at(reset5h),
		"Anthropic-Ratelimit-Unified-5h-Status":            status5h,
		"Anthropic-Ratelimit-Unified-7d-Utilization":       util7d,
		"Anthropic-Ratelimit-Unified-7d-Reset":             at(reset7d),
		"Anthropic-Ratelimit-Unified-7d-Status":            status7d,
		"Anthropic-Ratelimit-Unified-Status":               overall,
		"Anthropic-Ratelimit-Unified-Representative-Claim": claim,
		"Anthropic-Ratelimit-Unified-Fallback-Percentage":  "0.5",
		"Anthropic-Ratelimit-Unified-Reset":                map[string]string{"five_hour": at(reset5h), "seven_day": at(reset7d)}[claim],
	}
	if status5h == "allowed_warning" {
		want["Anthropic-Ratelimit-Unified-5h-Surpassed-Threshold"] = "0.9"
	}
	if status7d == "allowed_warning" {
		want["Anthropic-Ratelimit-Unified-7d-Surpassed-Threshold"] = "0.75"
	}
	return want
}

// A key in subscription mode answers as Claude subscription traffic: its
// "unified" buckets, shared by every model, become the used share, reset
// and status of the 5h and 7d windows; a window warns from Claude Code's
// thresholds (0.9 of five hours, 0.75 of the week), and refuses when it
// cannot take the request.
func TestAnthropicSubscription(t *testing.T) {
	const token = "sk-ant-oat01-sim-0123456789abcdef0123456789"
	s := NewDialect(Anthropic, "m", "n")
	s.SetClock(func() time.Time { return start })
	// Each probe takes 10 tokens: 9 of prompt ("Hi"), 1 of answer.
	s.AddKey(token, Limits{"unified": {"5h": 1000, "7d": 10000}})
	s.SetSubscription(token, true)

	check := func(what string, r *http.Request, status int, want map[string]string) {
		t.Helper()
		w := serve(s, r)
		if w.Code != status {
			t.Fatalf("%s: %d %s, want %d", what, w.Code, w.Body, status)
		}
		for _, mismatch := range headerMismatches(w.Header(), want, true) {
			t.Errorf("%s: %s", what, mismatch)
		}
	}
	// 180 s until 10 of 1,000 refill in 5 h; 604.8, rounded up, until 10 of 10,000 in 7 d.
	check("first", subscriptionProbe("m", token), 200,
		unified("0.01", "0", 180, 605, "allowed", "allowed", "allowed", "five_hour"))

	s.Consume(token, "m", 0, 870)
	check("at 0.89 of five hours", subscriptionProbe("m", token), 200,
		unified("0.89", "0.08", 16020, 53828, "allowed", "allowed", "allowed", "five_hour"))
	check("at 0.9 of five hours, from another model", subscriptionProbe("n", token), 200,
		unified("0.9", "0.09", 16200, 54432, "allowed_warning", "allowed", "allowed_warning", "five_hour"))

	s.Consume(token, "n", 0, 95) // 5 tokens left in the five hours: not enough for a probe
	want := unified("0.99", "0.09", 17910, 60178, "rejected", "allowed", "rejected", "five_hour")
	want["Retry-After"] = "90"
	check("five hours spent", subscriptionProbe("m", token), 429, want)
	s.Consume(token, "n", 0, 5)
	want = unified("1", "0.1", 18000, 60480, "rejected", "allowed", "rejected", "five_hour")
	want["Retry-After"] = "180"
	check("five hours empty", subscriptionProbe("m", token), 429, want)
	if e, _ := s.LastExchange(token); errorID(Anthropic, e.ResponseBody) != "error:rate_limit_error" ||
		!strings.Contains(string(e.ResponseBody), "would exceed your account's rate limit") {
		t.Errorf("five hours spent: %s", e.ResponseBody)
	}

	// The week warns before the five hours do; the key's other limits
	// answer as ever.
	const weekly = "sk-ant-oat01-sim-fedcba9876543210fedcba9876"
	s.AddKey(weekly, Limits{"unified": {"5h": 10000, "7d": 1000}, "requests": {"minute": 50}})
	s.SetSubscription(weekly, true)
	s.Consume(weekly, "m", 0, 740)
	want = unified("0.07", "0.75", 1350, 453600, "allowed", "allowed_warning", "allowed_warning", "seven_day")
	want["Anthropic-Ratelimit-Requests-Limit"] = "50"
	want["Anthropic-Ratelimit-Requests-Remaining"] = "49"
	want["Anthropic-Ratelimit-Requests-Reset"] = "2026-11-18T11:06:42Z"
	check("at 0.75 of the week", subscriptionProbe("m", weekly), 200, want)

	// Out of subscription mode, no unified windows, and the key is an API key.
	s.SetSubscription(weekly, false)
	if w := serve(s, dialectProbe(Anthropic, weekly)); w.Header().Get("Anthropic-Ratelimit-Unified-Status") != "" {
		t.Errorf("a key out of subscription mode: %v", w.Header())
	}
}

// A subscription's OAuth token comes as a Bearer token with the oauth beta,
// never as an x-api-key; a Bearer token is nothing else's key.
func TestAnthropicOAuthToken(t *testing.T) {
	const token = "sk-ant-oat01-sim-0123456789abcdef0123456789"
	s := NewDialect(Anthropic, "m")
	s.AddKey(token, Limits{"unified": {"5h": 1000}})
	s.AddKey(simKey, Limits{"requests": {"minute": 50}})
	s.SetSubscription(token, true)
	for _, tc := range []struct {
		name   string
		r      *http.Request
		status int
	}{
		{"token and beta", subscriptionProbe("m", token), 200},
		{"beta among others, in a second value", func() *http.Request {
			r := subscriptionProbe("m", token, "Anthropic-Beta", "claude-code-20250219")
			r.Header.Add("Anthropic-Beta", oauthBeta)
			return r
		}(), 200},
		{"no beta", subscriptionProbe("m", token, "Anthropic-Beta", "claude-code-20250219"), 401},
		{"the token as an x-api-key", dialectProbe(Anthropic, token), 401},
		{"a key not in subscription mode, as a Bearer token", subscriptionProbe("m", simKey), 401},
		{"an unknown token", subscriptionProbe("m", "sk-ant-oat01-sim-wrong"), 401},
	} {
		w := serve(s, tc.r)
		if w.Code != tc.status || tc.status == 401 && errorID(Anthropic, w.Body.Bytes()) != "error:authentication_error" {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.status)
		}
	}
}

// What the simulator sends in subscription mode reads as the real sample
// does: the same windows and figures, and nothing dropped, the words
// (representative-claim, fallback-percentage) left alone.
func TestSubscriptionReadsAsTheSample(t *testing.T) {
	shape := func(h http.Header) []string {
		t.Helper()
		obs, dropped := ratelimit.Parser{}.Parse(h, start)
		if dropped != 0 {
			t.Errorf("%d values dropped from %v", dropped, h)
		}
		var figures []string
		for _, o := range obs {
			figures = append(figures, string(o.Kind)+" "+o.Resource+"/"+o.Window)
		}
		return slices.Compact(figures)
	}
	const token = "sk-ant-oat01-sim-0123456789abcdef0123456789"
	s := NewDialect(Anthropic, "m")
	s.SetClock(func() time.Time { return start })
	s.AddKey(token, Limits{"unified": {"5h": 1000, "7d": 1000}})
	s.SetSubscription(token, true)
	sample, simulated := shape(testkit.Headers(t, "anthropic-unified.headers")), shape(serve(s, subscriptionProbe("m", token)).Header())
	if !slices.Equal(simulated, sample) {
		t.Errorf("the simulator's unified windows read as\n%q\nthe sample's as\n%q", simulated, sample)
	}
}
