package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"mime"
	"slices"
	"strings"
	"sync"

	"github.com/ratelimit-exporter/ratelimit_exporter/tally"
)

// usageTail is what the proxy keeps of a served JSON body, or of one line
// of an event stream, to find the usage in: its end, where the providers
// put the usage (an OpenAI Responses object has at most some 9 KB of
// metadata after it).
const usageTail = 16 << 10

// maxCompressedUsage bounds the gzipped body the proxy keeps to inflate
// for its usage, as it bounds a refusal's; maxInflatedUsage bounds what
// is inflated of it, which the tail keeps the end of.
const (
	maxCompressedUsage = maxRefusalBody
	maxInflatedUsage   = 1 << 20
)

var tailPool = sync.Pool{New: func() any { return new([usageTail]byte) }}

// inflaters reuses gzip readers: a new one allocates some 41 KB.
var inflaters sync.Pool

// usageKind is where a served body gives its usage.
type usageKind int

const (
	noUsage    usageKind = iota
	jsonUsage            // a JSON body: its top-level usage (or usageMetadata)
	eventUsage           // an event stream: the usage of its data lines, the last of each field
)

// usageKindOf reads a served response's Content-Type.
func usageKindOf(contentType string) usageKind {
	media, _, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
		return noUsage
	case media == "text/event-stream":
		return eventUsage
	case media == "application/json" || strings.HasSuffix(media, "+json"):
		return jsonUsage
	}
	return noUsage
}

// Why the usage of an answer of a key that declares limits was not read:
// the reason label of ratelimit_proxy_usage_unread_total. Its request is
// counted all the same.
const (
	// UnreadBudget: the proxy's body budget (half of
	// max_inflight_request_bytes) had no room for the usage's buffer.
	UnreadBudget = "budget"
	// UnreadEncoding: an encoding the proxy does not inflate (br, zstd,
	// deflate).
	UnreadEncoding = "encoding"
	// UnreadTooLarge: a gzipped body over 64 KiB compressed, or over its
	// bound inflated.
	UnreadTooLarge = "too_large"
)

// usageBody passes a served body on as it is read, unchanged, and reads
// the usage in it: what it keeps is bounded by usageTail, or by
// maxCompressedUsage for a gzipped body, charged to the proxy's body
// budget. When the body ends (EOF, or every byte it announced, before
// they are passed on, so that the usage is counted before the client has
// the whole answer), or is closed first, it calls done once with the
// tokens its usage gave, if it gave any: an event stream cut short gives
// what its events gave before the cut; a JSON body or a gzipped one gives
// nothing unless read whole.
type usageBody struct {
	io.ReadCloser
	scan    usageScanner
	gzipped bool
	done    func(tally.Spent)
	// unread, if set, is told once, at the end, why the usage could not
	// be read whole: one of the Unread reasons.
	unread    func(reason string)
	lost      string // the first such reason
	ended     bool
	announced int64 // the Content-Length; -1 unknown
	read      int64

	// A gzipped body's compressed bytes, while they fit: it is inflated
	// and read once whole.
	compressed []byte
	dropped    bool
}

func newUsageBody(body io.ReadCloser, announced int64, kind usageKind, coding contentCoding, bodies *bodyBudget, limit int64, done func(tally.Spent)) *usageBody {
	return &usageBody{
		ReadCloser: body,
		announced:  announced,
		scan:       usageScanner{stream: kind == eventUsage, bodies: bodies, limit: limit},
		gzipped:    coding == gzipped,
		done:       done,
	}
}

// Read reads the body on: what it returns is the upstream's, unchanged.
func (b *usageBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if !b.ended && n > 0 {
		if b.gzipped {
			b.keepCompressed(p[:n])
		} else {
			b.scan.write(p[:n])
		}
	}
	if err == io.EOF || err == nil && b.announced >= 0 && b.read >= b.announced {
		b.end(true)
	}
	return n, err
}

// Close closes the body; a body not read to its end gives what it gave.
func (b *usageBody) Close() error {
	b.end(false)
	return b.ReadCloser.Close()
}

// keepCompressed adds p to the compressed copy while it fits.
func (b *usageBody) keepCompressed(p []byte) {
	if b.dropped {
		return
	}
	need := len(b.compressed) + len(p)
	if need > maxCompressedUsage {
		b.lose(UnreadTooLarge)
		b.dropCompressed()
		return
	}
	if need > cap(b.compressed) {
		size := min(max(int64(firstRefusalBuffer), 2*int64(cap(b.compressed)), int64(need)), maxCompressedUsage)
		if !b.scan.charge(size) {
			b.lose(UnreadBudget)
			b.dropCompressed()
			return
		}
		b.compressed = append(make([]byte, 0, size), b.compressed...)
	}
	b.compressed = append(b.compressed, p...)
}

func (b *usageBody) dropCompressed() { b.dropped, b.compressed = true, nil }

// lose notes why the usage is not read whole, the first reason only.
func (b *usageBody) lose(reason string) {
	if b.lost == "" {
		b.lost = reason
	}
}

// end reads what is left to read, calls done the first time, and returns
// what was taken of the budget.
func (b *usageBody) end(whole bool) {
	if b.ended {
		return
	}
	b.ended = true
	defer b.scan.release()
	defer func() {
		if b.scan.refused {
			b.lose(UnreadBudget)
		}
		if b.lost != "" && b.unread != nil {
			b.unread(b.lost)
		}
	}()
	if b.gzipped {
		if !whole || b.dropped || !b.inflate() {
			return
		}
	}
	if s, ok := b.scan.end(whole); ok {
		b.done(s)
	}
}

