package proxy

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// gzipText is s, gzipped.
func gzipText(s string) string {
	var b strings.Builder
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.String()
}

func gzipBytes(b []byte) []byte { return []byte(gzipText(string(b))) }

// Go's clients, and the SDKs built on them, ask for gzip, and Google's
// servers compress a 429's body when asked: the proxy reads the body
// compressed as it is read plain, and passes on the compressed bytes the
// upstream sent.
func TestGzipRefusalThroughTheProxy(t *testing.T) {
	plain := testkit.Fixture(t, "gemini-429.json")
	compressed := gzipBytes(plain)
	for _, chunked := range []bool{false, true} {
		t.Run("chunked="+strconv.FormatBool(chunked), func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json; charset=UTF-8")
				if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
					t.Errorf("the upstream was not asked for gzip: %q", r.Header.Get("Accept-Encoding"))
				}
				w.Header().Set("Content-Encoding", "gzip")
				w.Header().Set("Vary", "Accept-Encoding")
				if !chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(compressed)))
				}
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write(compressed)
			})
			e := startProxy(t, setup{unknownKeys: "reject", routes: geminiRoutes(up.URL), keys: geminiKeys})

			// A Go client as the SDKs use it: it asks for gzip and inflates.
			sdk := &http.Client{}
			t.Cleanup(sdk.CloseIdleConnections)
			got := do(t, sdk, newRequest(t, http.MethodPost, e.url+geminiPath, `{}`, "X-Goog-Api-Key", geminiKey))
			if got.status != 429 || !bytes.Equal(got.body, plain) {
				t.Errorf("the SDK got %d %q", got.status, got.body)
			}
			checkGeminiReading(t, e.rec.last(t), "team-gemini")

			// The bytes on the wire are the upstream's.
			raw := do(t, e.client, newRequest(t, http.MethodPost, e.url+geminiPath, `{}`, "X-Goog-Api-Key", geminiKey, "Accept-Encoding", "gzip"))
			if raw.header.Get("Content-Encoding") != "gzip" || !bytes.Equal(raw.body, compressed) {
				t.Errorf("the compressed body changed on its way: %q %q", raw.header.Get("Content-Encoding"), raw.body)
			}
			if n := len(e.rec.all()); n != 2 {
				t.Errorf("recorded %d times, want twice", n)
			}
			checkGeminiReading(t, e.rec.last(t), "team-gemini")
			waitFor(t, "the body budget to be returned", func() bool { return e.proxy.bodies.used.Load() == 0 })
		})
	}
}

// A compressed body is read only when it inflates, whole and intact, to
// no more than the copy's bound; one in an encoding the proxy does not
// know, or that does not inflate, is recorded by its headers, and reaches
// the application unchanged.
func TestCompressedRefusalBounds(t *testing.T) {
	plain := testkit.Fixture(t, "gemini-429.json")
	compressed := gzipBytes(plain)
	corrupt := bytes.Clone(compressed)
	corrupt[len(corrupt)-5] ^= 0xff // the CRC-32 of the inflated body
	bomb := gzipBytes(append(bytes.Clone(plain), bytes.Repeat([]byte(" "), 10<<20)...))
	atTheCap := gzipBytes(append(bytes.Clone(plain), bytes.Repeat([]byte(" "), maxRefusalBody-len(plain))...))
	overTheCap := gzipBytes(append(bytes.Clone(plain), bytes.Repeat([]byte(" "), maxRefusalBody-len(plain)+1)...))
	for _, tc := range []struct {
		name, encoding string
		body           []byte
		read           bool
	}{
		{"gzip", "gzip", compressed, true},
		{"x-gzip, in capitals", "X-GZIP", compressed, true},
		{"identity", "identity", plain, true},
		{"inflates to the cap", "gzip", atTheCap, true},
		{"inflates one byte over the cap", "gzip", overTheCap, false},
		{"a gzip bomb", "gzip", bomb, false},
		{"a corrupt checksum", "gzip", corrupt, false},
		{"cut short", "gzip", compressed[:len(compressed)-10], false},
		{"trailing bytes", "gzip", append(bytes.Clone(compressed), "xx"...), false},
		{"not compressed", "gzip", plain, false},
		{"twice", "gzip, gzip", gzipBytes(compressed), false},
		{"brotli", "br", plain, false},
		{"zstd", "zstd", plain, false},
		{"an unknown one", "x-custom", plain, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", tc.encoding)
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write(tc.body)
			})
			e := startConfig(t, parseConfig(t, setup{routes: geminiRoutes(up.URL), keys: geminiKeys}), func(p *Proxy) { p.refusalWait = time.Hour })
			got := do(t, e.client, newRequest(t, http.MethodPost, e.url+geminiPath, `{}`, "X-Goog-Api-Key", geminiKey, "Accept-Encoding", "gzip, br, zstd"))
			if got.status != 429 || !bytes.Equal(got.body, tc.body) || got.header.Get("Content-Encoding") != tc.encoding {
				t.Errorf("the application got %d %q and %d bytes, not the upstream's %d", got.status, got.header.Get("Content-Encoding"), len(got.body), len(tc.body))
			}
			all := e.rec.all()
			if len(all) != 1 {
				t.Fatalf("recorded %d times, want once", len(all))
			}
			o := all[0]
			read := len(o.Observations) == 8 && o.RetryAfter == 7*time.Second && o.Cause == ratelimit.CauseQuotaExhausted
			headersOnly := len(o.Observations) == 0 && o.RetryAfter == 7*time.Second && o.Cause == ratelimit.CauseRateLimit
			if tc.read && !read || !tc.read && !headersOnly {
				t.Errorf("recorded %+v; want the body read: %v", o, tc.read)
			}
			waitFor(t, "the body budget to be returned", func() bool { return e.proxy.bodies.used.Load() == 0 })
		})
	}
}
