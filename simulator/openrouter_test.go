package simulator

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestOpenRouterKey(t *testing.T) {
	const key = "sk-sim-or-v1-0123456789abcdef0123456789abcdef"
	s := NewDialect(OpenRouter)
	now := start
	s.SetClock(func() time.Time { return now })
	s.AddKey(key, Limits{"credits": {"month": 25}, "free_model_requests": {"day": 50}})
	s.Consume(key, "any-model", 3, 7.5) // limits are per key: the model does not matter
	want := `{"data":{"free_model_daily_requests":{"limit":50,"remaining":47,"used":3},"include_byok_in_limit":false,` +
		`"is_free_tier":true,"label":"sk-sim-or-v...def","limit":25,"limit_remaining":17.5,"limit_reset":"monthly","usage":7.5}}` + "\n"
	for i := range 2 { // asking costs nothing
		w := serve(s, dialectProbe(OpenRouter, key))
		if w.Code != 200 || w.Body.String() != want {
			t.Errorf("GET /key #%d: %d %s\nwant %s", i+1, w.Code, w.Body, want)
		}
	}
	now = now.Add(24 * time.Hour) // free requests refill in a day, credits in a month
	if w := serve(s, dialectProbe(OpenRouter, key)); !strings.Contains(w.Body.String(), `"remaining":50,`) ||
		!strings.Contains(w.Body.String(), `"limit_remaining":18.333333333333332,`) {
		t.Errorf("a day later: %s", w.Body)
	}
	if got := s.Requests(); got != 3 {
		t.Errorf("Requests() = %d, want 3", got)
	}
}

func TestOpenRouterLimitResets(t *testing.T) {
	for window, want := range map[string]string{
		"day":   `"limit":10,"limit_remaining":10,"limit_reset":"daily"`,
		"week":  `"limit":10,"limit_remaining":10,"limit_reset":"weekly"`,
		"month": `"limit":10,"limit_remaining":10,"limit_reset":"monthly"`,
		"":      `"limit":null,"limit_remaining":null,"limit_reset":null,"usage":0`,
	} {
		s := NewDialect(OpenRouter)
		limits := Limits{"free_model_requests": {"day": 1000}}
		if window != "" {
			limits["credits"] = map[string]float64{window: 10}
		}
		s.AddKey(simKey, limits)
		w := serve(s, dialectProbe(OpenRouter, simKey))
		if body := w.Body.String(); !strings.Contains(body, want) || !strings.Contains(body, `"is_free_tier":false`) {
			t.Errorf("credits per %q: %s, want %s", window, body, want)
		}
	}
}

// The key never appears in what OpenRouter's dialect answers, whatever the
// answer.
func TestOpenRouterNeverShowsTheKey(t *testing.T) {
	const key = "sk-sim-or-v1-fedcba9876543210fedcba9876543210"
	s := NewDialect(OpenRouter)
	s.AddKey(key, Limits{"credits": {"day": 1}})
	check := func(what string) {
		t.Helper()
		e, ok := s.LastExchange(key)
		if !ok {
			t.Fatalf("%s: no exchange", what)
		}
		if strings.Contains(string(e.ResponseBody), key) || strings.Contains(strings.Join(flatten(e.ResponseHeader), " "), key) {
			t.Errorf("%s: the answer shows the key: %v %s", what, e.ResponseHeader, e.ResponseBody)
		}
	}
	serve(s, dialectProbe(OpenRouter, key))
	check("200")
	for _, f := range []Fault{ServerError, NoHeaders, BadHeaders, QueueExceeded, InsufficientQuota} {
		s.SetFault(key, f)
		serve(s, dialectProbe(OpenRouter, key))
		check("fault")
	}
	serve(s, request(http.MethodPost, "/api/v1/key", "", "Authorization", "Bearer "+key))
	check("405")
	s.RevokeKey(key)
	serve(s, dialectProbe(OpenRouter, key))
	check("401")

	for n := range 80 {
		key := strings.Repeat("k", n)
		masked := maskKey(key)
		if shown := strings.Count(masked, "k"); (n > 0 && strings.Contains(masked, key)) || shown > n/4+3 {
			t.Errorf("maskKey of %d characters shows %d: %q", n, shown, masked)
		}
	}
}

func flatten(h http.Header) []string {
	var all []string
	for name, values := range h {
		all = append(all, name)
		all = append(all, values...)
	}
	return all
}
