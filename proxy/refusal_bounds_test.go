package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// Many refusals whose bodies are long and slow to end are copied only
// while the bodies held take less than half the body budget, so that
// requests still get through beside them: they grow the heap by no more than that beside
// as many answers that are not read (400s); every byte charged is
// returned, and each is recorded once.
func TestConcurrentRefusalsAreBounded(t *testing.T) {
	const conns = 300
	// Each held request is charged its requestOverhead; copies of 124 KiB
	// each would take the rest.
	const budget = 32 << 20
	raiseOpenFiles(t, 4*conns)
	chunk := strings.Repeat("x", 60<<10) // kept: under the cap
	release := make(chan struct{})
	var started sync.WaitGroup
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/models") {
			okHandler(w, r)
			return
		}
		status := http.StatusTooManyRequests
		if strings.HasSuffix(r.URL.Path, "/unread") {
			status = http.StatusBadRequest
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, chunk)
		_ = http.NewResponseController(w).Flush()
		started.Done()
		<-release
	})
	released := sync.OnceFunc(func() { close(release) })
	t.Cleanup(released) // before the upstream closes, which waits for its handlers
	cfg := parseConfig(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	cfg.Proxy.MaxInflightRequestBytes = budget
	e := startConfig(t, cfg, func(p *Proxy) { p.refusalWait = time.Hour })

	// hold sends conns requests to path and reads each answer's first chunk.
	hold := func(path string) {
		t.Helper()
		started.Add(conns)
		var wg sync.WaitGroup
		for range conns {
			wg.Go(func() {
				conn := dialSending(t, e.addr, "POST "+path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+openAIKey+
					"\r\nContent-Length: 2\r\n\r\n{}")
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Error(err)
					started.Done()
					return
				}
				if _, err := io.ReadFull(resp.Body, make([]byte, len(chunk))); err != nil || resp.StatusCode == http.StatusServiceUnavailable {
					t.Errorf("%s: %d %v", path, resp.StatusCode, err)
					started.Done()
				}
			})
		}
		wg.Wait()
		started.Wait()
	}

	before := heapInuse()
	hold("/openai/v1/unread")
	unread := int64(heapInuse()) - int64(before)
	before = heapInuse()
	hold("/openai/v1/chat/completions")
	read := int64(heapInuse()) - int64(before)
	if used, held := e.proxy.bodies.used.Load(), int64(2*conns*(requestOverhead+3)); used-held > budget/2 || used < budget/2-124<<10 {
		t.Errorf("%d bytes of the budget charged, %d for the requests: want copies until half the budget is taken, and no further", used, held)
	}
	if grown := read - unread; grown > budget/2*heapSlack {
		t.Errorf("%d refusals held %d MiB more than as many answers not read; half the budget is %d MiB", conns, grown>>20, budget>>21)
	}
	t.Logf("heap: %d MiB unread, %d MiB read", unread>>20, read>>20)
	long := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("x", 1<<20) + `"}]}`
	if got := do(t, e.client, newRequest(t, http.MethodPost, e.url+"/openai/v1/models", long, "Authorization", "Bearer "+openAIKey)); got.status != 200 {
		t.Errorf("a request beside the refusals got %d %s", got.status, got.body)
	}

	released()
	waitFor(t, "every refusal to be recorded", func() bool {
		n := 0
		for _, o := range e.rec.all() {
			if o.StatusCode != http.StatusOK {
				n++
			}
		}
		return n == 2*conns
	})
	waitFor(t, "the body budget to be returned", func() bool { return e.proxy.bodies.used.Load() == 0 })
}
