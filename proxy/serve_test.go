package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

func TestListenBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if l, err := Listen(&config.Proxy{ListenAddress: busy.Addr().String()}); err == nil {
		l.Close()
		t.Fatal("bound a busy port")
	} else if !strings.Contains(err.Error(), "proxy listen_address") {
		t.Errorf("error %q does not say which address", err)
	}
}

func TestListenBadCertificate(t *testing.T) {
	cfg := &config.Proxy{ListenAddress: "127.0.0.1:0", TLSServerConfig: &web.TLSConfig{
		TLSCertPath: filepath.Join(t.TempDir(), "missing.pem"), TLSKeyPath: filepath.Join(t.TempDir(), "missing.key"),
	}}
	if l, err := Listen(cfg); err == nil {
		l.Close()
		t.Fatal("listened with a certificate that cannot be read")
	} else if !strings.Contains(err.Error(), "tls_server_config") {
		t.Errorf("error %q does not name tls_server_config", err)
	}
}

func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	up := newUpstream(t, okHandler)
	cfg := parseConfig(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	cfg.Proxy.TLSServerConfig = &web.TLSConfig{TLSCertPath: certFile, TLSKeyPath: keyFile}
	e := startConfig(t, cfg)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + e.addr + "/openai/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || up.hits.Load() != 1 {
		t.Errorf("status %d, TLS %v, %d upstream requests", resp.StatusCode, resp.TLS != nil, up.hits.Load())
	}
	if _, err := http.Get("http://" + e.addr + "/openai/v1/models"); err == nil && up.hits.Load() != 1 {
		t.Error("plain HTTP reached the upstream")
	}
}

// selfSigned writes net/http/httptest's own certificate for 127.0.0.1
// and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	cert := srv.TLS.Certificates[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: cert.Certificate[0]}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return certFile, keyFile, pool
}

// closeSignal is a listener that says when it is closed: when a shutdown
// has begun.
type closeSignal struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeSignal) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// serveGated serves a handler that blocks until release is closed. stop
// ends Serve's context and returns what Serve returns; closed is closed
// when the shutdown has begun.
func serveGated(t *testing.T, grace time.Duration, release <-chan struct{}) (url string, started, closed <-chan struct{}, stop func() error) {
	t.Helper()
	cfg := config.DefaultProxy
	cfg.ListenAddress = "127.0.0.1:0"
	bound, err := Listen(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &closeSignal{Listener: bound, closed: make(chan struct{})}
	begun := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begun <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, nil, l, &cfg, h, grace, log.NewNopLogger()) }()
	return "http://" + l.Addr().String(), begun, l.closed, func() error {
		cancel()
		return <-served
	}
}

// A shutdown lets a request in flight finish, and returns once it has.
func TestServeShutdownWaits(t *testing.T) {
	release := make(chan struct{})
	url, started, closed, stop := serveGated(t, time.Minute, release)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		got <- string(body)
	}()
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	<-closed
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned with a request in flight: %v", err)
	case body := <-got:
		t.Fatalf("the request ended before it was released: %q", body)
	default:
	}
	close(release)
	if body := <-got; body != "done" {
		t.Errorf("the request in flight got %q", body)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("still serving after the shutdown")
	}
}

// A request still open after the grace period is cut off, and Serve says so.
func TestServeGraceCutsOff(t *testing.T) {
	url, started, _, stop := serveGated(t, time.Millisecond, make(chan struct{}))
	failed := make(chan error, 1)
	go func() {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		failed <- err
	}()
	<-started
	if err := stop(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Serve: %v, want the grace period's deadline", err)
	}
	if err := <-failed; err == nil {
		t.Error("the request open past the grace period was answered")
	}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	mu       sync.Mutex
	accepted int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.accepted++
		l.mu.Unlock()
	}
	return c, err
}

func (l *countingListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

// serveCounting serves h on a loopback listener of cfg until the test
// ends, closing handed to Serve, and returns the listener, which counts
// the connections it accepts.
func serveCounting(t *testing.T, cfg *config.Proxy, h http.Handler, closing <-chan struct{}) *countingListener {
	t.Helper()
	bound, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{Listener: bound}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, closing, l, cfg, h, time.Second, log.NewNopLogger()) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	return l
}

var answerOK = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })

// Once closing is closed, the proxy goes on answering but asks each client
// to close its connection, so that a kept-alive client reconnects, through
// a load balancer, to another replica rather than reusing this one's.
func TestServeClosingEndsKeepAlives(t *testing.T) {
	cfg := config.DefaultProxy
	cfg.ListenAddress = "127.0.0.1:0"
	closing := make(chan struct{})
	l := serveCounting(t, &cfg, answerOK, closing)
	client := &http.Client{Transport: &http.Transport{}}
	get := func() *http.Response {
		t.Helper()
		resp, err := client.Get("http://" + l.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 3 {
		if resp := get(); resp.Close {
			t.Fatal("an answer asked to close the connection before closing")
		}
	}
	if n := l.count(); n != 1 {
		t.Fatalf("3 requests of a kept-alive client took %d connections, want 1", n)
	}
	close(closing)
	// Serve turns keep-alives off in a goroutine of its own: the first
	// answers may still come before it has.
	for i := 0; !get().Close; i++ {
		if i == 1000 {
			t.Fatal("1,000 answers after closing, none asked to close the connection")
		}
	}
	before := l.count()
	for i := range 3 {
		if !get().Close {
			t.Errorf("answer %d after closing kept the connection open", i)
		}
	}
	if n := l.count() - before; n != 3 {
		t.Errorf("3 requests after closing took %d new connections, want 3", n)
	}
}

// An HTTP/2 client over TLS multiplexes its requests on one connection,
// which SetKeepAlivesEnabled(false) leaves alone: once closing is closed it
// too must be told (GOAWAY) to open a new connection, or it goes on
// reaching this replica until the listener closes. Test by the attacking
// reviewer.
func TestServeClosingEndsHTTP2Connections(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	up := newUpstream(t, okHandler)
	cfg := parseConfig(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	cfg.Proxy.TLSServerConfig = &web.TLSConfig{TLSCertPath: certFile, TLSKeyPath: keyFile}
	p, err := New(cfg, &recorder{}, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	closing := make(chan struct{})
	l := serveCounting(t, cfg.Proxy, p, closing)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	t.Cleanup(client.CloseIdleConnections)
	get := func() {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://"+l.Addr().String()+"/openai/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+openAIKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
		}
		if _, ok := resp.Header["Connection"]; ok {
			t.Errorf("an HTTP/2 answer carries a Connection header: %q", resp.Header["Connection"])
		}
	}
	for range 3 {
		get()
	}
	if n := l.count(); n != 1 {
		t.Fatalf("3 requests of an HTTP/2 client took %d connections, want 1", n)
	}
	close(closing)
	for i := 0; l.count() == 1; i++ {
		if i == 1000 {
			t.Fatal("1,000 HTTP/2 requests after closing, all on the connection opened before")
		}
		get()
	}
}
