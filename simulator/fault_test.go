package simulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// allLimits has a bucket for every resource any dialect shows.
func allLimits() Limits {
	return Limits{
		"requests": {"minute": 8, "day": 8}, "tokens": {"minute": 640, "month": 1e6},
		"input_tokens": {"minute": 512}, "output_tokens": {"minute": 64},
		"tokens_prompt": {"minute": 640}, "tokens_generated": {"minute": 64},
		"credits": {"month": 25}, "free_model_requests": {"day": 50},
	}
}

// requestsRemaining is the header (OpenRouter: the body field) that shows
// the requests left.
var requestsRemaining = map[Dialect]string{
	Cerebras: "X-Ratelimit-Remaining-Requests-Minute", OpenAI: "X-Ratelimit-Remaining-Requests",
	Groq: "X-Ratelimit-Remaining-Requests", Mistral: "X-Ratelimit-Remaining-Req-Minute",
	Together: "X-Ratelimit-Remaining", Fireworks: "X-Ratelimit-Remaining-Requests",
	SambaNova: "X-Ratelimit-Remaining-Requests-Day", Anthropic: "Anthropic-Ratelimit-Requests-Remaining",
	XAI:         "X-Ratelimit-Remaining-Requests",
	AzureOpenAI: "X-Ratelimit-Remaining-Requests",
}

func TestConsumeInEveryDialect(t *testing.T) {
	for _, d := range Dialects {
		s := NewDialect(d, "m")
		s.SetClock(func() time.Time { return start })
		limits := allLimits()
		if d == Gemini { // the credits would run out first
			limits = Limits{"requests": {"minute": 8, "day": 8}, "input_tokens": {"minute": 512}}
		}
		s.AddKey(simKey, limits)
		s.Consume(simKey, "m", 2, 10)
		w := serve(s, dialectProbe(d, simKey))
		if d == OpenRouter {
			if !strings.Contains(w.Body.String(), `"free_model_daily_requests":{"limit":50,"remaining":48,"used":2}`) ||
				!strings.Contains(w.Body.String(), `"limit_remaining":15,`) {
				t.Errorf("%s: %s", d, w.Body)
			}
			continue
		}
		if d == DeepSeek { // the balance is the account's money, which traffic does not spend here
			if want := `{"balance_infos":[{"currency":"CNY","granted_balance":"0.00","topped_up_balance":"0.00","total_balance":"0.00"}],"is_available":false}` + "\n"; w.Body.String() != want {
				t.Errorf("%s: %s, want %s", d, w.Body, want)
			}
			continue
		}
		if d == Gemini { // nothing shows what is left until a bucket runs out: 8 a day, 2 consumed, 1 probe
			for range 5 {
				serve(s, dialectProbe(d, simKey))
			}
			if w := serve(s, dialectProbe(d, simKey)); w.Code != 429 || !strings.Contains(w.Body.String(), `"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"`) {
				t.Errorf("%s: the 9th request of 8 a day: %d %s", d, w.Code, w.Body)
			}
			continue
		}
		if got := w.Header().Get(requestsRemaining[d]); w.Code != 200 || got != "5" {
			t.Errorf("%s: %d, %s = %q, want 5", d, w.Code, requestsRemaining[d], got)
		}
	}
}

