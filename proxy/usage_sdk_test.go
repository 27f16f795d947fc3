package proxy

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
	"github.com/ratelimit-exporter/ratelimit_exporter/tally"
)

// countingProxy serves a simulator of d behind a proxy whose key of
// provider declares limits, and returns the proxy.
func countingProxy(t *testing.T, d simulator.Dialect, provider, model, key string) *env {
	t.Helper()
	sim := simulator.NewDialect(d, model)
	sim.SetClock(func() time.Time { return start })
	sim.AddKey(key, simulator.Limits{"requests": {"minute": 100}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`keys:
  - name: counted
    provider: %[1]s
    api_key: %[2]s
    models: [%[3]s]
    limits: [{resource: input_tokens, window: minute, limit: 1000}]
proxy:
  listen_address: 127.0.0.1:0
  routes: [{path_prefix: /%[1]s/, upstream: %[4]q, provider: %[1]s}]
`, provider, key, model, srv.URL)), "sdk.yml")
	if err != nil {
		t.Fatal(err)
	}
	return startConfig(t, cfg)
}

// spentBy returns what the proxy counted, and checks that it counted it
// under the key, provider and model.
func spentBy(t *testing.T, e *env, provider, model string) []tally.Spent {
	t.Helper()
	var spent []tally.Spent
	for _, u := range e.rec.usages() {
		if u.Key != "counted" || u.Provider != provider || u.Model != model {
			t.Errorf("counted under %s %s %s", u.Key, u.Provider, u.Model)
		}
		spent = append(spent, u.Spent)
	}
	return spent
}

// What openai-go's chat completions spend, counted through the proxy: the
// request, and the usage of an answer, or of a stream that asked for it.
// A stream that did not ask for it counts its request alone: the proxy
// never asks for it itself.
func TestOpenAISDKUsageCounted(t *testing.T) {
	const model = "gpt-4o-mini"
	params := openai.ChatCompletionNewParams{
		Model:               model,
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		MaxCompletionTokens: openai.Int(3),
	}
	for _, tc := range []struct {
		name   string
		stream bool
		usage  bool
		want   []tally.Spent
	}{
		{"answer", false, false, []tally.Spent{{Requests: 1}, {InputTokens: 9, OutputTokens: 3, Tokens: 12}}},
		{"stream with usage", true, true, []tally.Spent{{Requests: 1}, {InputTokens: 9, OutputTokens: 3, Tokens: 12}}},
		{"stream without usage", true, false, []tally.Spent{{Requests: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := countingProxy(t, simulator.OpenAI, "openai", model, openAIKey)
			client := openai.NewClient(option.WithBaseURL(e.url+"/openai/v1"), option.WithAPIKey(openAIKey), option.WithMaxRetries(0))
			p := params
			var content string
			if !tc.stream {
				completion, err := client.Chat.Completions.New(context.Background(), p)
				if err != nil {
					t.Fatal(err)
				}
				content = completion.Choices[0].Message.Content
			} else {
				if tc.usage {
					p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
				}
				stream := client.Chat.Completions.NewStreaming(context.Background(), p)
				var acc openai.ChatCompletionAccumulator
				for stream.Next() {
					acc.AddChunk(stream.Current())
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				content = acc.Choices[0].Message.Content
				if tc.usage && acc.Usage.TotalTokens != 12 || !tc.usage && acc.Usage.TotalTokens != 0 {
					t.Errorf("the SDK read the usage %+v", acc.Usage)
				}
			}
			if content != "Hello" {
				t.Errorf("the SDK read %q", content)
			}
			if got := spentBy(t, e, "openai", model); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("counted %v, want %v", got, tc.want)
			}
		})
	}
}

// What anthropic-sdk-go's messages spend, counted through the proxy: a
// stream's input tokens from message_start, its output tokens from its
// last message_delta.
func TestAnthropicSDKUsageCounted(t *testing.T) {
	const model = "claude-haiku-4-5"
	params := anthropic.MessageNewParams{
		Model:     model,
		MaxTokens: 5,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hi"))},
	}
	want := []tally.Spent{{Requests: 1}, {InputTokens: 9, OutputTokens: 5, Tokens: 14}}
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "answer", true: "stream"}[stream], func(t *testing.T) {
			e := countingProxy(t, simulator.Anthropic, "anthropic", model, anthropicKey)
			client := anthropic.NewClient(anthropicoption.WithBaseURL(e.url+"/anthropic"), anthropicoption.WithAPIKey(anthropicKey),
				anthropicoption.WithMaxRetries(0))
			var msg anthropic.Message
			if !stream {
				got, err := client.Messages.New(context.Background(), params)
				if err != nil {
					t.Fatal(err)
				}
				msg = *got
			} else {
				s := client.Messages.NewStreaming(context.Background(), params)
				for s.Next() {
					if err := msg.Accumulate(s.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.Err(); err != nil {
					t.Fatal(err)
				}
			}
			if msg.Usage.InputTokens != 9 || msg.Usage.OutputTokens != 5 || len(msg.Content) != 1 || msg.Content[0].Text != "Hi" {
				t.Errorf("the SDK read %+v", msg)
			}
			if got := spentBy(t, e, "anthropic", model); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("counted %v, want %v", got, want)
			}
		})
	}
}
