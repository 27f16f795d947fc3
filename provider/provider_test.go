package provider

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

func obs(kind ratelimit.Kind, resource, window string, v float64) ratelimit.Observation {
	return ratelimit.Observation{Kind: kind, Resource: resource, Window: window, Value: v}
}

func lookup(t *testing.T, name string) Provider {
	t.Helper()
	p, ok := Lookup(name)
	if !ok {
		t.Fatalf("no provider %s", name)
	}
	return p
}

func TestDeclarations(t *testing.T) {
	if names := Names(); !slices.IsSorted(names) || len(names) != 11 {
		t.Errorf("Names() = %v", names)
	}
	if _, ok := Lookup(Default); !ok {
		t.Errorf("the default provider %q is not declared", Default)
	}
	for _, p := range All() {
		if p.BaseURL != "" {
			if u, err := url.Parse(p.BaseURL); err != nil || u.Scheme != "https" || strings.HasSuffix(p.BaseURL, "/") {
				t.Errorf("%s: base_url %q", p.Name, p.BaseURL)
			}
		}
		if p.NeedsModel() != (p.Model != "") && p.Name != "openai_compatible" {
			t.Errorf("%s: a probe that names a model needs a default model", p.Name)
		}
		// Anthropic reads x-api-key, Gemini x-goog-api-key; the proxy reads where KeyHeader says.
		want := http.Header{"Authorization": {"Bearer k"}}
		switch p.Name {
		case "anthropic":
			want = http.Header{"X-Api-Key": {"k"}}
		case "gemini":
			want = http.Header{"X-Goog-Api-Key": {"k"}}
		}
		got := http.Header{}
		p.Probe.Authorize(got, "k")
		if !reflect.DeepEqual(got, want) || got.Get(p.Probe.KeyHeader()) == "" {
			t.Errorf("%s: Authorize sets %v, KeyHeader says %s; want %v", p.Name, got, p.Probe.KeyHeader(), want)
		}
	}
}

// Each provider's windows turn its documented samples into the right series.
func TestSamplesThroughProviders(t *testing.T) {
	for _, tc := range []struct {
		provider, file string
		want           []ratelimit.Observation
	}{
		{"groq", "groq-doc.headers", []ratelimit.Observation{
			obs(ratelimit.Limit, "requests", "day", 14400), obs(ratelimit.Remaining, "requests", "day", 14370), obs(ratelimit.Reset, "requests", "day", 179.56),
			obs(ratelimit.Limit, "tokens", "minute", 18000), obs(ratelimit.Remaining, "tokens", "minute", 17997), obs(ratelimit.Reset, "tokens", "minute", 7.66),
		}},
		// OpenAI documents no window for either pair.
		{"openai", "openai-doc.headers", []ratelimit.Observation{
			obs(ratelimit.Limit, "requests", "", 60), obs(ratelimit.Remaining, "requests", "", 59), obs(ratelimit.Reset, "requests", "", 1),
			obs(ratelimit.Limit, "tokens", "", 150000), obs(ratelimit.Remaining, "tokens", "", 149984), obs(ratelimit.Reset, "tokens", "", 360),
		}},
		{"openai_compatible", "openai-doc.headers", []ratelimit.Observation{
			obs(ratelimit.Limit, "requests", "", 60), obs(ratelimit.Remaining, "requests", "", 59), obs(ratelimit.Reset, "requests", "", 1),
			obs(ratelimit.Limit, "tokens", "", 150000), obs(ratelimit.Remaining, "tokens", "", 149984), obs(ratelimit.Reset, "tokens", "", 360),
		}},
		{"cerebras", "cerebras-doc.headers", []ratelimit.Observation{
			obs(ratelimit.Limit, "requests", "day", 1e9), obs(ratelimit.Remaining, "requests", "day", 999997455), obs(ratelimit.Reset, "requests", "day", 33011.382867097855),
			obs(ratelimit.Limit, "tokens", "minute", 1e9), obs(ratelimit.Remaining, "tokens", "minute", 999998298), obs(ratelimit.Reset, "tokens", "minute", 11.382867097854614),
		}},
	} {
		got, dropped := lookup(t, tc.provider).Parser().Parse(testkit.Headers(t, tc.file), time.Time{})
		if dropped != 0 || !slices.Equal(got, tc.want) {
			t.Errorf("%s on %s:\n got %v (%d dropped)\nwant %v", tc.provider, tc.file, got, dropped, tc.want)
		}
	}
}

