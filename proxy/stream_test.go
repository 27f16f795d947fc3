package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// guard bounds how long a test waits for what must happen; a proxy that
// held a chunk back would make it wait that long, then fail. It never
// decides a passing outcome.
const guard = 10 * time.Second

// gated answers with its headers at once, then sends chunk i when the
// test releases the gate for the i-th time; with known, it announces the
// whole length first. left is closed when the request's context ends
// before the last chunk: the client went away.
func gated(chunks []string, contentType string, known bool, gate <-chan struct{}, left chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("X-Ratelimit-Limit-Requests", "60")
		h.Set("X-Ratelimit-Remaining-Requests", "41")
		if known {
			h.Set("Content-Length", strconv.Itoa(len(strings.Join(chunks, ""))))
		}
		w.WriteHeader(http.StatusOK)
		flush := http.NewResponseController(w).Flush
		_ = flush()
		for _, chunk := range chunks {
			select {
			case <-gate:
			case <-r.Context().Done():
				close(left)
				return
			}
			_, _ = io.WriteString(w, chunk)
			_ = flush()
		}
	}
}

func sseChunks(n int) []string {
	chunks := make([]string, n)
	for i := range chunks {
		chunks[i] = fmt.Sprintf(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",`+
			`"choices":[{"index":0,"delta":{"content":"%d"},"finish_reason":null}]}`+"\n\n", i)
	}
	return chunks
}

// Each chunk reaches the application before the upstream sends the next:
// the upstream sends a chunk only when the test has read the one before.
func TestStreamsChunkByChunk(t *testing.T) {
	for _, tc := range []struct {
		name, contentType string
		known             bool
	}{
		{"server-sent events", "text/event-stream; charset=utf-8", false},
		{"chunked", "application/x-ndjson", false},
		{"known length", "application/octet-stream", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunks := sseChunks(5)
			gate, left := make(chan struct{}), make(chan struct{})
			up := newUpstream(t, gated(chunks, tc.contentType, tc.known, gate, left))
			e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			req := newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true}`,
				"Authorization", "Bearer "+openAIKey)
			resp, err := e.client.Do(req.WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// The headers were read as the response started, before any chunk.
			if o := e.rec.last(t); o.Model != "gpt-4o-mini" || len(o.Observations) != 2 {
				t.Errorf("recorded %+v", o)
			}
			for i, chunk := range chunks {
				gate <- struct{}{}
				got := make([]byte, len(chunk))
				if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != chunk {
					t.Fatalf("chunk %d: %q, %v", i, got, err)
				}
			}
			if rest, err := io.ReadAll(resp.Body); len(rest) != 0 || err != nil {
				t.Errorf("after the last chunk: %q, %v", rest, err)
			}
		})
	}
}

func TestOpenAISDKStreaming(t *testing.T) {
	chunks := append(sseChunks(5), "data: [DONE]\n\n")
	gate, left := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, gated(chunks, "text/event-stream", false, gate, left))
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	client := openai.NewClient(option.WithBaseURL(e.url+"/openai/v1"), option.WithAPIKey(openAIKey), option.WithMaxRetries(0))
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
	})
	defer stream.Close()
	for i := range len(chunks) - 1 {
		gate <- struct{}{}
		if !stream.Next() {
			t.Fatalf("chunk %d: %v", i, stream.Err())
		}
		if got := stream.Current().Choices[0].Delta.Content; got != strconv.Itoa(i) {
			t.Errorf("chunk %d: content %q", i, got)
		}
	}
	gate <- struct{}{}
	if stream.Next() || stream.Err() != nil {
		t.Errorf("after [DONE]: %v", stream.Err())
	}
	if o := e.rec.last(t); o.Key != "team-openai" || o.Model != "gpt-4o-mini" || len(o.Observations) != 2 {
		t.Errorf("recorded %+v", o)
	}
}

// A client that leaves mid-stream ends the upstream request, and the proxy
// goes on serving, logging nothing above debug.
func TestClientGoneMidStream(t *testing.T) {
	chunks := sseChunks(3)
	gate, left := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			okHandler(w, r)
			return
		}
		gated(chunks, "text/event-stream", false, gate, left)(w, r)
	})
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := e.client.Do(newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions", "{}").WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	gate <- struct{}{}
	if _, err := io.ReadFull(resp.Body, make([]byte, len(chunks[0]))); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-left:
	case <-time.After(guard):
		t.Fatal("the upstream request outlived the client's")
	}

	if got := do(t, newClient(), newRequest(t, http.MethodGet, e.url+"/openai/v1/models", "")); got.status != 200 {
		t.Errorf("after a client left: status %d", got.status)
	}
	if err := e.stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if loud := regexp.MustCompile(`(?m)^.*level=(info|warn|error).*$`).FindAllString(e.logs.String(), -1); len(loud) != 0 {
		t.Errorf("logged above debug:\n%s", strings.Join(loud, "\n"))
	}
}

// An upstream that breaks a stream off: the application sees the stream
// cut, not ended, and the proxy logs it at debug level only.
func TestUpstreamCutMidStream(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, sseChunks(1)[0])
		_ = http.NewResponseController(w).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // no last chunk: the stream is cut
		}
	})
	e := startProxy(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	resp, err := e.client.Do(newRequest(t, http.MethodPost, e.url+"/openai/v1/chat/completions", "{}").WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || string(body) != sseChunks(1)[0] {
		t.Errorf("the application read %q, %v; want the first chunk, then an error", body, err)
	}
	if err := e.stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	logs := e.logs.String()
	if loud := regexp.MustCompile(`(?m)^.*level=(info|warn|error).*$`).FindAllString(logs, -1); len(loud) != 0 || !strings.Contains(logs, "level=debug") {
		t.Errorf("want the cut at debug level only:\n%s", logs)
	}
}
