package collector

import (
	"bytes"
	"slices"
	"strings"
	"sync"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/gzipjoin"
)

// blockTargets is how many targets' text is compressed together, family
// by family. Compressed alone, one target's text of a family takes about 7
// times what it takes in the whole text compressed at once; 64 targets
// together take 1.35 times, 32 take 1.44 times. A block is rendered and
// compressed again for a change in any one of its targets. (1,000 keys × 3 models of Cerebras'
// 18 headers; see BENCHMARKS.md, issue 22.)
const blockTargets = 64

// block holds the text of up to blockTargets consecutive targets of
// c.order, compressed family by family.
type block struct {
	members []*state
	// text is the block's text of each family, compressed; the array is
	// replaced whole under c.mu, never changed in place.
	text     [numFamilies]gzipjoin.Segment
	rendered bool // text was rendered at least once
}

// headers returns the HELP and TYPE lines of each family, as text and
// compressed.
var headers = sync.OnceValue(func() gzipjoin.Body {
	h := make(gzipjoin.Body, numFamilies)
	for f, fam := range families {
		h[f] = gzipjoin.Text([]byte("# HELP " + fam.name + " " + fam.help + "\n# TYPE " + fam.name + " " + strings.ToLower(fam.typ.String()) + "\n"))
	}
	h.Compress()
	return h
})

// AppendBody appends every target's metrics in the text exposition format
// to b, as segments compressed family by family when a scrape first needed
// them: blocks whose targets changed since are rendered and compressed
// again first. The segments are never changed: a scraper that reads
// slowly, or not at all, delays nothing but its own response.
func (c *Collector) AppendBody(b gzipjoin.Body) gzipjoin.Body {
	wanted := func(family) bool { return true }
	if c.split.Load() {
		wanted = func(f family) bool { return !probeGauge[f] }
	}
	c.update.Lock()
	defer c.update.Unlock()
	c.refreshBlocks()
	c.mu.RLock()
	if !c.relayout {
		defer c.mu.RUnlock()
		return c.appendBodyLocked(b, wanted)
	}
	c.mu.RUnlock()
	// A reload, or a target that came or left, changed c.order while
	// blocks were rendered: lay them out and render them again holding
	// c.mu, so that no further change comes between, rather than serve
	// the targets of another config, or render again for ever while
	// reloads follow each other.
	c.mu.Lock()
	defer c.mu.Unlock()
	values := make([]string, 0, 16)
	for _, blk := range c.dirtyBlocksLocked() {
		blk.text, blk.rendered = compressFamilies(c.renderLocked(blk, values)), true
	}
	return c.appendBodyLocked(b, wanted)
}

func (c *Collector) appendBodyLocked(body gzipjoin.Body, wanted func(family) bool) gzipjoin.Body {
	n := 0
	for _, b := range c.blocks {
		for f := range numFamilies {
			if b.text[f].Len() > 0 {
				n++
			}
		}
	}
	body = slices.Grow(body, n+int(numFamilies))
	h := headers()
	for f := range numFamilies {
		if !wanted(f) {
			continue
		}
		start := len(body)
		body = append(body, h[f])
		for _, b := range c.blocks {
			if b.text[f].Len() > 0 {
				body = append(body, b.text[f])
			}
		}
		if len(body) == start+1 {
			body = body[:start] // no samples: no HELP or TYPE either
		}
	}
	return body
}

// refreshBlocks lays the targets out in blocks anew if c.order changed,
// then renders and compresses the blocks with a stale target. It holds
// c.mu while it renders each block, not while it compresses: a probe's
// result waits for one block's render at most.
func (c *Collector) refreshBlocks() {
	c.mu.Lock()
	dirty := c.dirtyBlocksLocked()
	c.mu.Unlock()
	values := make([]string, 0, 16)
	for _, b := range dirty {
		text := compressFamilies(c.render(b, values))
		c.mu.Lock()
		b.text, b.rendered = text, true
		c.mu.Unlock()
		if testHookBlockRendered != nil {
			testHookBlockRendered()
		}
	}
}