func TestReadOpenRouterKey(t *testing.T) {
	sample := testkit.Fixture(t, "openrouter-key.json")
	probe := lookup(t, "openrouter").Probe
	for _, tc := range []struct {
		name    string
		body    string
		want    []ratelimit.Observation
		dropped int
	}{
		{"the sample", string(sample), []ratelimit.Observation{
			obs(ratelimit.Limit, "credits", "month", 25), obs(ratelimit.Remaining, "credits", "month", 17.5),
			obs(ratelimit.Limit, "free_model_requests", "day", 1000), obs(ratelimit.Remaining, "free_model_requests", "day", 988),
		}, 0},
		{"no limit: no credits", `{"data":{"limit":null,"limit_remaining":null,"limit_reset":null,"free_model_daily_requests":{"used":0,"limit":50,"remaining":50}}}`, []ratelimit.Observation{
			obs(ratelimit.Limit, "free_model_requests", "day", 50), obs(ratelimit.Remaining, "free_model_requests", "day", 50),
		}, 0},
		{"no limit, whatever else it says", `{"data":{"limit":null,"limit_remaining":5,"limit_reset":"daily"}}`, nil, 0},
		{"a limit that never resets", `{"data":{"limit":10,"limit_remaining":0,"limit_reset":null}}`, []ratelimit.Observation{
			obs(ratelimit.Limit, "credits", "", 10), obs(ratelimit.Remaining, "credits", "", 0),
		}, 0},
		{"daily and weekly", `{"data":{"limit":1,"limit_remaining":1,"limit_reset":"weekly"}}`, []ratelimit.Observation{
			obs(ratelimit.Limit, "credits", "week", 1), obs(ratelimit.Remaining, "credits", "week", 1),
		}, 0},
		{"negative remaining is dropped", `{"data":{"limit":5,"limit_remaining":-2,"limit_reset":"daily"}}`, []ratelimit.Observation{
			obs(ratelimit.Limit, "credits", "day", 5),
		}, 1},
		{"a string is dropped, the rest kept", `{"data":{"limit":"100","limit_remaining":7,"limit_reset":7,"free_model_daily_requests":{"limit":50,"remaining":49}}}`, []ratelimit.Observation{
			obs(ratelimit.Remaining, "credits", "", 7),
			obs(ratelimit.Limit, "free_model_requests", "day", 50), obs(ratelimit.Remaining, "free_model_requests", "day", 49),
		}, 2},
		{"not JSON", `<html>`, nil, 0},
		{"an error", `{"error":{"code":401,"message":"No auth credentials found"}}`, nil, 0},
	} {
		a := probe.Read([]byte(tc.body))
		slices.SortFunc(a.Observations, ratelimit.Compare)
		if !slices.Equal(a.Observations, tc.want) || a.Tokens != 0 || a.Dropped != tc.dropped {
			t.Errorf("%s: got %v, %v tokens, %d dropped; want %v, 0 tokens, %d dropped", tc.name, a.Observations, a.Tokens, a.Dropped, tc.want, tc.dropped)
		}
	}
	if !probe.Free() {
		t.Error("OpenRouter's key endpoint costs nothing")
	}
}

// Tokens billed come from each API's usage; error codes only when they are
// plain identifiers.
func TestReadAnswers(t *testing.T) {
	cerebras, anthropic, openrouter := lookup(t, "cerebras").Probe, lookup(t, "anthropic").Probe, lookup(t, "openrouter").Probe
	for _, tc := range []struct {
		name   string
		probe  Probe
		body   string
		tokens float64
		code   string
	}{
		{"chat usage", cerebras, `{"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`, 10, ""},
		{"negative usage", cerebras, `{"usage":{"total_tokens":-5}}`, 0, ""},
		{"Cerebras top-level code", cerebras, `{"message":"Tokens per day limit exceeded","type":"too_many_tokens_error","code":"token_quota_exceeded"}`, 0, "token_quota_exceeded"},
		{"OpenAI error.code", cerebras, `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`, 0, "rate_limit_exceeded"},
		{"OpenAI insufficient_quota", cerebras, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`, 0, "insufficient_quota"},
		{"free text is no code", cerebras, `{"error":{"code":"Rate limit for sk-abc exceeded"}}`, 0, ""},
		{"a number is no code", cerebras, `{"error":{"code":429}}`, 0, ""},
		{"upper case is no code", cerebras, `{"code":"RATE_LIMIT"}`, 0, ""},
		{"a hyphen is no code", cerebras, `{"code":"rate-limit"}`, 0, ""},
		{"nor a leading digit", cerebras, `{"code":"429_error"}`, 0, ""},
		{"Anthropic usage", anthropic, `{"type":"message","usage":{"input_tokens":8,"output_tokens":1}}`, 9, ""},
		{"Anthropic error type", anthropic, `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`, 0, "rate_limit_error"},
		{"OpenRouter error", openrouter, `{"error":{"code":429,"message":"Rate limit exceeded"}}`, 0, ""},
	} {
		a := tc.probe.Read([]byte(tc.body))
		if a.Tokens != tc.tokens || a.ErrorCode != tc.code {
			t.Errorf("%s: got %v tokens, code %q; want %v, %q", tc.name, a.Tokens, a.ErrorCode, tc.tokens, tc.code)
		}
	}
	// Every code Cerebras has been seen to send with a 429 is kept.
	var codes []string
	for sc := bufio.NewScanner(bytes.NewReader(testkit.Fixture(t, "cerebras-429.jsonl"))); sc.Scan(); {
		codes = append(codes, cerebras.Read(sc.Bytes()).ErrorCode)
	}
	if want := []string{"request_quota_exceeded", "token_quota_exceeded", "queue_exceeded"}; !slices.Equal(codes, want) {
		t.Errorf("codes from cerebras-429.jsonl: %q, want %q", codes, want)
	}
}
