package simulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, s *Simulator, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+key)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

const probe = `{"model":"m","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":1}`

func TestBucketsRefillContinuously(t *testing.T) {
	now := time.Unix(1795000000, 0)
	s := New("m")
	s.SetClock(func() time.Time { return now })
	s.AddKey("k", Limits{"requests": {"minute": 6}, "tokens": {"day": 1000}})

	w := post(t, s, "k", probe)
	for header, want := range map[string]string{
		"x-ratelimit-limit-requests-minute":     "6",
		"x-ratelimit-remaining-requests-minute": "5",
		"x-ratelimit-reset-requests-minute":     "10",
		"x-ratelimit-remaining-tokens-day":      "990", // 8 + 1 prompt tokens, 1 completion
		"x-ratelimit-reset-tokens-day":          "864",
	} {
		if got := w.Header().Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	if body := w.Body.String(); !strings.Contains(body, `"total_tokens":10`) {
		t.Errorf("body lacks usage: %s", body)
	}

	s.Exhaust("k", "m")
	if w = post(t, s, "k", probe); w.Code != 429 || !strings.Contains(w.Body.String(), `"code":"request_quota_exceeded"`) ||
		w.Header().Get("x-ratelimit-remaining-requests-minute") != "0" || w.Header().Get("Retry-After") != "10" {
		t.Errorf("exhausted: %d %s %v", w.Code, w.Body, w.Header())
	}
	now = now.Add(10 * time.Second) // one request refills
	if w = post(t, s, "k", probe); w.Code != 200 || w.Header().Get("x-ratelimit-remaining-requests-minute") != "0" {
		t.Errorf("after 10s: %d remaining %q", w.Code, w.Header().Get("x-ratelimit-remaining-requests-minute"))
	}
}

func TestTokenQuotaCountsTheReservation(t *testing.T) {
	s := New("m")
	s.AddKey("k", Limits{"tokens": {"minute": 100}})
	w := post(t, s, "k", `{"model":"m","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":200}`)
	if w.Code != 429 || !strings.Contains(w.Body.String(), `"code":"token_quota_exceeded"`) {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

func TestErrors(t *testing.T) {
	s := New("m")
	s.AddKey("k", FreeTrial())
	if w := post(t, s, "nope", probe); w.Code != 401 || !strings.Contains(w.Body.String(), `"code":"wrong_api_key"`) {
		t.Errorf("unknown key: %d %s", w.Code, w.Body)
	}
	if w := post(t, s, "k", `{"model":"other","messages":[{"role":"user","content":"Hi"}]}`); w.Code != 404 {
		t.Errorf("unknown model: %d", w.Code)
	}
	s.SetFault("k", ServerError)
	if w := post(t, s, "k", probe); w.Code != 503 {
		t.Errorf("server error fault: %d", w.Code)
	}
	if got := s.Requests(); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
}

// RequestsFrom counts a key's requests by User-Agent: an exporter's probes
// apart from the applications' requests.
func TestRequestsFrom(t *testing.T) {
	s := New("m")
	s.AddKey("k", FreeTrial())
	send := func(key, agent string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(probe))
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("User-Agent", agent)
		s.ServeHTTP(httptest.NewRecorder(), r)
	}
	send("k", "ratelimit_exporter/1.0")
	send("k", "app/2")
	send("k", "app/2")
	send("other", "app/2")                                      // unknown key: answered 401, counted all the same
	r := httptest.NewRequest(http.MethodGet, "/v1/models", nil) // not the endpoint
	r.Header.Set("Authorization", "Bearer k")
	r.Header.Set("User-Agent", "app/2")
	s.ServeHTTP(httptest.NewRecorder(), r)
	for _, tc := range []struct {
		key, agent string
		want       int
	}{
		{"k", "ratelimit_exporter/1.0", 1},
		{"k", "app/2", 2},
		{"other", "app/2", 1},
		{"k", "ratelimit_exporter", 0},
	} {
		if got := s.RequestsFrom(tc.key, tc.agent); got != tc.want {
			t.Errorf("RequestsFrom(%q, %q) = %d, want %d", tc.key, tc.agent, got, tc.want)
		}
	}
	if got := s.Requests(); got != 4 {
		t.Errorf("Requests() = %d, want 4", got)
	}
}
