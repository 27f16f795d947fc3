package ratelimit

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readHeaders loads a "Name: value" per line fixture copied from shared/testdata.
func readHeaders(t *testing.T, name string) http.Header {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := http.Header{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		name, value, ok := strings.Cut(scanner.Text(), ":")
		if !ok {
			t.Fatalf("%s: malformed line %q", name, scanner.Text())
		}
		h.Add(name, strings.TrimSpace(value))
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return h
}

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
			got, dropped := ParseHeaders(readHeaders(t, tc.file))
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			// Set the map directly: http.Header.Add would canonicalize and
			// the parser must not depend on that.
			h[tc.header] = tc.values
			got, dropped := ParseHeaders(h)
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
	got, dropped := ParseHeaders(h)
	if len(got) != MaxObservations || dropped != 10 {
		t.Errorf("got %d observations, %d dropped; want %d and 10", len(got), dropped, MaxObservations)
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
		got, dropped := ParseHeaders(h)
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
		if got, dropped := ParseHeaders(h); !reflect.DeepEqual(got, want) || dropped != 0 {
			t.Fatalf("parse %d: got %v dropped %d, want %v dropped 0", i, got, dropped, want)
		}
	}
}

func BenchmarkParseHeadersFull(b *testing.B) {
	h := http.Header{}
	f, err := os.ReadFile(filepath.Join("testdata", "cerebras-full.headers"))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(f)), "\n") {
		name, value, _ := strings.Cut(line, ":")
		h.Add(name, strings.TrimSpace(value))
	}
	b.ReportAllocs()
	for b.Loop() {
		ParseHeaders(h)
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
		ParseHeaders(h)
	}
}

// sharedHeaders reads a sample of ../shared/testdata, the project's record
// of real provider headers, which the simulator does not decide.
func sharedHeaders(t *testing.T, name string) http.Header {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "shared", "testdata", name))
	if err != nil {
		t.Fatalf("the shared samples sit beside the repository: %v", err)
	}
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: malformed line %q", name, line)
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h
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
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, dropped := Parse(sharedHeaders(t, tc.file), time.Now())
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
		obs, dropped := Parse(h, tc.now)
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
