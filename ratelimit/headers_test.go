package ratelimit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

func TestParseHeadersSamples(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []Observation
	}{
		{
			file: "cerebras-doc.headers",
			want: []Observation{
				{Limit, "requests", "day", 1000000000},
				{Remaining, "requests", "day", 999997455},
				{Reset, "requests", "day", 33011.382867097855},
				{Limit, "tokens", "minute", 1000000000},
				{Remaining, "tokens", "minute", 999998298},
				{Reset, "tokens", "minute", 11.382867097854614},
			},
		},
		{
			file: "cerebras-full.headers",
			want: []Observation{
				{Limit, "requests", "day", 2400},
				{Remaining, "requests", "day", 2273},
				{Reset, "requests", "day", 46841.204916477203},
				{Limit, "requests", "hour", 150},
				{Remaining, "requests", "hour", 141},
				{Reset, "requests", "hour", 2441.2049164772034},
				{Limit, "requests", "minute", 5},
				{Remaining, "requests", "minute", 4},
				{Reset, "requests", "minute", 41.204916477203369},
				{Limit, "tokens", "day", 1000000},
				{Remaining, "tokens", "day", 912345},
				{Reset, "tokens", "day", 46841.204916477203},
				{Limit, "tokens", "hour", 1000000},
				{Remaining, "tokens", "hour", 987654},
				{Reset, "tokens", "hour", 2441.2049164772034},
				{Limit, "tokens", "minute", 30000},
				{Remaining, "tokens", "minute", 29712},
				{Reset, "tokens", "minute", 41.204916477203369},
			},
		},
		{
			file: "openai-style.headers",
			want: []Observation{
				{Limit, "requests", "", 10000},
				{Remaining, "requests", "", 9999},
				{Reset, "requests", "", 0.006},
				{Limit, "tokens", "", 2000000},
				{Remaining, "tokens", "", 1999986},
				{Reset, "tokens", "", 0},
			},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, dropped := Parser{}.Parse(testkit.Headers(t, tc.file), time.Time{})
			if dropped != 0 {
				t.Errorf("dropped = %d, want 0", dropped)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestParseHeadersValues(t *testing.T) {
	for _, tc := range []struct {
		name    string
		header  string
		values  []string
		want    []Observation
		dropped int
	}{
		{"integer", "X-Ratelimit-Limit-Requests-Day", []string{"2400"}, []Observation{{Limit, "requests", "day", 2400}}, 0},
		{"float reset", "x-ratelimit-reset-tokens-minute", []string{"11.382867097854614"}, []Observation{{Reset, "tokens", "minute", 11.382867097854614}}, 0},
		{"exponent", "x-ratelimit-limit-tokens-day", []string{"1e6"}, []Observation{{Limit, "tokens", "day", 1e6}}, 0},
		{"zero", "x-ratelimit-remaining-requests-minute", []string{"0"}, []Observation{{Remaining, "requests", "minute", 0}}, 0},
		{"surrounding space", "x-ratelimit-remaining-requests-minute", []string{"  7 "}, []Observation{{Remaining, "requests", "minute", 7}}, 0},
		{"go duration", "x-ratelimit-reset-requests", []string{"6m0s"}, []Observation{{Reset, "requests", "", 360}}, 0},
		{"go duration fraction", "x-ratelimit-reset-tokens", []string{"59.56s"}, []Observation{{Reset, "tokens", "", 59.56}}, 0},
		{"go duration ms", "x-ratelimit-reset-tokens", []string{"20ms"}, []Observation{{Reset, "tokens", "", 0.02}}, 0},
		{"go duration compound", "x-ratelimit-reset-tokens-day", []string{"1h2m3.5s"}, []Observation{{Reset, "tokens", "day", 3723.5}}, 0},
		{"new window", "x-ratelimit-limit-requests-week", []string{"9"}, []Observation{{Limit, "requests", "week", 9}}, 0},
		{"hyphenated resource", "x-ratelimit-limit-input-tokens-minute", []string{"9"}, []Observation{{Limit, "input_tokens", "minute", 9}}, 0},
		{"hyphenated resource, no window", "x-ratelimit-limit-input-tokens", []string{"9"}, []Observation{{Limit, "input_tokens", "", 9}}, 0},
		{"req is requests (Mistral)", "x-ratelimit-remaining-req-minute", []string{"9"}, []Observation{{Remaining, "requests", "minute", 9}}, 0},
		{"month window (Mistral)", "x-ratelimit-limit-tokens-month", []string{"9"}, []Observation{{Limit, "tokens", "month", 9}}, 0},
		{"second window", "x-ratelimit-limit-requests-second", []string{"9"}, []Observation{{Limit, "requests", "second", 9}}, 0},
		{"unknown last segment is the resource's", "x-ratelimit-limit-requests-fortnight", []string{"9"}, []Observation{{Limit, "requests_fortnight", "", 9}}, 0},
		{"x-tokenlimit", "x-tokenlimit-remaining", []string{"9"}, []Observation{{Remaining, "tokens", "", 9}}, 0},
		{"x-tokenlimit has no reset", "x-tokenlimit-reset", []string{"9"}, nil, 1},
		{"anthropic", "anthropic-ratelimit-output-tokens-limit", []string{"9"}, []Observation{{Limit, "output_tokens", "minute", 9}}, 0},
		{"anthropic priority", "anthropic-priority-input-tokens-remaining", []string{"9"}, []Observation{{Remaining, "priority_input_tokens", "minute", 9}}, 0},
		{"anthropic without kind", "anthropic-ratelimit-tokens", []string{"9"}, nil, 1},
		{"repeated agreeing", "x-ratelimit-limit-requests-day", []string{"5", "5"}, []Observation{{Limit, "requests", "day", 5}}, 0},
		{"comma list agreeing", "x-ratelimit-limit-requests-day", []string{"5, 5"}, []Observation{{Limit, "requests", "day", 5}}, 0},
		{"other header", "x-request-id", []string{"abc"}, nil, 0},
		{"over-limit flag (Fireworks) is not a value", "x-ratelimit-over-limit", []string{"yes"}, nil, 0},
		{"over-limit flag in any case", "X-RateLimit-Over-Limit", []string{"no"}, nil, 0},

		{"empty", "x-ratelimit-limit-requests-day", []string{""}, nil, 1},
		{"blank", "x-ratelimit-limit-requests-day", []string{"   "}, nil, 1},
		{"not a number", "x-ratelimit-limit-requests-day", []string{"lots"}, nil, 1},
		{"NaN", "x-ratelimit-limit-requests-day", []string{"NaN"}, nil, 1},
		{"Inf", "x-ratelimit-limit-requests-day", []string{"Inf"}, nil, 1},
		{"+Inf", "x-ratelimit-limit-requests-day", []string{"+Inf"}, nil, 1},
		{"out of range", "x-ratelimit-limit-requests-day", []string{"1e400"}, nil, 1},
		{"negative", "x-ratelimit-remaining-requests-day", []string{"-1"}, nil, 1},
		{"negative reset", "x-ratelimit-reset-requests-day", []string{"-0.5"}, nil, 1},
		{"negative duration", "x-ratelimit-reset-requests-day", []string{"-5s"}, nil, 1},
		{"duration for a limit", "x-ratelimit-limit-requests-day", []string{"5s"}, nil, 1},
		{"hex", "x-ratelimit-limit-requests-day", []string{"0x10"}, nil, 1},
		{"underscore", "x-ratelimit-limit-requests-day", []string{"1_000"}, nil, 1},
		{"unicode digits", "x-ratelimit-limit-requests-day", []string{"٣"}, nil, 1},
		{"fullwidth digits", "x-ratelimit-limit-requests-day", []string{"１０"}, nil, 1},
		{"trailing junk", "x-ratelimit-limit-requests-day", []string{"10 requests"}, nil, 1},
		{"bare exponent", "x-ratelimit-limit-requests-day", []string{"1e"}, nil, 1},
		{"dot only", "x-ratelimit-limit-requests-day", []string{"."}, nil, 1},
		{"repeated disagreeing", "x-ratelimit-limit-requests-day", []string{"5", "6"}, nil, 1},
		{"comma list disagreeing", "x-ratelimit-limit-requests-day", []string{"5,6"}, nil, 1},
		{"comma list with empty", "x-ratelimit-limit-requests-day", []string{"5,"}, nil, 1},
		{"unknown kind", "x-ratelimit-used-requests-day", []string{"5"}, nil, 1},
		{"no resource", "x-ratelimit-limit-", []string{"5"}, nil, 1},
		{"bare limit is requests", "x-ratelimit-limit", []string{"5"}, []Observation{{Limit, "requests", "", 5}}, 0},
		{"trailing hyphen", "x-ratelimit-limit-requests-", []string{"5"}, nil, 1},
		{"double hyphen", "x-ratelimit-limit-requests--day", []string{"5"}, nil, 1},
		{"odd characters", "x-ratelimit-limit-requests-d.y", []string{"5"}, nil, 1},

		{"OpenAI project tokens", "x-ratelimit-remaining-project-tokens", []string{"9"}, []Observation{{Remaining, "project_tokens", "", 9}}, 0},
		{"anthropic fast", "anthropic-fast-output-tokens-remaining", []string{"9"}, []Observation{{Remaining, "fast_output_tokens", "minute", 9}}, 0},
		{"anthropic fast without kind", "anthropic-fast-output-tokens", []string{"9"}, nil, 1},
		{"-1 (Azure's Responses API) is dropped", "x-ratelimit-remaining-tokens", []string{"-1"}, nil, 1},
		{"-1 limit is dropped", "x-ratelimit-limit-requests", []string{"-1"}, nil, 1},

		{"unified utilization", "anthropic-ratelimit-unified-5h-utilization", []string{"0.42"}, []Observation{{Utilization, "unified", "5h", 0.42}}, 0},
		{"unified utilization past the limit", "anthropic-ratelimit-unified-7d-utilization", []string{"1.02"}, []Observation{{Utilization, "unified", "7d", 1.02}}, 0},
		{"unified utilization in percent is not read", "anthropic-ratelimit-unified-5h-utilization", []string{"42%"}, nil, 1},
		{"unified status", "anthropic-ratelimit-unified-5h-status", []string{"allowed"}, []Observation{{Status, "unified", "5h", StatusAllowed}}, 0},
		{"unified status warning", "anthropic-ratelimit-unified-7d-status", []string{"allowed_warning"}, []Observation{{Status, "unified", "7d", StatusAllowedWarning}}, 0},
		{"unified status rejected", "anthropic-ratelimit-unified-7d-status", []string{"rejected"}, []Observation{{Status, "unified", "7d", StatusRejected}}, 0},
		{"unified status, unknown word", "anthropic-ratelimit-unified-5h-status", []string{"throttled"}, nil, 1},
		{"unified status, word in another case", "anthropic-ratelimit-unified-5h-status", []string{"Rejected"}, nil, 1},
		{"unified status, two words that agree", "anthropic-ratelimit-unified-5h-status", []string{"rejected", "rejected"}, []Observation{{Status, "unified", "5h", StatusRejected}}, 0},
		{"unified status, two words that disagree", "anthropic-ratelimit-unified-5h-status", []string{"allowed", "rejected"}, nil, 1},
		{"unified overall status", "anthropic-ratelimit-unified-status", []string{"rejected"}, []Observation{{Status, "unified", "", StatusRejected}}, 0},
		{"unified model claim", "anthropic-ratelimit-unified-7d_opus-utilization", []string{"0.5"}, []Observation{{Utilization, "unified_opus", "7d", 0.5}}, 0},
		{"unified model claim with a hyphen", "anthropic-ratelimit-unified-7d-sonnet-status", []string{"allowed"}, []Observation{{Status, "unified_sonnet", "7d", StatusAllowed}}, 0},
		{"unified claim that is no window", "anthropic-ratelimit-unified-overage-status", []string{"allowed"}, []Observation{{Status, "unified_overage", "", StatusAllowed}}, 0},
		{"unified claim 0h is no window", "anthropic-ratelimit-unified-0h-status", []string{"allowed"}, []Observation{{Status, "unified_0h", "", StatusAllowed}}, 0},
		{"unified claim 05h is no window", "anthropic-ratelimit-unified-05h-status", []string{"allowed"}, []Observation{{Status, "unified_05h", "", StatusAllowed}}, 0},
		{"unified claim h is no window", "anthropic-ratelimit-unified-h-status", []string{"allowed"}, []Observation{{Status, "unified_h", "", StatusAllowed}}, 0},
		{"unified claim too long for a window", "anthropic-ratelimit-unified-9999999999999999999h-status", []string{"allowed"}, []Observation{{Status, "unified_9999999999999999999h", "", StatusAllowed}}, 0},
		{"unified limit", "anthropic-ratelimit-unified-5h-limit", []string{"100"}, []Observation{{Limit, "unified", "5h", 100}}, 0},
		{"unified claim malformed", "anthropic-ratelimit-unified-5h--status", []string{"allowed"}, nil, 1},
		{"unified representative claim is not a value", "anthropic-ratelimit-unified-representative-claim", []string{"five_hour"}, nil, 0},
		{"unified fallback percentage is not a value", "anthropic-ratelimit-unified-fallback-percentage", []string{"0.5"}, nil, 0},
		{"status is read only in unified names", "anthropic-ratelimit-requests-status", []string{"allowed"}, nil, 1},

		{"Azure PTU utilization", "azure-openai-deployment-utilization", []string{"68.5%"}, []Observation{{Utilization, "deployment", "", 0.685}}, 0},
		{"Azure PTU utilization without its sign", "azure-openai-deployment-utilization", []string{"68.5"}, []Observation{{Utilization, "deployment", "", 0.685}}, 0},
		{"Azure PTU utilization, -1", "azure-openai-deployment-utilization", []string{"-1"}, nil, 1},
		{"Azure PTU utilization, sign alone", "azure-openai-deployment-utilization", []string{"%"}, nil, 1},

		{"LiteLLM forwards the provider's", "llm_provider-x-ratelimit-remaining-requests", []string{"9"}, []Observation{{Remaining, "requests", "", 9}}, 0},
		{"LiteLLM forwards Anthropic's", "llm_provider-anthropic-ratelimit-tokens-remaining", []string{"9"}, []Observation{{Remaining, "tokens", "minute", 9}}, 0},
		{"LiteLLM forwards a flag", "llm_provider-x-ratelimit-over-limit", []string{"yes"}, nil, 0},
		{"LiteLLM forwards an invalid value", "llm_provider-x-ratelimit-remaining-requests", []string{"-1"}, nil, 1},
		{"LiteLLM forwards other headers", "llm_provider-x-request-id", []string{"abc"}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			// Set the map directly: http.Header.Add would canonicalize and
			// the parser must not depend on that.
			h[tc.header] = tc.values
			got, dropped := Parser{}.Parse(h, time.Time{})
			if !reflect.DeepEqual(got, tc.want) || dropped != tc.dropped {
				t.Errorf("got %v dropped %d, want %v dropped %d", got, dropped, tc.want, tc.dropped)
			}
		})
	}
}

func TestParseHeadersCapsObservations(t *testing.T) {
	h := http.Header{}
	for i := 0; i < MaxObservations+10; i++ {
		h.Set("x-ratelimit-limit-r"+strings.Repeat("x", i)+"-day", "1")
	}
	got, dropped := Parser{}.Parse(h, time.Time{})
	if len(got) != MaxObservations || dropped != 10 {
		t.Errorf("got %d observations, %d dropped; want %d and 10", len(got), dropped, MaxObservations)
	}
}

// A hostile upstream's long names are dropped, so that what one response
// leaves in the observations (kept by the collector and, per proxied
// response, by the history) stays small whatever its headers: here 3 MB
// of them, three times what the proxy reads.
func TestParseHeadersBoundsNames(t *testing.T) {
	h := http.Header{}
	long := strings.Repeat("a", 15000)
	for i := range MaxObservations + 3 {
		suffix := fmt.Sprintf("-%02d", i)
		h.Set("X-Ratelimit-Remaining-"+long+suffix, "5")
		h.Set("Anthropic-Ratelimit-"+long+suffix+"-Limit", "5")
		h.Set("Anthropic-Ratelimit-Unified-"+long+suffix+"-Utilization", "0.5")
		h.Set("RateLimit-Policy", `"`+long+`";q=100;w=60`)
	}
	h.Set("X-Ratelimit-Remaining-"+strings.Repeat("a", maxNameBytes-len("-minute"))+"-minute", "7")
	obs, dropped := Parser{}.Parse(h, time.Time{})
	want := []Observation{{Kind: Remaining, Resource: strings.Repeat("a", maxNameBytes-len("-minute")), Window: "minute", Value: 7}}
	if !slices.Equal(obs, want) || dropped != 3*(MaxObservations+3)+1 {
		t.Errorf("got %d observations, %d dropped; want only the one whose name is %d bytes, and %d dropped",
			len(obs), dropped, maxNameBytes, 3*(MaxObservations+3)+1)
	}
}

// TestParseHeadersCapIsDeterministic parses one response with more valid
// headers than MaxObservations many times, each built afresh in a shuffled
// order: the kept observations are always the first in sort order.
func TestParseHeadersCapIsDeterministic(t *testing.T) {
	type header struct{ name, value string }
	var headers []header
	var want []Observation
	// 25 resources x 2 windows x 2 kinds = 100 headers, generated in sort
	// order, so the first MaxObservations are r00..r15.
	for r := 0; r < 25; r++ {
		resource := fmt.Sprintf("r%02d", r)
		for _, window := range []string{"day", "minute"} {
			for _, kind := range []Kind{Limit, Remaining} {
				v := float64(len(headers))
				headers = append(headers, header{fmt.Sprintf("X-Ratelimit-%s-%s-%s", kind, resource, window), fmt.Sprint(v)})
				want = append(want, Observation{kind, resource, window, v})
			}
		}
	}
	want = want[:MaxObservations]
	wantDropped := len(headers) - MaxObservations

	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20; i++ {
		rng.Shuffle(len(headers), func(a, b int) { headers[a], headers[b] = headers[b], headers[a] })
		h := http.Header{}
		for _, hd := range headers {
			h.Add(hd.name, hd.value)
		}
		got, dropped := Parser{}.Parse(h, time.Time{})
		if !reflect.DeepEqual(got, want) || dropped != wantDropped {
			t.Fatalf("parse %d: %d dropped, want %d; %s", i, dropped, wantDropped, diffObservations(got, want))
		}
	}
}

// TestParseHeadersOneNameTwoSpellings covers a map holding one name in two
// spellings, which net/http never builds: both are kept, ordered by value.
func TestParseHeadersOneNameTwoSpellings(t *testing.T) {
	want := []Observation{{Limit, "requests", "day", 1}, {Limit, "requests", "day", 2}}
	for i := 0; i < 20; i++ {
		h := http.Header{"x-ratelimit-limit-requests-day": {"2"}, "X-Ratelimit-Limit-Requests-Day": {"1"}}
		got, dropped := Parser{}.Parse(h, time.Time{})
		if !reflect.DeepEqual(got, want) || dropped != 0 {
			t.Fatalf("parse %d: got %v dropped %d, want %v dropped 0", i, got, dropped, want)
		}
	}
}

func BenchmarkParseHeadersFull(b *testing.B) {
	h := testkit.Headers(b, "cerebras-full.headers")
	b.ReportAllocs()
	for b.Loop() {
		Parser{}.Parse(h, time.Time{})
	}
}

// BenchmarkParseHeadersHostile parses 30,000 valid rate-limit headers, about
// what a 1 MiB response header can hold, all but MaxObservations of them
// dropped by the cap.
func BenchmarkParseHeadersHostile(b *testing.B) {
	h := http.Header{}
	for i := 30000; i > 0; i-- {
		h[fmt.Sprintf("x-ratelimit-limit-r%05d-day", i)] = []string{"1"}
	}
	b.ReportAllocs()
	for b.Loop() {
		Parser{}.Parse(h, time.Time{})
	}
}

func TestParseSharedSamples(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []Observation
	}{
		{"openai-doc.headers", []Observation{
			{Limit, "requests", "", 60}, {Remaining, "requests", "", 59}, {Reset, "requests", "", 1},
			{Limit, "tokens", "", 150000}, {Remaining, "tokens", "", 149984}, {Reset, "tokens", "", 360},
		}},
		{"groq-doc.headers", []Observation{
			{Limit, "requests", "", 14400}, {Remaining, "requests", "", 14370}, {Reset, "requests", "", 179.56},
			{Limit, "tokens", "", 18000}, {Remaining, "tokens", "", 17997}, {Reset, "tokens", "", 7.66},
		}},
		{"anthropic-shape.headers", []Observation{ // resets against the sample's Date, 23:12:00
			{Limit, "input_tokens", "minute", 40000}, {Remaining, "input_tokens", "minute", 40000}, {Reset, "input_tokens", "minute", 0},
			{Limit, "output_tokens", "minute", 8000}, {Remaining, "output_tokens", "minute", 8000}, {Reset, "output_tokens", "minute", 0},
			{Limit, "priority_input_tokens", "minute", 10000}, {Remaining, "priority_input_tokens", "minute", 9618}, {Reset, "priority_input_tokens", "minute", 21},
			{Limit, "requests", "minute", 50}, {Remaining, "requests", "minute", 49}, {Reset, "requests", "minute", 1},
			{Limit, "tokens", "minute", 48000}, {Remaining, "tokens", "minute", 48000}, {Reset, "tokens", "minute", 0},
		}},
		{"cerebras-doc.headers", []Observation{
			{Limit, "requests", "day", 1000000000}, {Remaining, "requests", "day", 999997455}, {Reset, "requests", "day", 33011.382867097855},
			{Limit, "tokens", "minute", 1000000000}, {Remaining, "tokens", "minute", 999998298}, {Reset, "tokens", "minute", 11.382867097854614},
		}},
		{"ietf-draft.headers", []Observation{
			{Limit, "burst", "minute", 100}, {Remaining, "burst", "minute", 50}, {Reset, "burst", "minute", 30},
			{Limit, "daily", "day", 1000}, {Remaining, "daily", "day", 720}, {Reset, "daily", "day", 41000},
		}},
		{"ietf-draft-06.headers", []Observation{
			{Limit, "requests", "", 100}, {Remaining, "requests", "", 50}, {Reset, "requests", "", 50},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, dropped := Parser{}.Parse(testkit.Headers(t, tc.file), time.Now())
			if dropped != 0 || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("dropped %d\ngot  %v\nwant %v", dropped, got, tc.want)
			}
		})
	}
}

