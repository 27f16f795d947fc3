package ratelimit

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
		{"hyphenated resource", "x-ratelimit-limit-input-tokens-minute", []string{"9"}, []Observation{{Limit, "input-tokens", "minute", 9}}, 0},
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
		{"kind only", "x-ratelimit-limit", []string{"5"}, nil, 1},
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
