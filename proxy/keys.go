package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/go-kit/log/level"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
)

// knownKey is a configured key as the proxy holds it: its name and the
// SHA-256 digest of its secret, never the secret.
type knownKey struct {
	name   string
	digest [sha256.Size]byte
}

// digests returns the digests of the keys of provider name, reading each
// api_key_file now. A key whose secret cannot be read is left out, with a
// warning that names its file.
func (p *Proxy) digests(keys []config.Key, name string) []knownKey {
	var known []knownKey
	for i := range keys {
		k := &keys[i]
		if k.Provider != name {
			continue
		}
		secret, err := k.Secret()
		if err != nil {
			// The error names the file and the cause, never the content.
			level.Warn(p.logger).Log("msg", "Cannot read a key for the proxy; its requests are treated as unknown keys until a reload reads it",
				"key", k.Name, "file", k.APIKeyFile, "err", err)
			continue
		}
		known = append(known, knownKey{name: k.Name, digest: sha256.Sum256([]byte(secret.Reveal()))})
	}
	return known
}

// identify says whom a request's key is: the configured key's name, or
// with unknown_keys: fingerprint the digest's first 12 hex digits; record
// reports whether the response is to be recorded. Every configured key of
// the route's provider is compared, in constant time, whichever matches.
func (rt *route) identify(key, unknownKeys string) (who string, record, known bool) {
	if key == "" {
		return "", false, false
	}
	digest := sha256.Sum256([]byte(key))
	match := -1
	for i := range rt.keys {
		if subtle.ConstantTimeCompare(digest[:], rt.keys[i].digest[:]) == 1 && match < 0 {
			match = i
		}
	}
	switch {
	case match >= 0:
		return rt.keys[match].name, true, true
	case unknownKeys == config.UnknownKeysFingerprint:
		return fingerprint(digest), true, false
	}
	return "", false, false
}

// fingerprint names an unknown key by its digest: "sha256:" and the
// digest's first 12 hex digits.
func fingerprint(digest [sha256.Size]byte) string {
	return config.FingerprintPrefix + hex.EncodeToString(digest[:6])
}

// keyHeader is the header in which prov carries a key.
func keyHeader(prov provider.Provider) string {
	h := http.Header{}
	prov.Probe.Authorize(h, "key")
	if h.Get("X-Api-Key") != "" {
		return "X-Api-Key"
	}
	return "Authorization"
}

// presentedKey is the key a request carries, in the provider's header
// first (Authorization: Bearer, or x-api-key), else in the other.
func presentedKey(h http.Header, first string) string {
	if first == "X-Api-Key" {
		if key := apiKey(h); key != "" {
			return key
		}
		return bearer(h)
	}
	if key := bearer(h); key != "" {
		return key
	}
	return apiKey(h)
}

func apiKey(h http.Header) string { return strings.TrimSpace(h.Get("X-Api-Key")) }

// bearer reads "Authorization: Bearer <key>", the scheme in any case.
func bearer(h http.Header) string {
	v := h.Get("Authorization")
	const scheme = "bearer "
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(v[len(scheme):])
}
