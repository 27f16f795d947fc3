package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// twins are two simulators in the same state, on the same clock: one the
// application calls directly, one behind the proxy. The same calls get the
// same answers from both.
type twins struct {
	direct, proxied       *simulator.Simulator
	directURL, proxiedURL string
}

func newTwins(t *testing.T, d simulator.Dialect, model, key string, limits simulator.Limits) *twins {
	t.Helper()
	tw := &twins{}
	for _, s := range []**simulator.Simulator{&tw.direct, &tw.proxied} {
		*s = simulator.NewDialect(d, model)
		(*s).SetClock(func() time.Time { return start })
		(*s).AddKey(key, limits)
	}
	direct, proxied := httptest.NewServer(tw.direct), httptest.NewServer(tw.proxied)
	t.Cleanup(direct.Close)
	t.Cleanup(proxied.Close)
	tw.directURL, tw.proxiedURL = direct.URL, proxied.URL
	return tw
}

func (tw *twins) exhaust(key, model string) {
	tw.direct.Exhaust(key, model)
	tw.proxied.Exhaust(key, model)
}

// sameRequests checks that both simulators got the same last request.
func (tw *twins) sameRequests(t *testing.T, key string) {
	t.Helper()
	d, _ := tw.direct.LastExchange(key)
	p, _ := tw.proxied.LastExchange(key)
	if d.Method != p.Method || d.Path != p.Path || !bytes.Equal(d.Body, p.Body) {
		t.Errorf("the simulator got %s %s %s through the proxy, %s %s %s directly", p.Method, p.Path, p.Body, d.Method, d.Path, d.Body)
	}
	for _, name := range sortedUnion(d.Header, p.Header) {
		if !slices.Equal(d.Header[name], p.Header[name]) {
			t.Errorf("the simulator got %s: %q through the proxy, %q directly", name, p.Header[name], d.Header[name])
		}
	}
}

// capture keeps the raw response an SDK gets: the same middleware type
// serves both SDKs.
func capture(dst *reply) func(*http.Request, func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	return func(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
		resp, err := next(req)
		if err != nil {
			return resp, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		*dst = reply{resp.StatusCode, resp.Header.Clone(), body}
		return resp, err
	}
}

// recordedAsSeen checks that the last observation holds what the
// application's response said.
func recordedAsSeen(t *testing.T, rec *recorder, seen reply, prov, key, model string) {
	t.Helper()
	p, _ := provider.Lookup(prov)
	want, wantDropped := p.Parser().Parse(seen.header, time.Time{})
	o := rec.last(t)
	if o.Key != key || o.Provider != prov || o.Model != model || o.StatusCode != seen.status ||
		!slices.Equal(o.Observations, want) || o.Dropped != wantDropped || len(want) == 0 {
		t.Errorf("recorded %+v\nwant %s %s %s %d %v", o, key, prov, model, seen.status, want)
	}
}

// seenAlike checks that the application saw the same through the proxy as
// directly, that both simulators got the same request, and that the
// proxy recorded what the application saw.
func (tw *twins) seenAlike(t *testing.T, rec *recorder, direct, proxied reply, apiKey, prov, name, model string) {
	t.Helper()
	for _, diff := range differences(direct, proxied) {
		t.Error(diff)
	}
	tw.sameRequests(t, apiKey)
	recordedAsSeen(t, rec, proxied, prov, name, model)
}

func hasObservation(obs []ratelimit.Observation, want ratelimit.Observation) bool {
	return slices.Contains(obs, want)
}

func TestOpenAISDK(t *testing.T) {
	const model = "gpt-4o-mini"
	tw := newTwins(t, simulator.OpenAI, model, openAIKey, simulator.Limits{"requests": {"minute": 8}, "tokens": {"minute": 640}})
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: tw.proxiedURL, Provider: "openai"}}})
	send := func(baseURL string, seen *reply) (*openai.ChatCompletion, error) {
		client := openai.NewClient(option.WithBaseURL(baseURL), option.WithAPIKey(openAIKey), option.WithMaxRetries(0),
			option.WithMiddleware(capture(seen)))
		return client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model:               model,
			Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
			MaxCompletionTokens: openai.Int(1),
		})
	}

	var direct, proxied reply
	want, err := send(tw.directURL+"/v1", &direct)
	if err != nil {
		t.Fatal(err)
	}
	got, err := send(e.url+"/openai/v1", &proxied)
	if err != nil {
		t.Fatal(err)
	}
	if got.RawJSON() != want.RawJSON() {
		t.Errorf("the SDK read %s, directly %s", got.RawJSON(), want.RawJSON())
	}
	tw.seenAlike(t, e.rec, direct, proxied, openAIKey, "openai", "team-openai", model)
	if o := e.rec.last(t); !hasObservation(o.Observations, ratelimit.Observation{Kind: ratelimit.Remaining, Resource: "requests", Value: 7}) {
		t.Errorf("recorded %v, want 7 requests remaining", o.Observations)
	}

	tw.exhaust(openAIKey, model)
	_, errDirect := send(tw.directURL+"/v1", &direct)
	_, errProxied := send(e.url+"/openai/v1", &proxied)
	var apiErr *openai.Error
	if !errors.As(errProxied, &apiErr) || apiErr.StatusCode != 429 || errDirect == nil {
		t.Errorf("exhausted: %v through the proxy, %v directly", errProxied, errDirect)
	}
	tw.seenAlike(t, e.rec, direct, proxied, openAIKey, "openai", "team-openai", model)
	if n := len(e.rec.all()); n != 2 {
		t.Errorf("%d observations, want 2", n)
	}
}

