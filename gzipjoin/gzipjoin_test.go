package gzipjoin

import (
	"bytes"
	"compress/gzip"
	"hash/crc32"
	"io"
	"math/rand"
	"runtime"
	"strings"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

func TestXpow8nMovesACRCPastText(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 2, 3, 7, 8, 255, 256, 4096, 65537, 1 << 20} {
		a, b := make([]byte, rng.Intn(300)), make([]byte, n)
		rng.Read(a)
		rng.Read(b)
		got := mulmod(crc32.ChecksumIEEE(a), xpow8n(len(b))) ^ crc32.ChecksumIEEE(b)
		if want := crc32.ChecksumIEEE(append(a, b...)); got != want {
			t.Errorf("len(b) %d: combined CRC %08x, want %08x", n, got, want)
		}
	}
}

// body splits text into segments of every kind: compressed, plain text
// compressed on the way, and empty.
func body(t *testing.T, text string, cuts []int) Body {
	t.Helper()
	var b Body
	last := 0
	for i, cut := range append(cuts, len(text)) {
		piece := []byte(text[last:cut])
		last = cut
		switch i % 3 {
		case 0:
			b = append(b, Compress(piece))
		case 1:
			b = append(b, Text(piece))
		default:
			b = append(b, Compress(piece), Segment{})
		}
	}
	return b
}

func check(t *testing.T, b Body, text string) {
	t.Helper()
	var plain bytes.Buffer
	if err := b.WriteText(&plain); err != nil {
		t.Fatal(err)
	}
	if plain.String() != text || b.Len() != len(text) {
		t.Fatalf("WriteText wrote %d bytes (Len %d), want the %d of the text", plain.Len(), b.Len(), len(text))
	}
	b.Compress()
	var gz bytes.Buffer
	if err := b.WriteGzip(&gz); err != nil {
		t.Fatal(err)
	}
	if gz.Len() != b.GzipLen() {
		t.Fatalf("WriteGzip wrote %d bytes, GzipLen says %d", gz.Len(), b.GzipLen())
	}
	// compress/gzip checks the trailer's CRC and size, and that nothing
	// follows the member.
	r, err := gzip.NewReader(bytes.NewReader(gz.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	r.Multistream(false)
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("gzip member does not read back: %v", err)
	}
	if string(got) != text {
		t.Fatalf("gzip member inflates to %d bytes, want the %d of the text", len(got), len(text))
	}
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the member: %v, want EOF", err)
	}
}

func TestBodyJoinsSegments(t *testing.T) {
	text := strings.Repeat(`ratelimit_remaining{key="key-0001",model="llama3.1-8b",provider="cerebras",window="minute"} 14399`+"\n", 500)
	for _, cuts := range [][]int{nil, {0}, {1, 2, 3}, {100, 5000, 5001, 40000}, {len(text)}} {
		check(t, body(t, text, cuts), text)
	}
	check(t, nil, "")
	check(t, Body{Segment{}, Text(nil)}, "")
}

func TestGNUGzipReadsTheMember(t *testing.T) {
	text := strings.Repeat("a line of text, then numbers 0123456789\n", 3000)
	b := body(t, text, []int{10, 20000, 20001, 70000})
	b.Compress()
	var gz bytes.Buffer
	if err := b.WriteGzip(&gz); err != nil {
		t.Fatal(err)
	}
	if out := testkit.GNUGunzip(t, gz.Bytes()); out != text {
		t.Fatalf("gzip -dc wrote %d bytes, want the %d of the text", len(out), len(text))
	}
}

func FuzzBody(f *testing.F) {
	f.Add([]byte("ratelimit_remaining 1\n"), uint16(3), uint16(9))
	f.Fuzz(func(t *testing.T, text []byte, a, b uint16) {
		cuts := []int{int(a) % (len(text) + 1), int(b) % (len(text) + 1)}
		if cuts[0] > cuts[1] {
			cuts[0], cuts[1] = cuts[1], cuts[0]
		}
		check(t, body(t, string(text), cuts), string(text))
	})
}

// A segment that keeps its text is written from it, not inflated: a
// /probe's body is headers compressed once and its own text, and
// inflating each header would take an inflater per family.
func TestWriteTextWritesTextKept(t *testing.T) {
	header := Compress([]byte("# HELP x y\n# TYPE x gauge\n"))
	header.text = []byte("# HELP x y\n# TYPE x gauge\n")
	header.deflated = []byte{0xff, 0xff} // not deflate: inflating it fails
	var out bytes.Buffer
	if err := (Body{header, Text([]byte("x 1\n"))}).WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if want := "# HELP x y\n# TYPE x gauge\nx 1\n"; out.String() != want {
		t.Fatalf("WriteText wrote %q, want %q", out.String(), want)
	}
}

// A body smaller than a pooled write buffer is written through a buffer
// of its own size: a /probe allocates about its text, not 256 KiB.
func TestWriteSmallBodyAllocatesItsSize(t *testing.T) {
	b := Body{Text(bytes.Repeat([]byte("x 1\n"), 2000))}
	for name, write := range map[string]func() error{
		"text": func() error { return b.WriteText(io.Discard) },
		"gzip": func() error { b.Compress(); return b.WriteGzip(io.Discard) },
	} {
		_ = write()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 20
		for range runs {
			if err := write(); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 2*uint64(b.Len()) {
			t.Errorf("%s: writing %d bytes of text allocates %d bytes", name, b.Len(), per)
		}
	}
}