// Absolute resets count from the provider's clock (Date) when the response
// has one, else from now; relative ones never move.
func TestResetFormats(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	providerNow := now.Add(-3 * time.Minute) // the provider's clock is 3 minutes behind
	date := providerNow.Format(http.TimeFormat)
	reset := providerNow.Add(30 * time.Second)
	for _, tc := range []struct {
		name, value, date string
		now               time.Time
		want              float64
		ok                bool
	}{
		{"float seconds", "41.5", "", now, 41.5, true},
		{"Go duration", "1m30.5s", "", now, 90.5, true},
		{"RFC 3339 against Date, 3 minutes off our clock", reset.Format(time.RFC3339), date, now, 30, true},
		{"RFC 3339 with a fraction and an offset", reset.In(time.FixedZone("x", 3600)).Format(time.RFC3339Nano), date, now, 30, true},
		{"RFC 3339 without Date: from now", now.Add(45 * time.Second).Format(time.RFC3339), "", now, 45, true},
		{"RFC 3339 without Date or clock: dropped", now.Format(time.RFC3339), "", time.Time{}, 0, false},
		{"RFC 3339 already past: 0", providerNow.Add(-time.Minute).Format(time.RFC3339), date, now, 0, true},
		{"epoch seconds", strconv.FormatInt(reset.Unix(), 10), date, now, 30, true},
		{"epoch seconds with a fraction", strconv.FormatFloat(float64(reset.UnixMilli())/1000+0.25, 'f', 3, 64), date, now, 30.25, true},
		{"epoch milliseconds (OpenRouter)", strconv.FormatInt(reset.UnixMilli()+500, 10), date, now, 30.5, true},
		{"just under epoch seconds: seconds", "999999999", "", now, 999999999, true},
		{"negative", "-1", "", now, 0, false},
		{"HTTP date is not a reset", reset.Format(http.TimeFormat), date, now, 0, false},
	} {
		h := http.Header{"X-Ratelimit-Reset-Requests-Minute": {tc.value}}
		if tc.date != "" {
			h.Set("Date", tc.date)
		}
		obs, dropped := Parser{}.Parse(h, tc.now)
		switch {
		case tc.ok && (len(obs) != 1 || math.Abs(obs[0].Value-tc.want) > 1e-6):
			t.Errorf("%s: %q gave %v (dropped %d), want %g", tc.name, tc.value, obs, dropped, tc.want)
		case !tc.ok && (len(obs) != 0 || dropped != 1):
			t.Errorf("%s: %q gave %v, want it dropped", tc.name, tc.value, obs)
		}
	}
}