func TestAnthropicSDK(t *testing.T) {
	const model = "claude-haiku-4-5"
	tw := newTwins(t, simulator.Anthropic, model, anthropicKey, simulator.Limits{"requests": {"minute": 8}, "tokens": {"minute": 640},
		"input_tokens": {"minute": 512}, "output_tokens": {"minute": 64}})
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/anthropic/", Upstream: tw.proxiedURL, Provider: "anthropic"}}})
	send := func(baseURL string, seen *reply) (*anthropic.Message, error) {
		client := anthropic.NewClient(anthropicoption.WithBaseURL(baseURL), anthropicoption.WithAPIKey(anthropicKey),
			anthropicoption.WithMaxRetries(0), anthropicoption.WithMiddleware(capture(seen)))
		return client.Messages.New(context.Background(), anthropic.MessageNewParams{
			Model:     model,
			MaxTokens: 1,
			Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hi"))},
		})
	}

	var direct, proxied reply
	want, err := send(tw.directURL, &direct)
	if err != nil {
		t.Fatal(err)
	}
	got, err := send(e.url+"/anthropic", &proxied)
	if err != nil {
		t.Fatal(err)
	}
	// The simulator's Date is its clock's: the same both ways.
	if direct.header.Get("Date") == "" || direct.header.Get("Date") != proxied.header.Get("Date") {
		t.Errorf("Date %q, directly %q", proxied.header.Get("Date"), direct.header.Get("Date"))
	}
	if got.RawJSON() != want.RawJSON() {
		t.Errorf("the SDK read %s, directly %s", got.RawJSON(), want.RawJSON())
	}
	tw.seenAlike(t, e.rec, direct, proxied, anthropicKey, "anthropic", "team-anthropic", model)
	if o := e.rec.last(t); !hasObservation(o.Observations, ratelimit.Observation{Kind: ratelimit.Remaining, Resource: "input_tokens", Window: "minute", Value: 503}) {
		t.Errorf("recorded %v, want 503 input tokens remaining", o.Observations)
	}

	tw.exhaust(anthropicKey, model)
	_, errDirect := send(tw.directURL, &direct)
	_, errProxied := send(e.url+"/anthropic", &proxied)
	var apiErr *anthropic.Error
	if !errors.As(errProxied, &apiErr) || apiErr.StatusCode != 429 || errDirect == nil {
		t.Errorf("exhausted: %v through the proxy, %v directly", errProxied, errDirect)
	}
	tw.seenAlike(t, e.rec, direct, proxied, anthropicKey, "anthropic", "team-anthropic", model)
}
