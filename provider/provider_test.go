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
	if names := Names(); !slices.IsSorted(names) || len(names) != 14 {
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
		// Where the key gives the base URL (an OpenAI-compatible server, an
		// Azure resource), it gives the models too.
		if p.NeedsModel() != (p.Model != "") && p.BaseURL != "" {
			t.Errorf("%s: a probe that names a model needs a default model", p.Name)
		}
		// Anthropic reads x-api-key, Azure api-key, Gemini x-goog-api-key; the proxy reads where KeyHeader says.
		want := http.Header{"Authorization": {"Bearer k"}}
		switch p.Name {
		case "anthropic":
			want = http.Header{"X-Api-Key": {"k"}}
		case "azure_openai":
			want = http.Header{"Api-Key": {"k"}}
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
		// xAI documents no window for its headers either.
		{"xai", "openai-doc.headers", []ratelimit.Observation{
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

func TestReadDeepSeekBalance(t *testing.T) {
	p := lookup(t, "deepseek")
	allowed, rejected := obs(ratelimit.Status, "balance", "", ratelimit.StatusAllowed), obs(ratelimit.Status, "balance", "", ratelimit.StatusRejected)
	cny := func(v float64) ratelimit.Observation { return obs(ratelimit.Balance, "CNY", "", v) }
	info := func(currency, total string) string {
		return `{"currency":` + currency + `,"total_balance":` + total + `,"granted_balance":"0.00","topped_up_balance":"0.00"}`
	}
	for _, tc := range []struct {
		name    string
		body    string
		want    []ratelimit.Observation
		dropped int
		code    string
	}{
		{"the sample", string(testkit.Fixture(t, "deepseek-balance.json")), []ratelimit.Observation{cny(110), allowed}, 0, ""},
		{"not available", `{"is_available":false,"balance_infos":[` + info(`"CNY"`, `"0.00"`) + `]}`, []ratelimit.Observation{cny(0), rejected}, 0, ""},
		{"two currencies", `{"is_available":true,"balance_infos":[` + info(`"USD"`, `"7.25"`) + `,` + info(`"CNY"`, `"50"`) + `]}`,
			[]ratelimit.Observation{cny(50), obs(ratelimit.Balance, "USD", "", 7.25), allowed}, 0, ""},
		{"overdrawn", `{"balance_infos":[` + info(`"CNY"`, `"-3.50"`) + `]}`, []ratelimit.Observation{cny(-3.5)}, 0, ""},
		{"no currencies", `{"is_available":true,"balance_infos":[]}`, []ratelimit.Observation{allowed}, 0, ""},
		{"nulls say nothing", `{"is_available":null,"balance_infos":null}`, nil, 0, ""},
		// Each field alone: what is not as documented is dropped and counted.
		{"a currency not in upper case", `{"is_available":true,"balance_infos":[` + info(`"cny"`, `"1.00"`) + `,` + info(`"USD"`, `"2.00"`) + `]}`,
			[]ratelimit.Observation{obs(ratelimit.Balance, "USD", "", 2), allowed}, 1, ""},
		{"currencies that are no ISO codes", `{"balance_infos":[` + info(`"CNYX"`, `"1"`) + `,` + info(`""`, `"1"`) + `,` + info(`"C\"Y"`, `"1"`) + `,` + info(`1`, `"1"`) + `,` + info(`null`, `"1"`) + `]}`,
			nil, 5, ""},
		{"amounts are strings", `{"is_available":true,"balance_infos":[` + info(`"CNY"`, `110`) + `]}`, []ratelimit.Observation{allowed}, 1, ""},
		{"amounts that are no decimals", `{"balance_infos":[` + info(`"CNY"`, `"1e3"`) + `,` + info(`"USD"`, `"NaN"`) + `,` + info(`"EUR"`, `"0x10"`) + `,` +
			info(`"GBP"`, `"5."`) + `,` + info(`"JPY"`, `""`) + `,` + info(`"CHF"`, `"+1"`) + `,` + info(`"SEK"`, `null`) + `]}`, nil, 7, ""},
		{"is_available not a boolean", `{"is_available":"true","balance_infos":[` + info(`"CNY"`, `"110.00"`) + `]}`, []ratelimit.Observation{cny(110)}, 1, ""},
		{"balance_infos not a list", `{"is_available":true,"balance_infos":{"currency":"CNY","total_balance":"1"}}`, []ratelimit.Observation{allowed}, 1, ""},
		{"not JSON", `<html>`, nil, 0, ""},
		{"refused", `{"error":{"message":"Authentication Fails, Your api key: ****abcd is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}`,
			nil, 0, "authentication_error"},
	} {
		a := p.Probe.Read([]byte(tc.body))
		slices.SortFunc(a.Observations, ratelimit.Compare)
		if !slices.Equal(a.Observations, tc.want) || a.Tokens != 0 || a.Dropped != tc.dropped || a.ErrorCode != tc.code {
			t.Errorf("%s: got %v, %v tokens, %d dropped, code %q\nwant %v, 0 tokens, %d dropped, code %q",
				tc.name, a.Observations, a.Tokens, a.Dropped, a.ErrorCode, tc.want, tc.dropped, tc.code)
		}
	}
	req := p.Probe.Request(p.BaseURL, "", Options{})
	if req.Method != http.MethodGet || req.URL != "https://api.deepseek.com/user/balance" || req.Body != nil {
		t.Errorf("probe %s %s with body %q", req.Method, req.URL, req.Body)
	}
	if !p.Probe.Free() || p.NeedsModel() {
		t.Error("DeepSeek's balance costs nothing and is one per key")
	}
}

// Tokens billed come from each API's usage; error codes only when they are
// plain identifiers.
func TestReadAnswers(t *testing.T) {
	cerebras, anthropic, openrouter, xai := lookup(t, "cerebras").Probe, lookup(t, "anthropic").Probe, lookup(t, "openrouter").Probe, lookup(t, "xai").Probe
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
		// xAI's code is a sentence, its error one too: neither is a code.
		{"xAI error", xai, `{"code":"Some resource has been exhausted","error":"Your team has either used all available credits or reached its monthly spending limit."}`, 0, ""},
		{"xAI usage", xai, `{"object":"chat.completion","usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`, 10, ""},
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
