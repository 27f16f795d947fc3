package prober

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-kit/log"
)

// A probe's trace shows the request and the response with every value
// that carries the key hidden: the headers that carry keys, and the key
// wherever an upstream echoes it.
func TestTraceHidesTheKey(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo", "you sent "+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		w.Header().Set("Set-Cookie", "session=abc")
		w.Header()["X-Key-"+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] = []string{"1"} // as sent, not canonical
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	r := New("ratelimit_exporter/1.2.3").Probe(context.Background(), target(srv.URL, canary))
	if r.Outcome != Unauthorized {
		t.Fatalf("outcome %s, want unauthorized", r.Outcome)
	}
	got := traceText(&r)
	for _, want := range []string{
		`msg="Sending request" method=POST url=` + srv.URL + "/v1/chat/completions\n",
		`msg="Request header" name=Authorization value=<redacted>` + "\n",
		`msg="Request header" name=User-Agent value=ratelimit_exporter/1.2.3` + "\n",
		`msg="Request body" body="{\"max_completion_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"model\":\"llama3.1-8b\"}"` + "\n",
		`msg="Received response" status="401 Unauthorized" proto=HTTP/1.1` + "\n",
		`msg="Response header" name=Set-Cookie value=<redacted>` + "\n",
		`msg="Response header" name=X-Echo value="you sent <redacted>"` + "\n",
		`msg="Response header" name=X-Key-<redacted> value=1` + "\n",
		`msg="Probe ended" result=unauthorized`,
		`err="HTTP 401"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the trace lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(strings.ToLower(got), strings.ToLower(canary)) {
		t.Errorf("the trace holds the key:\n%s", got)
	}
}

// A URL in a trace hides the key in any place it may travel: a key or
// api_key parameter, whatever it holds, the key itself escaped in the
// path, and user info.
func TestTraceURL(t *testing.T) {
	rd := redactor{secret: "s3cr/t+key"}
	for _, tc := range []struct{ in, want string }{
		{"https://h/v1beta/models/m:generateContent?key=s3cr%2Ft%2Bkey", "https://h/v1beta/models/m:generateContent?key=<redacted>"},
		{"https://h/v1?KEY=other&alt=sse", "https://h/v1?KEY=<redacted>&alt=sse"},
		{"https://h/v1?api_key=x", "https://h/v1?api_key=<redacted>"},
		{"https://h/keys/s3cr%2Ft+key/limits", "https://h/keys/<redacted>/limits"},
		{"https://h/v1?token=s3cr%2Ft%2Bkey", "https://h/v1?token=<redacted>"},
		{"https://user:pass@h/v1", "https://h/v1"},
		{"https://h/v1/chat/completions", "https://h/v1/chat/completions"},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := rd.url(u); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.in, got, tc.want)
		}
	}
}

// A probe that meets no server ends its trace with the error, which names
// the URL: a key in the URL is hidden there too.
func TestTraceOfNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // its port now refuses connections
	r := New("ratelimit_exporter/1.2.3").Probe(context.Background(), target(srv.URL+"/"+canary, canary))
	if r.Outcome != NetworkError {
		t.Fatalf("outcome %s, want network_error", r.Outcome)
	}
	got := traceText(&r)
	for _, want := range []string{
		`msg="Sending request" method=POST url=` + srv.URL + "/<redacted>/v1/chat/completions\n",
		`msg="Probe ended" result=network_error`,
		`/<redacted>/v1/chat/completions\": dial tcp`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the trace lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, canary) || strings.Contains(got, "Received response") {
		t.Errorf("the trace holds the key or a response:\n%s", got)
	}
}

// A value the parser drops is named in the trace with why, and a name
// that echoes the key with the key hidden.
func TestTraceNamesDroppedValues(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Ratelimit-Limit-Requests-Day", "10")
		w.Header().Set("X-Ratelimit-Remaining-Requests-Day", "-")
		w.Header()["X-Ratelimit-Bogus-"+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] = []string{"1"}
	}))
	defer srv.Close()
	r := New("ratelimit_exporter/1.2.3").Probe(context.Background(), target(srv.URL, canary))
	if r.Outcome != Success || r.Dropped != 2 {
		t.Fatalf("outcome %s, %d dropped; want success, 2", r.Outcome, r.Dropped)
	}
	got := traceText(&r)
	for _, want := range []string{
		`msg="Rate-limit header dropped" name=X-Ratelimit-Remaining-Requests-Day reason="not a valid value, or several values that differ"` + "\n",
		`msg="Observation read" kind=limit resource=requests window=day value=10` + "\n",
		`msg="Rate-limit values dropped" count=2`,
		`msg="Rate-limit header dropped" name=X-Ratelimit-Bogus-<redacted> reason="a rate-limit header name of no known kind, resource and window"` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the trace lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(strings.ToLower(got), strings.ToLower(canary)) {
		t.Errorf("the trace holds the key:\n%s", got)
	}
}