func TestFaultsInEveryDialect(t *testing.T) {
	type want struct {
		status int
		id     string
	}
	openAIShape := map[Fault]want{
		ServerError:       {503, "server_error/service_unavailable"},
		QueueExceeded:     {429, "server_error/queue_exceeded"},
		InsufficientQuota: {429, "insufficient_quota/insufficient_quota"},
	}
	wants := map[Dialect]map[Fault]want{
		Cerebras: {ServerError: {503, "service_unavailable"}, QueueExceeded: {429, "queue_exceeded"}, InsufficientQuota: {429, "insufficient_quota"}},
		Anthropic: {
			ServerError: {503, "error:api_error"}, QueueExceeded: {529, "error:overloaded_error"},
			InsufficientQuota: {400, "error:invalid_request_error"},
		},
		OpenRouter: {ServerError: {503, "503"}, QueueExceeded: {429, "429"}, InsufficientQuota: {402, "402"}},
		XAI: {
			ServerError: {503, grpcDescriptions[503]}, QueueExceeded: {503, grpcDescriptions[503]},
			InsufficientQuota: {429, grpcDescriptions[429]},
		},
		DeepSeek: {
			ServerError: {503, "server_error/invalid_request_error"}, QueueExceeded: {503, "server_error/invalid_request_error"},
			InsufficientQuota: {402, "unknown_error/invalid_request_error"},
		},
		AzureOpenAI: {ServerError: {503, "503"}, QueueExceeded: {429, "429"}, InsufficientQuota: {429, "insufficient_quota"}},
		Gemini: {
			ServerError: {503, "503 UNAVAILABLE"}, QueueExceeded: {503, "503 UNAVAILABLE"},
			InsufficientQuota: {429, "429 RESOURCE_EXHAUSTED"},
		},
	}
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			s := NewDialect(d, "m")
			s.SetClock(func() time.Time { return start })
			s.AddKey(simKey, allLimits())
			byFault := wants[d]
			if byFault == nil {
				byFault = openAIShape
			}
			for f, want := range byFault {
				s.SetFault(simKey, f)
				if w := serve(s, dialectProbe(d, simKey)); w.Code != want.status || errorID(d, w.Body.Bytes()) != want.id {
					t.Errorf("fault %d: %d %s, want %d %s", f, w.Code, w.Body, want.status, want.id)
				}
			}

			s.SetFault(simKey, NoHeaders)
			w := serve(s, dialectProbe(d, simKey))
			if w.Code != 200 || rateLimitInfo(d, w) != "" {
				t.Errorf("NoHeaders: %d %s", w.Code, rateLimitInfo(d, w))
			}
			s.SetFault(simKey, BadHeaders)
			if d == Gemini { // its limits show in a 429's body only
				s.Exhaust(simKey, "m")
			}
			w = serve(s, dialectProbe(d, simKey))
			if info := rateLimitInfo(d, w); (w.Code != 200 && d != Gemini) || !strings.Contains(info, "unknown") || strings.ContainsAny(info, "0123456789") {
				t.Errorf("BadHeaders: %d %s", w.Code, info)
			}
			if d == Gemini {
				s.SetFault(simKey, No429Headers)
				if w = serve(s, dialectProbe(d, simKey)); w.Code != 429 || rateLimitInfo(d, w) != "" || strings.Contains(w.Body.String(), `"details":`) {
					t.Errorf("No429Headers: %d %s", w.Code, w.Body)
				}
			} else if !specs[d].free { // a free endpoint never answers 429 for the key's limits
				s.SetFault(simKey, No429Headers)
				s.Exhaust(simKey, "m")
				w = serve(s, dialectProbe(d, simKey))
				if w.Code != 429 || rateLimitInfo(d, w) != "" || w.Header().Get("Retry-After") == "" {
					t.Errorf("No429Headers: %d %s Retry-After %q", w.Code, rateLimitInfo(d, w), w.Header().Get("Retry-After"))
				}
			}

			s.SetFault(simKey, CloseConn)
			srv := httptest.NewServer(s)
			defer srv.Close()
			r := dialectProbe(d, simKey)
			r.URL.Scheme, r.URL.Host, r.RequestURI = "http", srv.Listener.Addr().String(), ""
			if resp, err := http.DefaultClient.Do(r); err == nil {
				resp.Body.Close()
				t.Errorf("CloseConn: %s", resp.Status)
			}
			if e, ok := s.LastExchange(simKey); !ok || e.Status != 0 {
				t.Errorf("CloseConn: exchange %+v", e)
			}
		})
	}
}

// rateLimitInfo is what an answer says about the key's limits: the
// rate-limit headers, OpenRouter's limit fields, DeepSeek's balance, or
// Gemini's quotaValues.
func rateLimitInfo(d Dialect, w *httptest.ResponseRecorder) string {
	if d == DeepSeek {
		if body := w.Body.String(); strings.Contains(body, `"is_available"`) || strings.Contains(body, `"balance_infos"`) {
			return body
		}
		return ""
	}
	if d == Gemini {
		var values []string
		for _, part := range strings.Split(w.Body.String(), `"quotaValue":`)[1:] {
			values = append(values, part[:strings.IndexAny(part, ",}")])
		}
		return strings.Join(values, " ")
	}
	if d == OpenRouter {
		body := w.Body.String()
		if i := strings.Index(body, `"limit`); i >= 0 {
			info := body[i:]
			return info[:strings.Index(info, `,"usage"`)] + " " + body[strings.Index(body, `"free_model`):strings.Index(body, `,"include`)]
		}
		return ""
	}
	var info []string
	for name, values := range w.Header() {
		if strings.Contains(strings.ToLower(name), "ratelimit") || strings.Contains(strings.ToLower(name), "tokenlimit") {
			info = append(info, name+": "+strings.Join(values, ","))
		}
	}
	return strings.Join(info, "; ")
}