// A provider's documented windows fill in names that carry none, and only those.
func TestParserWindows(t *testing.T) {
	h := http.Header{}
	h.Set("x-ratelimit-limit-requests", "14400")
	h.Set("x-ratelimit-limit-tokens", "18000")
	h.Set("x-ratelimit-limit-tokens-hour", "900000")
	h.Set("x-ratelimit-limit-images", "5")
	h.Set("x-tokenlimit-remaining", "17000")
	h.Set("anthropic-ratelimit-requests-limit", "50")
	groq := Parser{Windows: map[string]string{"requests": "day", "tokens": "minute"}}
	got, dropped := groq.Parse(h, time.Time{})
	want := []Observation{
		{Limit, "images", "", 5},
		{Limit, "requests", "day", 14400},
		{Limit, "requests", "minute", 50},
		{Limit, "tokens", "hour", 900000},
		{Limit, "tokens", "minute", 18000},
		{Remaining, "tokens", "minute", 17000},
	}
	if dropped != 0 || !slices.Equal(got, want) {
		t.Errorf("got %v (%d dropped), want %v", got, dropped, want)
	}
}

// The samples of the new dialects, read as the exporter reads them: the
// unified windows of Claude subscription traffic (resets in epoch seconds,
// counted from now, as the sample has no Date), and Azure OpenAI's
// remaining-only windows.
func TestParseNewDialectSamples(t *testing.T) {
	now := time.Unix(1764860400, 0) // five hours before the 5h window resets
	for _, tc := range []struct {
		file string
		want []Observation
	}{
		{"anthropic-unified.headers", []Observation{
			{Reset, "unified", "", 18000}, {Status, "unified", "", StatusAllowed},
			{Reset, "unified", "5h", 18000}, {Status, "unified", "5h", StatusAllowed}, {Utilization, "unified", "5h", 0.42},
			{Reset, "unified", "7d", 320400}, {Status, "unified", "7d", StatusAllowedWarning}, {Utilization, "unified", "7d", 0.81},
		}},
		{"azure-openai.headers", []Observation{
			{Remaining, "requests", "", 249}, {Remaining, "tokens", "", 249980},
		}},
		{"azure-openai-429.headers", []Observation{
			{Remaining, "requests", "", 0}, {Reset, "requests", "", 6},
			{Remaining, "tokens", "", 0}, {Reset, "tokens", "", 6},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, dropped := Parser{}.Parse(testkit.Headers(t, tc.file), now)
			if dropped != 0 || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("dropped %d\ngot  %v\nwant %v", dropped, got, tc.want)
			}
		})
	}
}