// traceText renders r's trace as the log does.
func traceText(r *Result) string {
	var trace bytes.Buffer
	r.WriteTrace(log.NewLogfmtLogger(&trace))
	return trace.String()
}

// Every header that carries a key for some provider, or a session, is
// hidden in the log whatever it holds, in the request and the response;
// and a Result printed with any verb shows no part of its exchange.
func TestTraceHidesEachKeyHeader(t *testing.T) {
	keyHeaders := []string{"Authorization", "Proxy-Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "Cookie", "Set-Cookie"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, name := range keyHeaders {
			w.Header().Set(name, "plain-"+name)
		}
	}))
	defer srv.Close()
	r := New("ratelimit_exporter/1.2.3").Probe(context.Background(), target(srv.URL, canary))
	for _, name := range keyHeaders {
		r.Exchange.requestHeader.Set(name, "plain-"+name)
	}
	got := traceText(&r)
	for _, name := range keyHeaders {
		for _, msg := range []string{"Request header", "Response header"} {
			if want := `msg="` + msg + `" name=` + name + " value=<redacted>\n"; !strings.Contains(got, want) {
				t.Errorf("the trace lacks %q", want)
			}
		}
		if strings.Contains(got, "plain-"+name) {
			t.Errorf("the trace shows %s:\n%s", name, got)
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if printed := fmt.Sprintf(verb, r); strings.Contains(printed, canary) || strings.Contains(printed, "plain-") {
			t.Errorf("%s of a Result shows its exchange: %s", verb, printed)
		}
	}
}

// An upstream that answers with a megabyte of headers (Go's client takes
// up to 1.1 MB) leaves no more than maxKeptHeaderBytes of them in the
// probe's exchange, which the history keeps per target and per recent
// probe; the log says how many were left out.
func TestExchangeKeepsBoundedHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 1000 {
			w.Header().Set(fmt.Sprintf("X-Filler-%04d", i), strings.Repeat("f", 1000))
		}
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	r := New("ratelimit_exporter/1.2.3").Probe(context.Background(), target(srv.URL, canary))
	if r.Outcome != RateLimited {
		t.Fatalf("outcome %s (%v), want rate_limited", r.Outcome, r.Err)
	}
	kept := 0
	for name, values := range r.Exchange.responseHeader {
		for _, v := range values {
			kept += len(name) + len(v)
		}
	}
	got := traceText(&r)
	if kept > maxKeptHeaderBytes || !strings.Contains(got, `msg="Response headers not kept" count=`) ||
		!strings.Contains(got, `msg="Response header" name=X-Echo value="Bearer <redacted>"`) {
		t.Errorf("%d bytes of headers kept, want at most %d, the log saying what was left out, and X-Echo kept", kept, maxKeptHeaderBytes)
	}
	if strings.Contains(got, canary) {
		t.Error("the trace holds the key")
	}
}

// An upstream's status line and headers reach a probe's log, and so the
// history, within a bound however long the upstream makes them, and the
// log says what it left out.
func TestTraceKeepsBoundedResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		var resp strings.Builder
		resp.WriteString("HTTP/1.1 429 " + strings.Repeat("r", 100<<10) + "\r\n")
		for i := range 500 {
			fmt.Fprintf(&resp, "X-Filler-%03d: %s\r\n", i, strings.Repeat("x", 1000))
		}
		resp.WriteString("Content-Length: 0\r\nConnection: close\r\n\r\n")
		_, _ = io.WriteString(conn, resp.String())
	}()
	r := New("ratelimit_exporter/1.2.3").Probe(context.Background(), target("http://"+ln.Addr().String(), canary))
	if r.Outcome != RateLimited {
		t.Fatalf("outcome %s (%v), want rate_limited", r.Outcome, r.Err)
	}
	got := traceText(&r)
	if len(got) > 32<<10 {
		t.Errorf("the trace is %d bytes, want under 32 KiB", len(got))
	}
	for _, want := range []string{
		`msg="Received response" status="429 rrrr`,
		`msg="Response header" name=X-Filler-000 value=xxxx`,
		`msg="Response headers not kept" count=`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the trace lacks %q:\n%.3000s", want, got)
		}
	}
}

// A key in the base URL's path, which some gateways take, is hidden from
// the probe's error wherever it goes: the exporter's log, /status and
// /api/v1/limits show Failure, not the trace.
func TestErrorHidesTheKey(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // its port now refuses connections
	r := New("ratelimit_exporter/1.2.3").Probe(context.Background(), target(srv.URL+"/"+canary, canary))
	if r.Outcome != NetworkError {
		t.Fatalf("outcome %s, want network_error", r.Outcome)
	}
	for _, got := range []string{r.Failure(), r.Err.Error(), fmt.Sprintf("%+v", r.Err)} {
		if strings.Contains(got, canary) || !strings.Contains(got, "/<redacted>/v1/chat/completions\": dial tcp") {
			t.Errorf("the probe's error shows the key, or not its cause: %s", got)
		}
	}
}