// dirtyBlocksLocked lays the targets out in blocks anew if c.order
// changed, and returns the blocks with a stale target, or never rendered.
func (c *Collector) dirtyBlocksLocked() []*block {
	if c.relayout {
		c.layOut()
	}
	var dirty []*block
	if c.stale {
		for _, b := range c.blocks {
			if !b.rendered || slices.ContainsFunc(b.members, func(s *state) bool { return s.stale }) {
				dirty = append(dirty, b)
			}
		}
		c.stale = false
	}
	return dirty
}

// render is renderLocked holding c.mu.
func (c *Collector) render(b *block, values []string) (text []byte, offsets [numFamilies + 1]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.renderLocked(b, values)
}

// renderLocked renders b's text family by family, in c.scratch: family f
// is text[offsets[f]:offsets[f+1]]. Its targets are then no longer stale.
func (c *Collector) renderLocked(b *block, values []string) (text []byte, offsets [numFamilies + 1]int) {
	buf := c.scratch[:0]
	for f := range numFamilies {
		offsets[f] = len(buf)
		for _, s := range b.members {
			buf = s.appendFamily(buf, f, values)
		}
	}
	offsets[numFamilies] = len(buf)
	for _, s := range b.members {
		s.stale = false
	}
	c.scratch = buf
	return buf, offsets
}

// compressFamilies compresses each family's text of a block.
func compressFamilies(text []byte, offsets [numFamilies + 1]int) (segments [numFamilies]gzipjoin.Segment) {
	for f := range numFamilies {
		segments[f] = gzipjoin.Compress(text[offsets[f]:offsets[f+1]])
	}
	return segments
}

// testHookBlockRendered, if not nil, is called after each block is
// rendered, c.mu not held.
var testHookBlockRendered func()

// layOut makes blocks of c.order, keeping a block, and its text, where
// its targets are the same.
func (c *Collector) layOut() {
	blocks := make([]*block, 0, (len(c.order)+blockTargets-1)/blockTargets)
	for i := 0; i < len(c.order); i += blockTargets {
		members := make([]*state, 0, blockTargets)
		for _, id := range c.order[i:min(i+blockTargets, len(c.order))] {
			members = append(members, c.targets[id])
		}
		if n := len(blocks); n < len(c.blocks) && slices.Equal(c.blocks[n].members, members) {
			blocks = append(blocks, c.blocks[n])
			continue
		}
		blocks = append(blocks, &block{members: members})
		c.stale = true
	}
	c.blocks, c.relayout = blocks, false
}

// AppendTargetBody appends the metrics of the target id alone to b,
// rendered now, not compressed; nothing if id is not a target.
func (c *Collector) AppendTargetBody(body gzipjoin.Body, id config.TargetID) gzipjoin.Body {
	wanted := func(family) bool { return true }
	if c.split.Load() {
		wanted = func(f family) bool { return probeGauge[f] }
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := c.targets[id]
	if s == nil {
		return body
	}
	values := make([]string, 0, 16)
	scratch := renderBuffers.Get().(*[]byte)
	defer renderBuffers.Put(scratch)
	buf := (*scratch)[:0]
	var offsets [numFamilies + 1]int
	for f := range numFamilies {
		offsets[f] = len(buf)
		if wanted(f) {
			buf = s.appendFamily(buf, f, values)
		}
	}
	offsets[numFamilies] = len(buf)
	*scratch = buf
	text := bytes.Clone(buf) // what a /probe allocates: its own text, once
	h := headers()
	body = slices.Grow(body, 2*int(numFamilies))
	for f := range numFamilies {
		if offsets[f] < offsets[f+1] {
			body = append(body, h[f], gzipjoin.Text(text[offsets[f]:offsets[f+1]:offsets[f+1]]))
		}
	}
	return body
}

// renderBuffers are the buffers /probe renders its target's text in.
var renderBuffers = sync.Pool{New: func() any { return new([]byte) }}

// appendFamily appends the target's samples of family f.
func (s *state) appendFamily(buf []byte, f family, values []string) []byte {
	s.each(f, values, func(labelValues []string, v float64) {
		buf = appendSample(buf, families[f].name, s.descs.names[f], s.descs.sorted[f], labelValues, v)
	})
	return buf
}
