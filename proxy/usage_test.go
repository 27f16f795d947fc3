package proxy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ratelimit-exporter/ratelimit_exporter/tally"
)

// Bodies in the providers' shapes, usage and all.
const (
	// OpenAI answers pretty-printed.
	openAIChatBody = `{
  "id": "chatcmpl-1",
  "object": "chat.completion",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "say \"usage\": {\"prompt_tokens\": 999}"}, "finish_reason": "stop"}],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": null
}
`
	responsesBody = `{"id":"resp_1","object":"response","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}],` +
		`"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123},` +
		`"user":null,"metadata":{"usage":"not this one"}}`
	anthropicBody = `{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],"model":"claude-haiku-4-5","stop_reason":"end_turn",` +
		`"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"cache_creation":{"ephemeral_5m_input_tokens":100},"output_tokens":6,"server_tool_use":{"web_search_requests":0}}}`
	geminiBody = `{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP"}],` +
		`"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":3,"thoughtsTokenCount":20,"totalTokenCount":31,"promptTokensDetails":[{"modality":"TEXT","tokenCount":8}]},` +
		`"modelVersion":"gemini-2.5-flash","responseId":"abc"}`
	// Gemini's streamGenerateContent without alt=sse: one JSON array.
	geminiArrayBody = "[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"H\"}]}}],\"usageMetadata\":{\"promptTokenCount\":8,\"totalTokenCount\":8}}\n,\r\n" +
		"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"i\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":2,\"totalTokenCount\":10}}\n]"

	// OpenAI's chat stream with stream_options.include_usage: every chunk
	// has "usage": null but the last, whose choices are empty.
	openAIStreamWithUsage = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n" +
		"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n" +
		"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n" +
		"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n" +
		"data: [DONE]\n\n"
	openAIStreamWithoutUsage = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n" +
		"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: [DONE]\n\n"
	// Anthropic's stream: input tokens in message_start, the output's
	// running total in message_delta.
	anthropicStream = "event: message_start\r\n" +
		"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-haiku-4-5\"," +
		"\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":5,\"cache_read_input_tokens\":1000,\"output_tokens\":1}}}\r\n\r\n" +
		"event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n" +
		"event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n" +
		"event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\\"usage\\\":{\\\"output_tokens\\\":500}\"}}\r\n\r\n" +
		"event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\r\n\r\n" +
		"event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n"
	geminiStream = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"H\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":8,\"totalTokenCount\":8}}\r\n\r\n" +
		"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"i\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":2,\"totalTokenCount\":10}}\r\n\r\n"
	responsesStream = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\"," +
		"\"usage\":{\"input_tokens\":36,\"output_tokens\":87,\"total_tokens\":123},\"user\":null,\"metadata\":{}}}\n\n"
)