// Behind a LiteLLM gateway, the provider's headers it forwards under
// llm_provider- are the provider's, with the windows the provider
// documents; its own x-ratelimit-* are the gateway's, kept apart, in no
// window the provider documents.
func TestParseBehindLiteLLM(t *testing.T) {
	groq := Parser{Windows: map[string]string{"requests": "day", "tokens": "minute"}}
	for _, tc := range []struct {
		name   string
		header http.Header
		want   []Observation
	}{
		{
			name: "the gateway names itself",
			header: http.Header{
				"X-Litellm-Model-Id":                          {"abc"},
				"X-Ratelimit-Limit-Requests":                  {"100"},
				"X-Ratelimit-Remaining-Requests":              {"50"},
				"X-Ratelimit-Remaining-Tokens":                {"7000"},
				"llm_provider-x-ratelimit-limit-requests":     {"14400"},
				"llm_provider-x-ratelimit-remaining-requests": {"14370"},
				"llm_provider-x-ratelimit-remaining-tokens":   {"17997"},
			},
			want: []Observation{
				{Limit, "litellm_requests", "", 100}, {Remaining, "litellm_requests", "", 50},
				{Remaining, "litellm_tokens", "", 7000},
				{Limit, "requests", "day", 14400}, {Remaining, "requests", "day", 14370},
				{Remaining, "tokens", "minute", 17997},
			},
		},
		{
			name: "forwarded headers alone say a gateway answered",
			header: http.Header{
				"X-Ratelimit-Remaining-Requests":              {"50"},
				"Llm_provider-X-Ratelimit-Remaining-Requests": {"14370"},
			},
			want: []Observation{{Remaining, "litellm_requests", "", 50}, {Remaining, "requests", "day", 14370}},
		},
		{
			name:   "without a gateway, x-ratelimit-* are the provider's",
			header: http.Header{"X-Ratelimit-Remaining-Requests": {"50"}, "X-Request-Id": {"abc"}},
			want:   []Observation{{Remaining, "requests", "day", 50}},
		},
		{
			name: "a gateway does not claim other families",
			header: http.Header{
				"X-Litellm-Response-Duration-Ms":   {"12"},
				"Anthropic-Ratelimit-Tokens-Limit": {"48000"},
				"X-Tokenlimit-Remaining":           {"5"},
			},
			want: []Observation{{Limit, "tokens", "minute", 48000}, {Remaining, "tokens", "minute", 5}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dropped := groq.Parse(tc.header, time.Time{})
			if dropped != 0 || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("dropped %d\ngot  %v\nwant %v", dropped, got, tc.want)
			}
		})
	}
}

func TestIsRateLimitHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"RateLimit-Policy", true},
		{"RateLimit", true},
		{"RateLimit-Limit", true},
		{"RateLimit-Remaining", true},
		{"RateLimit-Reset", true},
		{"ratelimit-policy", true},
		{"RATELIMIT", true},
		{"Ratelimit-Reset", true},
		{"x-ratelimit-limit-requests", true},
		{"X-RateLimit-Reset", true},
		{"x-tokenlimit-remaining", true},
		{"anthropic-ratelimit-tokens-limit", true},
		{"anthropic-priority-input-tokens-reset", true},
		{"anthropic-fast-output-tokens-limit", true},
		{"anthropic-ratelimit-unified-5h-utilization", true},
		{"Anthropic-Ratelimit-Unified-Status", true},
		{"anthropic-ratelimit-unified-5h--status", true}, // malformed: read, and dropped
		{"azure-openai-deployment-utilization", true},
		{"llm_provider-x-ratelimit-remaining-requests", true},
		{"LLM_Provider-Anthropic-Ratelimit-Tokens-Limit", true},

		{"anthropic-ratelimit-unified-representative-claim", false},
		{"anthropic-ratelimit-unified-fallback-percentage", false},
		{"anthropic-ratelimit-unified-overage-disabled-reason", false},
		{"llm_provider-x-ratelimit-over-limit", false},
		{"llm_provider-ratelimit-policy", false},
		{"llm_provider-x-request-id", false},
		{"x-litellm-model-id", false},
		{"azure-openai-deployment", false},

		{"RateLimit-Used", false},
		{"RateLimitPolicy", false},
		{"RateLimit-", false},
		{"RateLimit-Policy-Extra", false},
		{"RateLimit-Limit0", false},
		{"X-RateLimit-Over-Limit", false},
		{"x-ratelimit-over-limit", false},
		{"ratelimit ", false},
		{"Retry-After", false},
		{"x-request-id", false},
		{"", false},
	} {
		if got := isRateLimitHeader(tc.name); got != tc.want {
			t.Errorf("isRateLimitHeader(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestParseDraftFields covers the IETF draft's fields: the structured
// RateLimit-Policy and RateLimit of draft-08 onward, and the three plain
// fields before them. Names are set in the map as written, not
// canonicalized, so the parser's own case folding is what is tested.
func TestParseDraftFields(t *testing.T) {
	groq := map[string]string{"requests": "day", "tokens": "minute", "other": "hour"}
	for _, tc := range []struct {
		name    string
		windows map[string]string // the Parser's
		header  http.Header
		want    []Observation
		dropped int
	}{
		{
			name: "token names",
			header: http.Header{
				"Ratelimit-Policy": {"burst;q=100;w=60"},
				"Ratelimit":        {"burst;r=50;t=30"},
			},
			want: []Observation{{Limit, "burst", "minute", 100}, {Remaining, "burst", "minute", 50}, {Reset, "burst", "minute", 30}},
		},
		{
			name: "a string and a token name one policy",
			header: http.Header{
				"Ratelimit-Policy": {`"burst";q=100;w=3600`},
				"Ratelimit":        {"burst;r=50;t=30"},
			},
			want: []Observation{{Limit, "burst", "hour", 100}, {Remaining, "burst", "hour", 50}, {Reset, "burst", "hour", 30}},
		},
		{
			name: "names lower-cased, - as _",
			header: http.Header{
				"Ratelimit-Policy": {`"Burst-Mode";q=5;w=86400`},
				"Ratelimit":        {"BURST-MODE;r=4;t=3"},
			},
			want: []Observation{{Limit, "burst_mode", "day", 5}, {Remaining, "burst_mode", "day", 4}, {Reset, "burst_mode", "day", 3}},
		},
		{
			name:   "a policy name is not an abbreviation",
			header: http.Header{"Ratelimit-Policy": {"req;q=5;w=60"}},
			want:   []Observation{{Limit, "req", "minute", 5}},
		},
		{
			name: "unnamed window w in seconds",
			header: http.Header{
				"Ratelimit-Policy": {`"short";q=5;w=10, "one";q=1;w=1, "week";q=9;w=604800`},
				"Ratelimit":        {`"short";r=4;t=7`},
			},
			want: []Observation{
				{Limit, "one", "1s", 1},
				{Limit, "short", "10s", 5}, {Remaining, "short", "10s", 4}, {Reset, "short", "10s", 7},
				{Limit, "week", "604800s", 9},
			},
		},
		{
			name: "a RateLimit member without a policy",
			header: http.Header{
				"Ratelimit-Policy": {`"burst";q=100;w=60`},
				"Ratelimit":        {`"burst";r=50;t=30, "other";r=3;t=4`},
			},
			want: []Observation{
				{Limit, "burst", "minute", 100}, {Remaining, "burst", "minute", 50}, {Reset, "burst", "minute", 30},
				{Remaining, "other", "", 3}, {Reset, "other", "", 4},
			},
		},
		{
			name:    "without a policy or w: the Parser's window",
			windows: groq,
			header: http.Header{
				"Ratelimit-Policy": {`"tokens";q=9, "burst";q=100;w=60`},
				"Ratelimit":        {`"tokens";r=8;t=1, "other";r=3;t=4, "burst";r=50;t=30`},
			},
			want: []Observation{
				{Limit, "burst", "minute", 100}, {Remaining, "burst", "minute", 50}, {Reset, "burst", "minute", 30},
				{Remaining, "other", "hour", 3}, {Reset, "other", "hour", 4},
				{Limit, "tokens", "minute", 9}, {Remaining, "tokens", "minute", 8}, {Reset, "tokens", "minute", 1},
			},
		},
		{
			name:    "w wins over the Parser's window",
			windows: groq,
			header:  http.Header{"Ratelimit-Policy": {`"tokens";q=9;w=3600`}},
			want:    []Observation{{Limit, "tokens", "hour", 9}},
		},
		{
			name: "a w that is not a positive Integer drops the policy",
			header: http.Header{
				"Ratelimit-Policy": {`"a";q=5;w=0, "b";q=6;w=1.5, "c";q=7;w="60", "d";q=8;w=-60, "e";q=9;w`},
				"Ratelimit":        {`"a";r=1;t=2`},
			},
			want:    []Observation{{Remaining, "a", "", 1}, {Reset, "a", "", 2}},
			dropped: 5,
		},
		{
			name: "the first policy of a name gives its window",
			header: http.Header{
				"Ratelimit-Policy": {`"a";q=1;w=60, "a";q=2;w=3600`},
				"Ratelimit":        {`"a";r=1;t=2`},
			},
			want: []Observation{{Limit, "a", "hour", 2}, {Limit, "a", "minute", 1}, {Remaining, "a", "minute", 1}, {Reset, "a", "minute", 2}},
		},
		{
			name: "repeated fields are one List",
			header: http.Header{
				"Ratelimit-Policy": {`"a";q=1;w=60`, `"b";q=2;w=3600`},
				"Ratelimit":        {`"b";r=1;t=2`, `"a";r=0;t=5`},
			},
			want: []Observation{
				{Limit, "a", "minute", 1}, {Remaining, "a", "minute", 0}, {Reset, "a", "minute", 5},
				{Limit, "b", "hour", 2}, {Remaining, "b", "hour", 1}, {Reset, "b", "hour", 2},
			},
		},
		{
			name: "decimals, and other parameters ignored",
			header: http.Header{
				"Ratelimit-Policy": {`"a";q=10.5;w=60;pk=:YWJj:;qu="requests"`},
				"Ratelimit":        {`"a";r=1.25;t=0.5;pk=:YWJj:`},
			},
			want: []Observation{{Limit, "a", "minute", 10.5}, {Remaining, "a", "minute", 1.25}, {Reset, "a", "minute", 0.5}},
		},
		{
			name: "negative values dropped, the others kept",
			header: http.Header{
				"Ratelimit-Policy": {`"a";q=-1;w=60, "b";q=-0.5`},
				"Ratelimit":        {`"a";r=-5;t=10, "b";r=2;t=-1`},
			},
			want:    []Observation{{Reset, "a", "minute", 10}, {Remaining, "b", "", 2}},
			dropped: 4,
		},
		{
			name:   "negative zero is zero",
			header: http.Header{"Ratelimit": {`"a";r=-0.0;t=-0`}},
			want:   []Observation{{Remaining, "a", "", 0}, {Reset, "a", "", 0}},
		},
		{
			name: "missing and wrong-typed values dropped",
			header: http.Header{
				"Ratelimit-Policy": {`"a";w=60, "b";q="5", "c";q, "d";q=?1`},
				"Ratelimit":        {`"a";t=10, "b";r=tok;t=:AA==:, "c"`},
			},
			want:    []Observation{{Reset, "a", "minute", 10}},
			dropped: 4 + 5,
		},
		{
			name: "names with odd characters drop the member",
			header: http.Header{
				"Ratelimit-Policy": {`"a b";q=1, "a.b";q=1, a/b;q=1, a:b;q=1, *a;q=1, "a--b";q=1, "-a";q=1, "a-";q=1, "";q=1, "a_b-c";q=2`},
				"Ratelimit":        {`"a b";r=1;t=1, "a\"b";r=1;t=1, "a_b-c";r=1;t=1`},
			},
			want:    []Observation{{Limit, "a_b_c", "", 2}, {Remaining, "a_b_c", "", 1}, {Reset, "a_b_c", "", 1}},
			dropped: 9 + 2*2,
		},
		{
			name: "members that are not named Items",
			header: http.Header{
				"Ratelimit-Policy": {`5;q=1, 1.5;q=1, ?1;q=1, :AA==:;q=1, (a b);q=1, @1700000000;q=1, %"x";q=1`},
				"Ratelimit":        {`5;r=1;t=1, (a b);r=1;t=1`},
			},
			dropped: 7 + 2*2,
		},
		{
			name: "fields that are not Lists: one drop each",
			header: http.Header{
				"Ratelimit-Policy": {`"burst";q=100;w=60,`},
				"Ratelimit":        {`"burst";r=50;t=30 x`},
			},
			dropped: 2,
		},
		{
			name: "an unterminated string, a bad parameter, non-ASCII",
			header: http.Header{
				"Ratelimit-Policy": {`"burst;q=100`},
				"Ratelimit":        {`burst;R=1`},
				"ratelimit":        {`"é";r=1;t=1`},
			},
			dropped: 3,
		},
		{
			name: "an empty field: one drop",
			header: http.Header{
				"Ratelimit-Policy": {""},
				"Ratelimit":        {"  "},
			},
			dropped: 2,
		},
		{
			name:    "a malformed policy field leaves RateLimit in the Parser's window",
			windows: groq,
			header: http.Header{
				"Ratelimit-Policy": {`"tokens";q=100;w=60;`},
				"Ratelimit":        {`"tokens";r=50;t=30`},
			},
			want:    []Observation{{Remaining, "tokens", "minute", 50}, {Reset, "tokens", "minute", 30}},
			dropped: 1,
		},
		{
			name: "field names in any case",
			header: http.Header{
				"RATELIMIT-POLICY": {`"a";q=1;w=60`},
				"ratelimit":        {`"a";r=1;t=2`},
				"rAtElImIt-lImIt":  {"7"},
			},
			want: []Observation{
				{Limit, "a", "minute", 1}, {Remaining, "a", "minute", 1}, {Reset, "a", "minute", 2},
				{Limit, "requests", "", 7},
			},
		},
		{
			name: "other names starting with ratelimit are not read",
			header: http.Header{
				"Ratelimit-Used":         {"5"},
				"Ratelimit-Policy-Extra": {`"a";q=1`},
				"Ratelimits":             {"x"},
			},
		},

		{
			name: "older fields",
			header: http.Header{
				"Ratelimit-Limit":     {"100"},
				"Ratelimit-Remaining": {"50"},
				"Ratelimit-Reset":     {"50"},
			},
			want: []Observation{{Limit, "requests", "", 100}, {Remaining, "requests", "", 50}, {Reset, "requests", "", 50}},
		},
		{
			name:    "older fields take the Parser's requests window",
			windows: groq,
			header: http.Header{
				"ratelimit-limit":     {"100"},
				"RateLimit-Remaining": {"50"},
				"RATELIMIT-RESET":     {"50"},
			},
			want: []Observation{{Limit, "requests", "day", 100}, {Remaining, "requests", "day", 50}, {Reset, "requests", "day", 50}},
		},
		{
			name:    "a limit's policy gives all three fields' window",
			windows: groq,
			header: http.Header{
				"Ratelimit-Limit":     {"100, 100;w=60"},
				"Ratelimit-Remaining": {"50"},
				"Ratelimit-Reset":     {"50"},
			},
			want: []Observation{{Limit, "requests", "minute", 100}, {Remaining, "requests", "minute", 50}, {Reset, "requests", "minute", 50}},
		},
		{
			name: "draft-06: the policy whose quota is the limit",
			header: http.Header{
				"Ratelimit-Limit":     {`10, 50;w=60, 10;w=1;comment="fixed window", 1000;w=3600`},
				"Ratelimit-Remaining": {"9"},
			},
			want: []Observation{{Limit, "requests", "1s", 10}, {Remaining, "requests", "1s", 9}},
		},
		{
			name:   "a limit carrying its own w",
			header: http.Header{"Ratelimit-Limit": {"100;w=3600"}},
			want:   []Observation{{Limit, "requests", "hour", 100}},
		},
		{
			name:    "no policy of the limit's quota: the Parser's window",
			windows: groq,
			header:  http.Header{"Ratelimit-Limit": {"100, 50;w=60, 100;w=0"}},
			want:    []Observation{{Limit, "requests", "day", 100}},
		},
		{
			name: "older reset formats, as x-ratelimit's",
			header: http.Header{
				"Date":            {"Mon, 12 Jan 2026 23:12:00 GMT"},
				"Ratelimit-Reset": {"2026-01-12T23:12:30Z"},
			},
			want: []Observation{{Reset, "requests", "", 30}},
		},
		{
			name:   "older reset as a Go duration",
			header: http.Header{"Ratelimit-Reset": {"6m0s"}},
			want:   []Observation{{Reset, "requests", "", 360}},
		},
		{
			name: "invalid older values",
			header: http.Header{
				"Ratelimit-Limit":     {"-5, 5;w=60"},
				"Ratelimit-Remaining": {"-1"},
				"Ratelimit-Reset":     {"soon"},
			},
			dropped: 3,
		},
		{
			name:    "a dropped limit leaves the others the Parser's window",
			windows: groq,
			header: http.Header{
				"Ratelimit-Limit":     {"lots;w=60"},
				"Ratelimit-Remaining": {"1"},
			},
			want:    []Observation{{Remaining, "requests", "day", 1}},
			dropped: 1,
		},
		{
			name: "both forms and another family together",
			header: http.Header{
				"Ratelimit-Policy":       {`"tokens";q=1000;w=60`},
				"Ratelimit":              {`"tokens";r=900;t=20`},
				"Ratelimit-Limit":        {"100"},
				"X-Ratelimit-Over-Limit": {"yes"},
				"X-Ratelimit-Limit":      {"100"},
			},
			want: []Observation{
				{Limit, "requests", "", 100}, {Limit, "requests", "", 100},
				{Limit, "tokens", "minute", 1000}, {Remaining, "tokens", "minute", 900}, {Reset, "tokens", "minute", 20},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dropped := Parser{Windows: tc.windows}.Parse(tc.header, time.Time{})
			if !reflect.DeepEqual(got, tc.want) || dropped != tc.dropped {
				t.Errorf("got %v dropped %d\nwant %v dropped %d", got, dropped, tc.want, tc.dropped)
			}
			for _, o := range got {
				if math.Signbit(o.Value) { // DeepEqual takes -0 for 0; exposition would not
					t.Errorf("negative zero kept: %+v", o)
				}
			}
		})
	}
}

// TestParseDraftCapIsDeterministic gives the structured fields more values
// than MaxObservations, their members and the fields' spellings in shuffled
// order: the first MaxObservations in sort order are kept, whatever the
// order, and every other value is counted as dropped.
func TestParseDraftCapIsDeterministic(t *testing.T) {
	const policies = 30 // 30 limits, 30 remainings, 30 resets
	var policy, state []string
	var want []Observation
	for i := range policies {
		name := fmt.Sprintf("p%02d", i)
		policy = append(policy, fmt.Sprintf("%s;q=%d;w=60", name, 100+i))
		state = append(state, fmt.Sprintf("%q;r=%d;t=%d", name, i, 2*i))
		want = append(want, Observation{Limit, name, "minute", float64(100 + i)},
			Observation{Remaining, name, "minute", float64(i)}, Observation{Reset, name, "minute", float64(2 * i)})
	}
	want = want[:MaxObservations]
	wantDropped := 3*policies - MaxObservations

	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20 {
		rng.Shuffle(len(policy), func(a, b int) { policy[a], policy[b] = policy[b], policy[a] })
		rng.Shuffle(len(state), func(a, b int) { state[a], state[b] = state[b], state[a] })
		// Half the policies in each of two spellings of the field, the
		// RateLimit members as two repeated values.
		h := http.Header{
			"Ratelimit-Policy": {strings.Join(policy[:policies/2], ", ")},
			"ratelimit-policy": {strings.Join(policy[policies/2:], ", ")},
			"Ratelimit":        {strings.Join(state[:policies/3], ", "), strings.Join(state[policies/3:], ",")},
		}
		got, dropped := Parser{}.Parse(h, time.Time{})
		if !reflect.DeepEqual(got, want) || dropped != wantDropped {
			t.Fatalf("parse %d: %d dropped, want %d; %s", i, dropped, wantDropped, diffObservations(got, want))
		}
	}
}

// TestParseDraftSpellingsAreDeterministic covers a map holding a draft
// field in two spellings, which net/http never builds: the first policy of
// a name, and the older fields' window, come from the spellings in name
// order (upper case first), not from the map's order.
func TestParseDraftSpellingsAreDeterministic(t *testing.T) {
	want := []Observation{
		{Limit, "a", "hour", 1}, {Remaining, "a", "hour", 3}, {Reset, "a", "hour", 4}, {Limit, "a", "minute", 2},
		{Limit, "requests", "day", 5}, {Limit, "requests", "day", 6}, {Remaining, "requests", "day", 7},
	}
	for i := range 20 {
		h := http.Header{
			"ratelimit-policy":    {`"a";q=2;w=60`},
			"RateLimit-Policy":    {`"a";q=1;w=3600`},
			"RateLimit":           {`"a";r=3;t=4`},
			"ratelimit-limit":     {"6, 6;w=60"},
			"RateLimit-Limit":     {"5;w=86400"},
			"RateLimit-Remaining": {"7"},
		}
		got, dropped := Parser{}.Parse(h, time.Time{})
		if !reflect.DeepEqual(got, want) || dropped != 0 {
			t.Fatalf("parse %d: got %v dropped %d, want %v dropped 0", i, got, dropped, want)
		}
	}
}
