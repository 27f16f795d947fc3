package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// errTooLarge is a request body above max_request_bytes.
var errTooLarge = errors.New("request body too large")

// errOverloaded is a request body that would take the bodies in flight
// over max_inflight_request_bytes.
var errOverloaded = errors.New("request bodies in flight over budget")

// firstBodyBuffer is the buffer a body starts in, whatever length it
// announces: memory follows the bytes that arrive, never the announcement.
const firstBodyBuffer = 4 << 10

// requestOverhead is charged to the budget for each request whose body is
// awaited, besides its buffers: what its goroutine, request and stream
// take (10 to 15 KiB measured, for an HTTP/2 stream as for an HTTP/1
// connection), so that requests that announce a body and send none cannot
// hold more than the budget between them, however many streams they use.
const requestOverhead = 16 << 10

// bodyBudget is the memory of the request bodies the proxy holds: charged
// as their buffers grow, returned when their requests are done. A charge
// over the budget fails at once rather than wait, so nothing can deadlock
// on it.
type bodyBudget struct{ used atomic.Int64 }

func (b *bodyBudget) take(n, limit int64) bool {
	for {
		used := b.used.Load()
		if used+n > limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *bodyBudget) give(n int64) { b.used.Add(-n) }

// receive reads r's body, within s.bodyReadTimeout, charging its buffer
// to p.bodies. release returns the charge: call it once the body is no
// longer held, errors included.
func (p *Proxy) receive(w http.ResponseWriter, r *http.Request, s *state) (body []byte, release func(), err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, func() {}, nil
	}
	rc := http.NewResponseController(w)
	// A connection that cannot take a deadline still has the server's
	// header timeout; the body is then bounded by the budget alone.
	_ = rc.SetReadDeadline(time.Now().Add(s.bodyReadTimeout))
	var charged int64
	release = func() { p.bodies.give(charged) }
	switch {
	case r.ContentLength > s.maxRequestBytes:
		err = errTooLarge
	case !p.bodies.take(requestOverhead, s.maxInflightRequestBytes):
		err = errOverloaded
	default:
		charged = requestOverhead
		body, err = readBody(r.Body, r.ContentLength, s.maxRequestBytes, func(n int64) bool {
			if !p.bodies.take(n, s.maxInflightRequestBytes) {
				return false
			}
			charged += n
			return true
		})
	}
	if err != nil {
		// The rest of the body stays unread, so an HTTP/1 connection can
		// carry no further request (HTTP/2 resets just the stream); the
		// deadline stays, to bound what net/http discards of it.
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		return nil, release, err
	}
	// The response may stream for minutes. net/http lifts the deadline
	// itself once an HTTP/1 body ends; this does not rely on it.
	_ = rc.SetReadDeadline(time.Time{})
	return body, release, nil
}

// readBody reads a body of the announced length (-1: unknown) into a
// buffer that starts at firstBodyBuffer at most and doubles as it fills,
// never past the announced length while the body keeps to it; it refuses a
// body over limit bytes as soon as it has read limit+1. Each buffer is
// charged whole before it is made: the one it replaces stays in memory
// until a collection, so a body is charged what it allocated, about twice
// its length, not its last buffer alone.
func readBody(body io.Reader, announced, limit int64, charge func(n int64) bool) ([]byte, error) {
	size := min(firstBodyBuffer, limit)
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) == limit {
				return buf, endsHere(body)
			}
			if len(buf) > 0 {
				size = min(2*int64(cap(buf)), limit)
			}
			if announced >= 0 && int64(len(buf)) <= announced {
				size = min(size, announced+1) // room to read the end of the body
			}
			if !charge(size) {
				return nil, errOverloaded
			}
			buf = append(make([]byte, 0, size), buf...)
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}

// endsHere reads what follows a body of the largest size allowed: nothing,
// or the body is too large.
func endsHere(body io.Reader) error {
	var next [1]byte
	n, err := io.ReadAtLeast(body, next[:], 1)
	switch {
	case n > 0:
		return errTooLarge
	case err == io.EOF:
		return nil
	}
	return err
}

// setBody makes body, read whole, the body r sends on: with its length
// known, and replayable should the transport retry on a fresh connection.
func setBody(r *http.Request, body []byte) {
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		r.Body, r.GetBody = http.NoBody, nil
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}

// maxModelBytes bounds the model name the proxy reports.
const maxModelBytes = 256

// topLevelModel returns the "model" member of a JSON object, as the
// upstream reads it: the last one when the name is repeated, a string, in
// a body that is one valid JSON object. Anything else, or a model name that
// is longer than maxModelBytes or not printable, gives "". Nested "model"
// members are not looked at.
//
// It runs on every request that is recorded, so it walks the bytes once
// json.Valid has vouched for them rather than decoding token by token,
// which costs several times as much on a long conversation.
func topLevelModel(body []byte) string {
	if !json.Valid(body) {
		return ""
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return ""
	}
	i++
	model := ""
	for {
		i = skipSpace(body, i)
		switch body[i] {
		case '}':
			if len(model) > maxModelBytes || !config.Printable(model) {
				return ""
			}
			return model
		case ',':
			i = skipSpace(body, i+1)
		}
		nameEnd := valueEnd(body, i)
		name := body[i:nameEnd]
		i = skipSpace(body, nameEnd) + 1 // the colon
		i = skipSpace(body, i)
		valueEnd := valueEnd(body, i)
		if isModelName(name) {
			model = ""
			if body[i] == '"' {
				_ = json.Unmarshal(body[i:valueEnd], &model)
			}
		}
		i = valueEnd
	}
}

// isModelName reports whether the quoted member name reads "model",
// escapes and all.
func isModelName(quoted []byte) bool {
	if string(quoted) == `"model"` {
		return true
	}
	if bytes.IndexByte(quoted, '\\') < 0 {
		return false
	}
	var name string
	return json.Unmarshal(quoted, &name) == nil && name == "model"
}

// skipSpace returns the index of the first byte from i that is not JSON
// white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
