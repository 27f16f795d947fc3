package proxy

import (
	"bytes"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// With tls_server_config the proxy speaks HTTP/2, where one connection
// carries many requests at once. Streams that announce a body and send
// none cost what max_connections and max_inflight_request_bytes allow, as
// HTTP/1 connections do: each is charged its handler, request and stream
// besides its first buffer. Test by the attacking reviewer.
func TestHTTP2StreamsAreBounded(t *testing.T) {
	const conns, streamsPerConn = 12, 250
	const budget = 8 << 20 // 409 streams awaiting their bodies: the rest are refused 503
	certFile, keyFile, pool := selfSigned(t)
	up := newUpstream(t, okHandler)
	cfg := parseConfig(t, setup{routes: []config.Route{{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"}}})
	cfg.Proxy.TLSServerConfig = &web.TLSConfig{TLSCertPath: certFile, TLSKeyPath: keyFile}
	cfg.Proxy.BodyReadTimeout = config.Duration(time.Hour) // this test is not about the timeout
	cfg.Proxy.MaxInflightRequestBytes = budget
	cfg.Proxy.MaxConnections = conns
	e := startConfig(t, cfg)

	before := heapInuse()
	var advertised atomic.Uint32 // SETTINGS_MAX_CONCURRENT_STREAMS, as the server sent it
	for range conns {
		conn, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		fr := http2.NewFramer(conn, conn)
		go func() { // read what the server sends, acknowledging its settings
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
					if v, ok := s.Value(http2.SettingMaxConcurrentStreams); ok {
						advertised.Store(v)
					}
					mu.Lock()
					_ = fr.WriteSettingsAck()
					mu.Unlock()
				}
			}
		}()
		mu.Lock()
		_ = fr.WriteSettings()
		var block bytes.Buffer
		enc := hpack.NewEncoder(&block)
		for i := range streamsPerConn {
			block.Reset()
			for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/openai/v1/chat/completions"},
				{"authorization", "Bearer " + openAIKey}, {"content-type", "application/json"}, {"content-length", "10485760"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
		}
		mu.Unlock()
	}
	// Until no further stream fits the budget, or every stream a
	// connection may open awaits its body.
	const waiting = firstBodyBuffer + requestOverhead
	waitFor(t, "the streams to fill the budget", func() bool {
		used := e.proxy.bodies.used.Load()
		return used > budget-waiting || used == conns*maxConcurrentStreams*waiting
	})
	if got := advertised.Load(); got != maxConcurrentStreams {
		t.Errorf("the server allows %d streams a connection, want %d", got, maxConcurrentStreams)
	}
	const allowed = heapSlack * (budget + conns*(256<<10))
	if grown := int64(heapInuse()) - int64(before); grown > allowed {
		t.Errorf("%d HTTP/2 connections (max_connections: %d) with %d streams each that announced a body and sent none: "+
			"%d bodies awaited, the heap %d MiB higher; the bounds allow %d MiB",
			conns, conns, streamsPerConn, e.proxy.bodies.used.Load()/(firstBodyBuffer+requestOverhead), grown>>20, allowed>>20)
	}
}
