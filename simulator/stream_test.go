package simulator

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// A chat stream, as openai-go reads it: the text and the finish, and the
// usage in a last chunk only when stream_options.include_usage asks for it.
// A stream spends as an answer does.
func TestOpenAISDKStream(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		t.Run(map[bool]string{false: "without usage", true: "with usage"}[includeUsage], func(t *testing.T) {
			s, url := sdkServer(t, OpenAI, "gpt-4o-mini", Limits{"requests": {"minute": 8}, "tokens": {"minute": 640}})
			client := openai.NewClient(option.WithBaseURL(url+"/v1"), option.WithAPIKey(simKey), option.WithMaxRetries(0))
			params := openai.ChatCompletionNewParams{
				Model:               "gpt-4o-mini",
				Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
				MaxCompletionTokens: openai.Int(3),
			}
			if includeUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			var resp *http.Response
			stream := client.Chat.Completions.NewStreaming(context.Background(), params, option.WithResponseInto(&resp))
			var acc openai.ChatCompletionAccumulator
			chunks := 0
			for stream.Next() {
				acc.AddChunk(stream.Current())
				chunks++
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != "Hello" || acc.Choices[0].FinishReason != "length" {
				t.Errorf("accumulated %+v", acc.ChatCompletion)
			}
			want := openai.CompletionUsage{}
			if includeUsage {
				want = openai.CompletionUsage{PromptTokens: 9, CompletionTokens: 3, TotalTokens: 12}
			}
			if got := acc.Usage; got.PromptTokens != want.PromptTokens || got.CompletionTokens != want.CompletionTokens || got.TotalTokens != want.TotalTokens {
				t.Errorf("usage %+v, want %+v", got, want)
			}
			if wantChunks := map[bool]int{false: 3, true: 4}[includeUsage]; chunks != wantChunks {
				t.Errorf("%d chunks, want %d", chunks, wantChunks)
			}
			if resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("x-ratelimit-remaining-requests") != "7" ||
				resp.Header.Get("x-ratelimit-remaining-tokens") != "628" {
				t.Errorf("headers %v", resp.Header)
			}
			if e, _ := s.LastExchange(simKey); !strings.Contains(string(e.Body), `"stream":true`) {
				t.Errorf("the SDK sent %s", e.Body)
			}
		})
	}
}

// An Anthropic stream, as anthropic-sdk-go accumulates it: the input
// tokens from message_start, the output tokens from message_delta.
func TestAnthropicSDKStream(t *testing.T) {
	_, url := sdkServer(t, Anthropic, "claude-haiku-4-5", Limits{"requests": {"minute": 8}, "input_tokens": {"minute": 512}, "output_tokens": {"minute": 64}})
	client := anthropic.NewClient(anthropicoption.WithBaseURL(url), anthropicoption.WithAPIKey(simKey), anthropicoption.WithMaxRetries(0))
	var resp *http.Response
	stream := client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{
		Model:     "claude-haiku-4-5",
		MaxTokens: 5,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hi"))},
	}, anthropicoption.WithResponseInto(&resp))
	var msg anthropic.Message
	for stream.Next() {
		if err := msg.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if msg.Usage.InputTokens != 9 || msg.Usage.OutputTokens != 5 || msg.StopReason != "max_tokens" ||
		len(msg.Content) != 1 || msg.Content[0].Text != "Hi" {
		t.Errorf("message %+v", msg)
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("anthropic-ratelimit-output-tokens-remaining") != "59" {
		t.Errorf("headers %v", resp.Header)
	}
}

// SetStreamPace sends a stream's events one at a time: the client reads
// the first before the last is written, and the whole stream is the one
// written at once.
func TestStreamPace(t *testing.T) {
	s := New("m")
	s.AddKey("k", FreeTrial())
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	stream := func() (first, whole time.Duration, body string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":1}`))
		req.Header.Set("Authorization", "Bearer k")
		begin := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		first = time.Since(begin)
		rest, _ := io.ReadAll(r)
		return first, time.Since(begin), line + string(rest)
	}
	_, _, whole := stream()
	const pace = 100 * time.Millisecond
	s.SetStreamPace(pace)
	first, took, paced := stream()
	if paced != whole {
		t.Errorf("paced stream:\n%s\nwant the one written whole:\n%s", paced, whole)
	}
	// Four events: role, content, finish, [DONE]; three paces.
	if events := strings.Count(paced, "data: "); events != 4 {
		t.Fatalf("%d events, want 4", events)
	}
	if first >= pace || took < 3*pace {
		t.Errorf("first event after %s, whole stream after %s; want the first before %s and the whole after %s", first, took, pace, 3*pace)
	}
}