// The usage found in each provider's shape, and none where a body has no
// usage of its own at the top level.
func TestLastUsage(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string // the object found; "" none
	}{
		{"openai chat", openAIChatBody, `"prompt_tokens": 19`},
		{"responses", responsesBody, `{"input_tokens":36,`},
		{"anthropic", anthropicBody, `{"input_tokens":12,`},
		{"gemini", geminiBody, `{"promptTokenCount":8,"candidatesTokenCount":3`},
		{"gemini array", geminiArrayBody, `"candidatesTokenCount":2`},
		{"nested only", `{"data":{"usage":{"total_tokens":5}}}`, ""},
		{"in an array's element but not its last", `[{"usage":{"total_tokens":5}},{"x":1}]`, ""},
		{"in a string", `{"text":"\"usage\":{\"total_tokens\":5}"}`, ""},
		{"a name ending in an escaped quote", `{"my\"usage":{"total_tokens":5}}`, ""},
		{"null", `{"usage":null}`, ""},
		{"cut short", `{"usage":{"total_tokens":5`, ""},
		{"not closed", `{"usage":{"total_tokens":5},"x":1`, ""},
		{"something after", `{"usage":{"total_tokens":5}}{"x":1}`, ""},
		{"a sibling cut short", `{"usage":{"total_tokens":5},"x":"ab}`, ""},
		{"the tail of a body", `ntent":"Hi"}}],"usage":{"total_tokens":5}}`, `{"total_tokens":5}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(lastUsage([]byte(tc.body), true))
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("found %q, want %q", got, tc.want)
			}
		})
	}
}

// What each shape counts: input and output tokens as the provider's rate
// limits count them, and the total it gives, else their sum.
func TestUsageSpent(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       tally.Spent
	}{
		{"openai chat", openAIChatBody, tally.Spent{InputTokens: 19, OutputTokens: 10, Tokens: 29}},
		{"responses", responsesBody, tally.Spent{InputTokens: 36, OutputTokens: 87, Tokens: 123}},
		// Cache reads do not count toward Anthropic's input tokens per minute.
		{"anthropic", anthropicBody, tally.Spent{InputTokens: 112, OutputTokens: 6, Tokens: 118}},
		// Thinking is output.
		{"gemini", geminiBody, tally.Spent{InputTokens: 8, OutputTokens: 23, Tokens: 31}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := readUsage(lastUsage([]byte(tc.body), true))
			if !ok {
				t.Fatal("no usage")
			}
			if got, ok := u.spent(); !ok || got != tc.want {
				t.Errorf("spent %+v, %v; want %+v", got, ok, tc.want)
			}
		})
	}
	var empty usageFields
	if _, ok := empty.spent(); ok {
		t.Error("a usage without counts counted")
	}
	negative := -5.0
	var u usageFields
	u.merge(&usageFields{TotalTokens: &negative})
	if u.TotalTokens != nil {
		t.Error("a negative count was taken")
	}
}

// readThrough reads body through a usageBody, in reads that split it as
// split does, and returns what the reader got and what done was given.
func readThrough(t *testing.T, body []byte, kind usageKind, coding contentCoding, split func(io.Reader) io.Reader, budget *bodyBudget) (got []byte, spent []tally.Spent) {
	t.Helper()
	ub := newUsageBody(io.NopCloser(split(bytes.NewReader(body))), -1, kind, coding, budget, 1<<30, func(s tally.Spent) { spent = append(spent, s) })
	got, err := io.ReadAll(ub)
	if err != nil {
		t.Fatal(err)
	}
	if err := ub.Close(); err != nil {
		t.Fatal(err)
	}
	return got, spent
}

var splits = map[string]func(io.Reader) io.Reader{
	"whole":       func(r io.Reader) io.Reader { return r },
	"byte a time": iotest.OneByteReader,
	"half":        iotest.HalfReader,
}

// A served body is passed on unchanged, and its usage counted once when it
// ends, however its reads split it, gzipped or not; an event stream's
// fields each take their last value.
func TestUsageBody(t *testing.T) {
	long := strings.Repeat("x", 3*usageTail)
	for _, tc := range []struct {
		name string
		body string
		kind usageKind
		want []tally.Spent
	}{
		{"openai chat", openAIChatBody, jsonUsage, []tally.Spent{{InputTokens: 19, OutputTokens: 10, Tokens: 29}}},
		{"gemini array", geminiArrayBody, jsonUsage, []tally.Spent{{InputTokens: 8, OutputTokens: 2, Tokens: 10}}},
		{"a long body", `{"text":"` + long + `","usage":{"total_tokens":7}}`, jsonUsage, []tally.Spent{{Tokens: 7}}},
		{"usage too far from the end", `{"usage":{"total_tokens":7},"text":"` + long + `"}`, jsonUsage, nil},
		{"openai stream with usage", openAIStreamWithUsage, eventUsage, []tally.Spent{{InputTokens: 9, OutputTokens: 2, Tokens: 11}}},
		{"openai stream without usage", openAIStreamWithoutUsage, eventUsage, nil},
		{"anthropic stream", anthropicStream, eventUsage, []tally.Spent{{InputTokens: 30, OutputTokens: 15, Tokens: 45}}},
		{"gemini stream", geminiStream, eventUsage, []tally.Spent{{InputTokens: 8, OutputTokens: 2, Tokens: 10}}},
		{"responses stream", responsesStream, eventUsage, []tally.Spent{{InputTokens: 36, OutputTokens: 87, Tokens: 123}}},
		{"a long line", "data: {\"text\":\"" + long + "\",\"usage\":{\"total_tokens\":7}}\n\ndata: [DONE]\n\n", eventUsage, []tally.Spent{{Tokens: 7}}},
		{"a last line without its newline", "data: {\"usage\":{\"total_tokens\":7}}", eventUsage, []tally.Spent{{Tokens: 7}}},
		{"not a data line", "event: {\"usage\":{\"total_tokens\":7}}\n\n", eventUsage, nil},
		{"a stream read as JSON", anthropicStream, jsonUsage, nil},
	} {
		for coding, encoded := range map[contentCoding][]byte{plain: []byte(tc.body), gzipped: []byte(gzipText(tc.body))} {
			for how, split := range splits {
				t.Run(fmt.Sprintf("%s/%s/gzip=%v", tc.name, how, coding == gzipped), func(t *testing.T) {
					var budget bodyBudget
					got, spent := readThrough(t, encoded, tc.kind, coding, split, &budget)
					if !bytes.Equal(got, encoded) {
						t.Error("the body was changed")
					}
					if fmt.Sprint(spent) != fmt.Sprint(tc.want) {
						t.Errorf("spent %+v, want %+v", spent, tc.want)
					}
					if used := budget.used.Load(); used != 0 {
						t.Errorf("%d bytes of the budget not returned", used)
					}
				})
			}
		}
	}
}

// Memory is bounded: a gzipped body over maxCompressedUsage, or one that
// inflates to more than maxInflatedUsage, is not read; a budget that cannot
// take a tail reads nothing; a JSON body or a gzipped one closed before
// its end gives nothing, an event stream what it gave so far.
func TestUsageBodyBounds(t *testing.T) {
	t.Run("compressed over the bound", func(t *testing.T) {
		random := make([]byte, maxCompressedUsage) // gzip cannot shrink it
		_, _ = rand.NewChaCha8([32]byte{}).Read(random)
		body := `{"text":"` + fmt.Sprintf("%x", random) + `","usage":{"total_tokens":7}}`
		encoded := []byte(gzipText(body))
		if len(encoded) <= maxCompressedUsage {
			t.Fatalf("the test's body compresses to %d bytes", len(encoded))
		}
		var budget bodyBudget
		if _, spent := readThrough(t, encoded, jsonUsage, gzipped, splits["whole"], &budget); spent != nil {
			t.Errorf("spent %v", spent)
		}
	})
	t.Run("inflates over the bound", func(t *testing.T) {
		body := `{"text":"` + strings.Repeat("x", maxInflatedUsage) + `","usage":{"total_tokens":7}}`
		var budget bodyBudget
		if _, spent := readThrough(t, []byte(gzipText(body)), jsonUsage, gzipped, splits["whole"], &budget); spent != nil {
			t.Errorf("spent %v", spent)
		}
	})
	t.Run("no budget", func(t *testing.T) {
		var budget bodyBudget
		budget.used.Store(1<<30 - usageTail + 1)
		_, spent := readThrough(t, []byte(openAIChatBody), jsonUsage, plain, splits["whole"], &budget)
		if spent != nil {
			t.Errorf("spent %v", spent)
		}
		if used := budget.used.Load(); used != 1<<30-usageTail+1 {
			t.Errorf("the budget holds %d", used)
		}
	})
	for _, tc := range []struct {
		name   string
		body   string
		kind   usageKind
		coding contentCoding
		want   string
	}{
		{"json", openAIChatBody, jsonUsage, plain, "[]"},
		{"gzipped", anthropicStream, eventUsage, gzipped, "[]"},
		{"stream", anthropicStream, eventUsage, plain, "[{0 30 1 31}]"},
	} {
		t.Run("closed early: "+tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			if tc.coding == gzipped {
				body = []byte(gzipText(tc.body))
			}
			var budget bodyBudget
			spent := []tally.Spent{}
			ub := newUsageBody(io.NopCloser(bytes.NewReader(body)), -1, tc.kind, tc.coding, &budget, 1<<30, func(s tally.Spent) { spent = append(spent, s) })
			half := make([]byte, len(body)/2)
			if _, err := io.ReadFull(ub, half); err != nil {
				t.Fatal(err)
			}
			ub.Close()
			if got := fmt.Sprint(spent); got != tc.want {
				t.Errorf("spent %s, want %s", got, tc.want)
			}
			if used := budget.used.Load(); used != 0 {
				t.Errorf("%d bytes of the budget not returned", used)
			}
		})
	}
}

func TestUsageKindOf(t *testing.T) {
	for contentType, want := range map[string]usageKind{
		"application/json":                  jsonUsage,
		"application/json; charset=utf-8":   jsonUsage,
		"application/problem+json":          jsonUsage,
		"text/event-stream":                 eventUsage,
		"text/event-stream; charset=utf-8":  eventUsage,
		"audio/mpeg":                        noUsage,
		"":                                  noUsage,
		"application/json; charset=\"utf-8": noUsage,
	} {
		if got := usageKindOf(contentType); got != want {
			t.Errorf("%q: %v, want %v", contentType, got, want)
		}
	}
}

// Whatever the bytes and however they are split, the scanner finds what it
// finds in them whole, and what it finds is a JSON object.
func FuzzUsageScanner(f *testing.F) {
	for _, s := range []string{openAIChatBody, responsesBody, anthropicBody, geminiArrayBody, openAIStreamWithUsage, anthropicStream, geminiStream, responsesStream} {
		f.Add([]byte(s), uint16(7), true)
		f.Add([]byte(s), uint16(300), false)
	}
	f.Add([]byte(`usage"usage":{}`), uint16(0), true)
	f.Fuzz(func(t *testing.T, body []byte, cut uint16, stream bool) {
		if lastUsage(body, false) != nil && !hasUsageObject(body) {
			t.Error("hasUsageObject missed the usage lastUsage finds")
		}
		if obj := lastUsage(body, !stream); obj != nil && (obj[0] != '{' || obj[len(obj)-1] != '}') {
			t.Errorf("found %q", obj)
		}
		scan := func(pieces ...[]byte) (tally.Spent, bool) {
			s := usageScanner{stream: stream, bodies: &bodyBudget{}, limit: 1 << 30}
			defer s.release()
			for _, p := range pieces {
				s.write(p)
			}
			return s.end(true)
		}
		i := int(cut) % (len(body) + 1)
		whole, wholeOK := scan(body)
		split, splitOK := scan(body[:i], body[i:])
		if whole != split || wholeOK != splitOK {
			t.Errorf("whole %v %v, split at %d %v %v", whole, wholeOK, i, split, splitOK)
		}
	})
}

// A body that announced its length is counted once every byte is in,
// before the last ones are passed on: the client, which has the whole
// answer once it has them, may act on the count.
func TestUsageCountedBeforeTheLastBytes(t *testing.T) {
	body := []byte(openAIChatBody)
	var spent []tally.Spent
	var budget bodyBudget
	ub := newUsageBody(io.NopCloser(iotest.OneByteReader(bytes.NewReader(body))), int64(len(body)), jsonUsage, plain, &budget, 1<<30,
		func(s tally.Spent) { spent = append(spent, s) })
	got := make([]byte, len(body))
	for i := range got {
		if len(spent) != 0 {
			t.Fatalf("counted before byte %d", i)
		}
		if _, err := ub.Read(got[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if want := "[{0 19 10 29}]"; fmt.Sprint(spent) != want {
		t.Errorf("spent %v once the last byte was read, want %s", spent, want)
	}
	ub.Close()
	if len(spent) != 1 || budget.used.Load() != 0 {
		t.Errorf("spent %v, %d bytes of the budget held", spent, budget.used.Load())
	}
}

// An event stream holds a tail only while a line spans reads: between
// events, which is where a stream waits for the model, it holds none, so
// that open streams do not each keep one for their life.
func TestStreamTailReturnedBetweenLines(t *testing.T) {
	var budget bodyBudget
	spent := []tally.Spent{}
	ub := newUsageBody(io.NopCloser(strings.NewReader("")), -1, eventUsage, plain, &budget, 1<<30, func(s tally.Spent) { spent = append(spent, s) })
	ub.scan.write([]byte("data: {\"usage\":{\"prompt"))
	if used := budget.used.Load(); used != usageTail {
		t.Fatalf("a line spanning reads holds %d bytes, want a tail's %d", used, usageTail)
	}
	ub.scan.write([]byte("_tokens\":3}}\n\ndata: [DO"))
	ub.scan.write([]byte("NE]\n\n"))
	if used := budget.used.Load(); used != 0 || ub.scan.tail != nil {
		t.Errorf("between events the stream holds %d bytes of the budget, tail %v", used, ub.scan.tail != nil)
	}
	ub.Close()
	if fmt.Sprint(spent) != "[{0 3 0 3}]" {
		t.Errorf("spent %v", spent)
	}
}

// An answer whose usage cannot be read says why, once: the budget had no
// room, or a gzipped body is too large to keep; one read whole says
// nothing.
func TestUsageUnreadSaysWhy(t *testing.T) {
	random := make([]byte, maxCompressedUsage+1)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(random)
	large := gzipText(`{"x":"` + base64.StdEncoding.EncodeToString(random) + `","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	for _, tc := range []struct {
		name   string
		body   string
		kind   usageKind
		coding contentCoding
		limit  int64
		want   string
	}{
		{"read whole", openAIChatBody, jsonUsage, plain, 1 << 30, "[]"},
		{"no budget for a JSON body", openAIChatBody, jsonUsage, plain, 100, "[budget]"},
		{"no budget for a stream's split line", anthropicStream, eventUsage, plain, 100, "[budget]"},
		{"no budget for a gzipped body", gzipText(openAIChatBody), jsonUsage, gzipped, 100, "[budget]"},
		{"gzipped past its bound", large, jsonUsage, gzipped, 1 << 30, "[too_large]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var budget bodyBudget
			var reasons []string
			ub := newUsageBody(io.NopCloser(iotest.OneByteReader(bytes.NewReader([]byte(tc.body)))), -1, tc.kind, tc.coding, &budget, tc.limit, func(tally.Spent) {})
			ub.unread = func(reason string) { reasons = append(reasons, reason) }
			if _, err := io.Copy(io.Discard, ub); err != nil {
				t.Fatal(err)
			}
			ub.Close()
			if got := fmt.Sprint(reasons); got != tc.want {
				t.Errorf("unread %s, want %s", got, tc.want)
			}
		})
	}
}
