package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// announcedWrites tells writing when a response's body starts to be written.
type announcedWrites struct {
	http.ResponseWriter
	once    sync.Once
	writing chan<- string
	path    string
}

func (a *announcedWrites) Write(p []byte) (int, error) {
	a.once.Do(func() { a.writing <- a.path })
	return a.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController set the write deadline.
func (a *announcedWrites) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// Readers of the status page, the JSON view and a probe's debug log that
// never read hold no slot of --web.max-requests while their answers wait
// to be written: the pages are rendered into memory first, so /metrics,
// /status and /api/v1/limits answer another address.
func TestStalledPageReadersStarveNoOtherAddress(t *testing.T) {
	for _, path := range []string{StatusPath, LimitsPath, ProbePath + "?key=router&debug=true"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) { stalledReaders(t, path) })
	}
}

func stalledReaders(t *testing.T, stalledPath string) {
	const maxRequests = 4
	now := time.Now()
	big := snapshot.Report{SchemaVersion: snapshot.Version, GeneratedAt: now, Targets: make([]snapshot.Target, 2000)}
	for i := range big.Targets {
		big.Targets[i] = statusReport(now).Targets[2]
		big.Targets[i].Key = fmt.Sprintf("key-%04d", i)
	}
	writing := make(chan string, 2*maxRequests)
	h, err := Handler(Options{
		MetricsPath: "/metrics", Registry: prometheus.NewRegistry(), Observations: fixedText("key-1999 " + strings.Repeat("m 1\n", 64<<10)),
		MaxRequests: maxRequests, Targets: testTargets, Limits: func(time.Time) snapshot.Report { return big },
		Ready: func() bool { return true }, Logger: log.NewNopLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Stalled") != "" {
			w = &announcedWrites{ResponseWriter: w, writing: writing, path: r.URL.Path}
		}
		h.ServeHTTP(w, r)
	}))
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	defer func() {
		srv.CloseClientConnections() // ends the stalled writes
		srv.Close()
	}()

	stalled := stalledDialer()
	for range maxRequests {
		conn, err := stalled.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET "+stalledPath+" HTTP/1.1\r\nHost: x\r\nX-Stalled: 1\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range maxRequests {
		select {
		case <-writing:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d stalled readers reached their write within 30s", i, maxRequests)
		}
	}

	other := otherAddressClient()
	defer other.CloseIdleConnections()
	for _, path := range []string{"/metrics", StatusPath, LimitsPath} {
		resp, err := other.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "key-1999") && path != "/metrics" {
			t.Errorf("%s from another address beside %d stalled readers: %d %v, %.200q", path, maxRequests, resp.StatusCode, err, body)
		}
	}
}

// stalledDialer dials with a small receive buffer, so that a client that
// never reads stalls the server's writes soon.
func stalledDialer() net.Dialer {
	return net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
}

// otherAddressClient connects from 127.0.0.2, loopback too on Linux: a
// client apart from the stalled ones' address.
func otherAddressClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)},
	}).DialContext}}
}
