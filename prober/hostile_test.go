package prober

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// keyRecorder notes the Authorization header of every request it gets.
type keyRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (k *keyRecorder) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.seen = append(k.seen, r.URL.Path+" "+r.Header.Get("Authorization"))
		k.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (k *keyRecorder) got() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.seen...)
}

func targetWith(baseURL string, h config.HTTPClient) config.Target {
	return config.Target{Key: &config.Key{Name: "k", Provider: "cerebras", APIKey: canary, BaseURL: baseURL, HTTPClient: h}, Model: "m"}
}

func proberFor(t *testing.T, tg config.Target) *Prober {
	t.Helper()
	p := New("test")
	if err := p.Apply(&config.Config{Keys: []config.Key{*tg.Key}}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRedirectsNeverLeaveTheOrigin(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ratelimit-limit-requests-day", "10")
	})
	var origin, otherPort keyRecorder
	other := httptest.NewServer(otherPort.handler(ok))
	defer other.Close()
	var target string // the redirect's Location, set per case
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, statusForTest)
	})
	mux.Handle("/moved/chat/completions", ok)
	srv := httptest.NewServer(origin.handler(mux))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	for _, status := range []int{301, 302, 307, 308} {
		for _, dest := range []struct {
			name, location string
			sameOrigin     bool
		}{
			{"same origin", srv.URL + "/moved/chat/completions", true},
			{"other host", "http://localhost:" + port + "/moved/chat/completions", false},
			{"other port", other.URL + "/moved/chat/completions", false},
		} {
			for _, follow := range []bool{false, true} {
				name := fmt.Sprintf("%d %s follow=%v", status, dest.name, follow)
				t.Run(name, func(t *testing.T) {
					origin.seen, otherPort.seen = nil, nil
					statusForTest, target = status, dest.location
					tg := targetWith(srv.URL+"/v1", config.HTTPClient{FollowRedirects: follow})
					r := proberFor(t, tg).Probe(context.Background(), tg)
					if follow && dest.sameOrigin {
						want := []string{"/v1/chat/completions Bearer " + canary, "/moved/chat/completions Bearer " + canary}
						if r.Outcome != Success || strings.Join(origin.got(), "|") != strings.Join(want, "|") {
							t.Errorf("outcome %s, requests %v; want success and %v", r.Outcome, origin.got(), want)
						}
						return
					}
					if r.Outcome != HTTPError || r.StatusCode != status {
						t.Errorf("outcome %s status %d, want http_error %d", r.Outcome, r.StatusCode, status)
					}
					if got := origin.got(); len(got) != 1 {
						t.Errorf("requests to the origin: %v, want only the first", got)
					}
					if got := otherPort.got(); len(got) != 0 {
						t.Errorf("the other origin got %v", got)
					}
				})
			}
		}
	}
}

var statusForTest int

func TestBoundedReading(t *testing.T) {
	timeout := 2 * time.Second
	// Built before measuring: the servers run in this process, and what
	// they allocate must not count as the probe's.
	hugeHeader := []byte("HTTP/1.1 200 OK\r\nx-ratelimit-limit-requests-day: 10\r\nX-Huge: " +
		strings.Repeat("h", 10<<20) + "\r\nContent-Length: 0\r\n\r\n")
	chunk := []byte(strings.Repeat("x", 1<<20))
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		outcome Outcome
	}{
		{"256 MiB body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("x-ratelimit-limit-requests-day", "10")
			for range 256 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, Success},
		{"10 MiB header", func(w http.ResponseWriter, r *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			defer conn.Close()
			_, _ = conn.Write(hugeHeader)
		}, NetworkError},
		{"trickled body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("x-ratelimit-limit-requests-day", "10")
			w.WriteHeader(200)
			for range 100 {
				if _, err := w.Write([]byte(" ")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}, Success},
		{"trickled headers", func(w http.ResponseWriter, r *http.Request) {
			conn, buf, _ := w.(http.Hijacker).Hijack()
			defer conn.Close()
			buf.WriteString("HTTP/1.1 200 OK\r\n")
			for range 100 {
				buf.WriteString("X-Slow: 1\r\n")
				buf.Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}, Timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			tg := targetWith(srv.URL+"/v1", config.HTTPClient{})
			p := proberFor(t, tg)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			r := p.Probe(ctx, tg)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if r.Outcome != tc.outcome {
				t.Errorf("outcome %s (%v), want %s", r.Outcome, r.Err, tc.outcome)
			}
			if elapsed > timeout+500*time.Millisecond {
				t.Errorf("the probe took %s with a %s timeout", elapsed, timeout)
			}
			// The wire is cut at maxResponseBytes (1.1 MiB); parsing a header
			// line that long allocates about 8 MiB, in garbage, whatever the
			// upstream sends beyond it. Without the bound, Go reads 10 MiB of headers.
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
				t.Errorf("the probe allocated %d MiB", grown>>20)
			}
		})
	}
}

func TestTLSWithCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ratelimit-limit-requests-day", "10")
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pemOf(srv.Certificate().Raw), 0o600); err != nil {
		t.Fatal(err)
	}
	// Without the CA: the system roots refuse the server.
	tg := targetWith(srv.URL+"/v1", config.HTTPClient{})
	if r := proberFor(t, tg).Probe(context.Background(), tg); r.Outcome != NetworkError || !strings.Contains(r.Err.Error(), "certificate") {
		t.Errorf("untrusted server: %s %v", r.Outcome, r.Err)
	}
	tg = targetWith(srv.URL+"/v1", config.HTTPClient{TLSConfig: commoncfg.TLSConfig{CAFile: caFile, ServerName: "example.com"}})
	if r := proberFor(t, tg).Probe(context.Background(), tg); r.Outcome != Success {
		t.Errorf("with ca_file: %s %v", r.Outcome, r.Err)
	}
}

func TestProxy(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ratelimit-limit-requests-day", "10")
	}))
	defer api.Close()
	var proxied keyRecorder
	proxy := httptest.NewServer(proxied.handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy: the request line carries the absolute URL.
		req, _ := http.NewRequest(r.Method, r.URL.String(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})))
	defer proxy.Close()
	proxyURL, _ := url.Parse(proxy.URL)

	// HTTP_PROXY is ignored unless proxy_from_environment says otherwise.
	t.Setenv("HTTP_PROXY", proxy.URL)
	tg := targetWith(api.URL+"/v1", config.HTTPClient{})
	if r := proberFor(t, tg).Probe(context.Background(), tg); r.Outcome != Success || len(proxied.got()) != 0 {
		t.Errorf("without proxy settings: %s, proxied %v", r.Outcome, proxied.got())
	}
	tg = targetWith(api.URL+"/v1", config.HTTPClient{ProxyConfig: commoncfg.ProxyConfig{ProxyURL: commoncfg.URL{URL: proxyURL}}})
	if r := proberFor(t, tg).Probe(context.Background(), tg); r.Outcome != Success || len(proxied.got()) != 1 {
		t.Errorf("with proxy_url: %s, proxied %v", r.Outcome, proxied.got())
	}
}
