// Package gzipjoin holds text as deflate segments, each compressed alone
// and ended on a byte boundary, and joins any sequence of them into one
// gzip member. A response made of segments compressed in advance copies
// their bytes: only the trailer's checksum is computed, from the
// segments' own, and a client that does not take gzip gets the text
// inflated.
package gzipjoin

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Segment is a piece of text: compressed alone (Compress), or not yet
// (Text).
type Segment struct {
	text     []byte // nil when the segment holds only its compressed bytes
	deflated []byte // nil until compressed
	size     int
	crc      uint32 // of the text
	shift    uint32 // x^(8·size) mod the CRC's polynomial: moves a checksum past the text
}

// Text returns a segment of text that is compressed only if a gzip
// response needs it (Body.Compress). The segment keeps text, which must
// not change.
func Text(text []byte) Segment { return Segment{text: text, size: len(text)} }

// Len is the length of the segment's text.
func (s Segment) Len() int { return s.size }

// Compress returns text compressed alone, in a segment that holds only
// the compressed bytes; text may be reused after. It keeps no state
// between calls: each segment's compressor starts afresh anyway, and a
// block of text of some kilobytes compresses as well without a window
// that outlives it.
func Compress(text []byte) Segment {
	if len(text) == 0 {
		return Segment{}
	}
	buf := buffers.Get().(*bytes.Buffer)
	defer buffers.Put(buf)
	buf.Reset()
	// Not the end of the stream: the segment ends on a byte boundary,
	// with an empty stored block, and segments join. Writes to a
	// bytes.Buffer do not fail.
	_ = flate.StatelessDeflate(buf, text, false, nil)
	return Segment{deflated: bytes.Clone(buf.Bytes()), size: len(text), crc: crc32.ChecksumIEEE(text), shift: xpow8n(len(text))}
}

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Body is a response made of segments, in order.
type Body []Segment

// Len is the length of the body's text.
func (b Body) Len() int {
	n := 0
	for _, s := range b {
		n += s.size
	}
	return n
}

// Compress compresses, in place, the segments that are not compressed yet.
func (b Body) Compress() {
	for i, s := range b {
		if s.deflated == nil && s.size > 0 {
			b[i] = Compress(s.text)
			b[i].text = s.text
		}
	}
}

// The gzip member's header: no name, no time, no flags; OS unknown.
var header = [10]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// final is a final deflate block that is empty: fixed codes, then the
// end-of-block code.
var final = [2]byte{0x03, 0x00}

// GzipLen is the length of the body as one gzip member. Every segment
// must be compressed (Compress).
func (b Body) GzipLen() int {
	n := len(header) + len(final) + 8
	for _, s := range b {
		n += len(s.deflated)
	}
	return n
}

// writeBuffers keep the writes to a connection large and few: segments
// are some hundred bytes each, and inflating gives 32 KiB at a time. Each
// write to a socket may wake its reader.
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}

const writeBufferSize = 256 << 10

// buffered returns w buffered for size bytes, and the function that
// flushes it and gives the buffer back. A body smaller than a pooled
// buffer gets a buffer of its own size: a /probe writes some kilobytes,
// many times a second, and a pool may be emptied by any collection.
func buffered(w io.Writer, size int) (*bufio.Writer, func() error) {
	if size < writeBufferSize {
		bw := bufio.NewWriterSize(w, size)
		return bw, bw.Flush
	}
	bw := writeBuffers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw, func() error {
		err := bw.Flush()
		bw.Reset(nil)
		writeBuffers.Put(bw)
		return err
	}
}

// WriteGzip writes the body as one gzip member. Every segment must be
// compressed (Compress).
func (b Body) WriteGzip(w io.Writer) error {
	bw, done := buffered(w, b.GzipLen())
	var sum uint32
	size := 0
	bw.Write(header[:])
	for _, s := range b {
		if s.size == 0 {
			continue
		}
		if s.deflated == nil {
			panic("gzipjoin: WriteGzip of a segment that is not compressed")
		}
		bw.Write(s.deflated)
		sum = mulmod(sum, s.shift) ^ s.crc
		size += s.size
	}
	bw.Write(final[:])
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], sum)
	binary.LittleEndian.PutUint32(trailer[4:], uint32(size)) // ISIZE is the size modulo 2³²
	bw.Write(trailer[:])
	return done()
}

// inflater is a deflate reader with the buffered source it reads from:
// the deflate reader reads a *bufio.Reader without a copy of its own.
type inflater struct {
	src  joined
	buf  *bufio.Reader
	read io.ReadCloser
}

var inflaters = sync.Pool{New: func() any {
	i := &inflater{}
	i.buf = bufio.NewReaderSize(&i.src, 32<<10)
	i.read = flate.NewReader(i.buf)
	return i
}}

// WriteText writes the body's text: the text that compressed segments
// inflate to, and the others' own.
func (b Body) WriteText(w io.Writer) error {
	bw, done := buffered(w, b.Len())
	if err := b.writeText(bw); err != nil {
		_ = done()
		return err
	}
	return done()
}

func (b Body) writeText(w io.Writer) error {
	for len(b) > 0 {
		if b[0].text != nil || b[0].size == 0 {
			// A segment that keeps its text is written as it is: a
			// /probe's text is some headers' and its own.
			if _, err := w.Write(b[0].text); err != nil {
				return err
			}
			b = b[1:]
			continue
		}
		// Inflate the run of segments held only compressed as one
		// stream: they join.
		n := 1
		for n < len(b) && b[n].text == nil {
			n++
		}
		if err := inflate(w, b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func inflate(w io.Writer, run Body) error {
	i := inflaters.Get().(*inflater)
	defer func() {
		i.src = joined{}
		inflaters.Put(i)
	}()
	i.src = joined{segments: run, tail: final[:]}
	i.buf.Reset(&i.src)
	if err := i.read.(flate.Resetter).Reset(i.buf, nil); err != nil {
		return err
	}
	_, err := io.Copy(w, i.read)
	return err
}

// joined reads the compressed bytes of segments, then tail.
type joined struct {
	segments Body
	off      int
	tail     []byte
}

func (j *joined) Read(p []byte) (int, error) {
	for len(j.segments) > 0 && j.off == len(j.segments[0].deflated) {
		j.segments, j.off = j.segments[1:], 0
	}
	if len(j.segments) == 0 {
		if len(j.tail) == 0 {
			return 0, io.EOF
		}
		n := copy(p, j.tail)
		j.tail = j.tail[n:]
		return n, nil
	}
	n := copy(p, j.segments[0].deflated[j.off:])
	j.off += n
	return n, nil
}