// inflate reads the compressed copy, inflated, into the scanner: false
// when it is not whole gzip, inflates to more than maxInflatedUsage, or
// the budget cannot take the inflater and its buffer.
func (b *usageBody) inflate() bool {
	if !b.scan.charge(inflaterSize + usageTail) {
		b.lose(UnreadBudget)
		return false
	}
	zr, _ := inflaters.Get().(*gzip.Reader)
	if zr == nil {
		zr = new(gzip.Reader)
	}
	defer inflaters.Put(zr)
	if zr.Reset(bytes.NewReader(b.compressed)) != nil {
		return false
	}
	buf := tailPool.Get().(*[usageTail]byte)
	defer tailPool.Put(buf)
	total := 0
	for {
		n, err := zr.Read(buf[:])
		total += n
		if total > maxInflatedUsage {
			b.lose(UnreadTooLarge)
			return false
		}
		b.scan.write(buf[:n])
		switch {
		case err == io.EOF:
			return true
		case err != nil:
			return false
		}
	}
}

// usageScanner finds the usage in a body written to it piece by piece:
// in a JSON body, the top-level usage of its last usageTail bytes; in an
// event stream, the usage of each data line (of its last usageTail bytes),
// each field's last value winning. Its buffer comes from tailPool, charged
// to bodies, only when it needs one: a JSON body at once, an event stream
// for a line that spans two writes, until that line ends.
type usageScanner struct {
	stream  bool
	bodies  *bodyBudget
	limit   int64
	charged int64

	tail    *[usageTail]byte // nil until needed
	written int              // bytes of the body, or line, written to tail
	pos     int              // where tail's next byte goes
	noTail  bool             // the budget refused a tail: the body, or line, is not read
	refused bool             // the budget refused a tail once
	head    [len("data:")]byte
	headLen int // bytes of the line's start in head

	usage usageFields
	found bool
}

func (s *usageScanner) charge(n int64) bool {
	if !s.bodies.take(n, s.limit) {
		return false
	}
	s.charged += n
	return true
}

// release returns the tail and the budget.
func (s *usageScanner) release() {
	if s.tail != nil {
		tailPool.Put(s.tail)
		s.tail = nil
	}
	s.bodies.give(s.charged)
	s.charged = 0
}

func (s *usageScanner) write(p []byte) {
	if !s.stream {
		s.keep(p)
		return
	}
	for len(p) > 0 {
		nl := bytes.IndexByte(p, '\n')
		if nl < 0 {
			s.startLine(p)
			s.keep(p)
			return
		}
		if s.written == 0 && !s.noTail {
			s.startLine(p[:nl])
			s.line(p[:nl]) // whole in p: read where it is
		} else {
			s.startLine(p[:nl])
			s.keep(p[:nl])
			if !s.noTail {
				s.line(s.kept())
			}
		}
		s.written, s.pos, s.headLen, s.noTail = 0, 0, 0, false
		s.returnTail()
		p = p[nl+1:]
	}
}

// returnTail gives a stream's tail back at a line's end: a stream waits
// for the model between events, and holds none while it waits.
func (s *usageScanner) returnTail() {
	if s.tail == nil {
		return
	}
	tailPool.Put(s.tail)
	s.tail = nil
	s.bodies.give(usageTail)
	s.charged -= usageTail
}

// startLine keeps the first bytes of a line, to tell a data line.
func (s *usageScanner) startLine(p []byte) {
	s.headLen += copy(s.head[s.headLen:], p)
}

// keep adds p to the tail, the last usageTail bytes of the body or line.
func (s *usageScanner) keep(p []byte) {
	if s.noTail || len(p) == 0 {
		return
	}
	if s.tail == nil {
		if !s.charge(usageTail) {
			s.noTail, s.refused = true, true
			return
		}
		s.tail = tailPool.Get().(*[usageTail]byte)
	}
	s.written += len(p)
	if len(p) >= usageTail {
		copy(s.tail[:], p[len(p)-usageTail:])
		s.pos = 0
		return
	}
	n := copy(s.tail[s.pos:], p)
	copy(s.tail[:], p[n:])
	s.pos = (s.pos + len(p)) % usageTail
}

// kept returns what the tail holds, in order.
func (s *usageScanner) kept() []byte {
	if s.written <= usageTail {
		return s.tail[:s.written]
	}
	t := s.tail[:]
	slices.Reverse(t[:s.pos])
	slices.Reverse(t[s.pos:])
	slices.Reverse(t)
	s.pos = 0
	return t
}

// line reads one line of an event stream: a data line's usage, if it
// gives one. A line's "\r" is left on it, which JSON takes as space.
func (s *usageScanner) line(b []byte) {
	if s.headLen < len(s.head) || string(s.head[:]) != "data:" || !hasUsageObject(b) {
		return
	}
	if obj := lastUsage(b, false); obj != nil {
		if u, ok := readUsage(obj); ok {
			s.usage.merge(u)
			s.found = true
		}
	}
}

// end reads what the body left unread and returns the tokens its usage
// gave: an event stream's last line, or a JSON body read whole.
func (s *usageScanner) end(whole bool) (tally.Spent, bool) {
	switch {
	case s.stream && s.written > 0 && !s.noTail:
		s.line(s.kept())
	case !s.stream && whole && s.written > 0 && !s.noTail:
		if obj := lastUsage(s.kept(), true); obj != nil {
			if u, ok := readUsage(obj); ok {
				s.usage.merge(u)
				s.found = true
			}
		}
	}
	if !s.found {
		return tally.Spent{}, false
	}
	return s.usage.spent()
}
