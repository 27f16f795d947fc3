package gzipjoin

// The gzip trailer's CRC-32 of the whole text, from the segments' own: the
// CRC of a text A followed by B is CRC(A)·x^(8·len(B)) + CRC(B), modulo
// the CRC's polynomial, in GF(2). Polynomials are in the reflected order
// of hash/crc32's IEEE table: x^0 is the top bit.

const poly = 0xedb88320 // crc32.IEEE, reflected

// mulmod returns a·b modulo poly.
func mulmod(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		// b·x
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
	return p
}

// powers[k] is x^(2^k) modulo poly.
var powers = func() (p [64]uint32) {
	p[0] = 1 << 30 // x
	for k := 1; k < len(p); k++ {
		p[k] = mulmod(p[k-1], p[k-1])
	}
	return p
}()

// xpow8n returns x^(8·n) modulo poly: what moves a CRC past n bytes.
func xpow8n(n int) uint32 {
	r := uint32(1) << 31 // x^0
	for k := 3; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			r = mulmod(r, powers[k])
		}
	}
	return r
}
