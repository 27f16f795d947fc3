package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// maxRefusalBody bounds what the proxy keeps of a refusal's body to read
// it: Gemini's 429 with every quota it names takes 2 KB.
const maxRefusalBody = 64 << 10

// firstRefusalBuffer is the buffer a refusal's body starts in.
const firstRefusalBuffer = 4 << 10

// refusalBodyWait bounds how long the reading of a refusal waits for its
// body to end: a body that never ends is recorded by its headers alone.
const refusalBodyWait = 10 * time.Second

// inflaterSize is charged to the body budget for inflating a compressed
// copy, besides the inflated buffers: what a gzip reader allocates, its
// 32 KiB window and its tables (41 KB measured).
const inflaterSize = 48 << 10

// isRefusal reports whether a response of this status refuses a request
// for the key's limits or the provider's capacity, so that its body may
// say which quota ran out and how long to wait: 429, 503 and 529, and 402,
// the status of an account out of credit (OpenRouter).
func isRefusal(status int) bool {
	switch status {
	case http.StatusPaymentRequired, http.StatusTooManyRequests, http.StatusServiceUnavailable, 529:
		return true
	}
	return false
}

// contentCoding is how a body's Content-Encoding is undone.
type contentCoding int

const (
	plain      contentCoding = iota // none, or identity
	gzipped                         // gzip, which Google's servers answer Go's clients with
	unreadable                      // an encoding the proxy does not undo
)

// codingOf reads a response's Content-Encoding: the proxy undoes one gzip
// at most, and reads nothing it cannot undo (br, zstd, deflate, gzip twice).
func codingOf(h http.Header) contentCoding {
	var codings []string
	for _, v := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.ToLower(textproto.TrimString(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return plain
	case len(codings) == 1 && (codings[0] == "gzip" || codings[0] == "x-gzip"):
		return gzipped
	}
	return unreadable
}

// refusalBody passes a refusal's body on as it is read, keeping a copy of
// at most maxRefusalBody bytes, in a buffer that grows with what arrives
// and is charged to the proxy's body budget as it grows. When the body
// ends (EOF, or every byte it announced), or is closed first, or wait
// has passed, it calls done once: with the body, inflated if it was
// gzipped, when it was read whole and kept (and inflated whole to at most
// maxRefusalBody bytes), else with nil.
type refusalBody struct {
	io.ReadCloser
	bodies    *bodyBudget
	limit     int64 // that bodies may take, copies included, for a copy to grow
	announced int64 // the Content-Length; -1 unknown
	coding    contentCoding
	done      func(body []byte)
	timer     *time.Timer

	mu      sync.Mutex
	ended   bool
	kept    bool // false once over maxRefusalBody or over budget
	buf     []byte
	read    int64
	charged int64
}

func newRefusalBody(body io.ReadCloser, announced int64, coding contentCoding, bodies *bodyBudget, limit int64, wait time.Duration, done func(body []byte)) *refusalBody {
	b := &refusalBody{ReadCloser: body, bodies: bodies, limit: limit, announced: announced, coding: coding, done: done, kept: true}
	b.timer = time.AfterFunc(wait, func() { b.end(false) })
	return b
}

// Read reads the body on: what it returns is the upstream's, unchanged.
func (b *refusalBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	whole := b.keep(p[:n])
	switch {
	case err == io.EOF, err == nil && whole:
		// Every byte announced is in: the reading is recorded before they
		// are forwarded, as the headers' reading is.
		b.end(true)
	case err != nil:
		b.end(false)
	}
	return n, err
}

// Close closes the body; a body not read to its end is recorded by its
// headers.
func (b *refusalBody) Close() error {
	b.end(false)
	return b.ReadCloser.Close()
}

// keep copies p into the buffer while it is kept, and reports whether the
// body has now delivered every byte it announced.
func (b *refusalBody) keep(p []byte) (whole bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.read += int64(len(p))
	if b.ended || !b.kept || len(p) == 0 {
		return b.announced >= 0 && b.read >= b.announced
	}
	if b.read > maxRefusalBody {
		b.drop()
		return b.announced >= 0 && b.read >= b.announced
	}
	if need := len(b.buf) + len(p); need > cap(b.buf) {
		size := max(int64(firstRefusalBuffer), 2*int64(cap(b.buf)), int64(need))
		if b.announced >= 0 {
			size = min(size, max(b.announced, int64(need)))
		}
		size = min(size, maxRefusalBody)
		if !b.bodies.take(size, b.limit) {
			b.drop()
			return b.announced >= 0 && b.read >= b.announced
		}
		b.charged += size
		b.buf = append(make([]byte, 0, size), b.buf...)
	}
	b.buf = append(b.buf, p...)
	return b.announced >= 0 && b.read >= b.announced
}

// drop stops keeping the body. b.mu is held.
func (b *refusalBody) drop() {
	b.kept, b.buf = false, nil
}

// end calls done, the first time only, and returns the budget's charge.
func (b *refusalBody) end(whole bool) {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	b.ended = true
	b.timer.Stop()
	var body []byte
	if whole && b.kept {
		body = b.buf
	}
	charged := b.charged
	b.buf, b.charged = nil, 0
	b.mu.Unlock()
	if body != nil && b.coding == gzipped {
		body = b.inflate(body, &charged)
	}
	b.done(body)
	b.bodies.give(charged)
}

// inflate returns the body that compressed gzips, read whole, checksum
// and all, into buffers charged to the budget, as is the inflater; nil
// when it is not one intact gzip stream (or several, one after the
// other) of at most maxRefusalBody bytes inflated, or the budget cannot
// take it. charged is added what was charged.
func (b *refusalBody) inflate(compressed []byte, charged *int64) []byte {
	charge := func(n int64) bool {
		if !b.bodies.take(n, b.limit) {
			return false
		}
		*charged += n
		return true
	}
	if !charge(inflaterSize) {
		return nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil
	}
	body, err := readBody(zr, -1, maxRefusalBody, charge)
	if err != nil {
		return nil
	}
	return body
}
