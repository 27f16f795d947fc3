package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"

	"github.com/go-kit/log/level"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// knownKey is a configured key as the proxy holds it: its name and the
// SHA-256 digest of its secret, never the secret.
type knownKey struct {
	name   string
	digest [sha256.Size]byte
}

// digests returns the digests of the keys of provider name, reading each
// api_key_file and bearer_token_file now: a key is identified by the
// secret it sends. A key whose secret cannot be read is left out, with a
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
			_, file := k.SecretFile()
			level.Warn(p.logger).Log("msg", "Cannot read a key for the proxy; its requests are treated as unknown keys until a reload reads it",
				"key", k.Name, "file", file, "err", err)
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

// admit says whom a request's key is, as identify does, and whether the
// request may be forwarded: under unknown_keys: reject, only when every key
// it carries to the upstream, in its headers or its query, is configured.
// A request that carries more than one key is recorded under none, since
// the upstream may read any.
func (rt *route) admit(h http.Header, rawQuery, unknownKeys string) (who string, record, admitted bool) {
	key, others := presentedKeys(h, rawQuery, rt.keyHeader)
	who, record, known := rt.identify(key, unknownKeys)
	if unknownKeys == config.UnknownKeysReject {
		for _, other := range others {
			_, _, otherKnown := rt.identify(other, unknownKeys)
			known = known && otherKnown
		}
		if !known {
			return "", false, false
		}
	}
	if len(others) > 0 {
		return "", false, true
	}
	return who, record, true
}

// fingerprint names an unknown key by its digest: "sha256:" and the
// digest's first 12 hex digits.
func fingerprint(digest [sha256.Size]byte) string {
	return config.FingerprintPrefix + hex.EncodeToString(digest[:6])
}

// presentedKeys returns the key the upstream reads from h and any other,
// different keys h would carry to it. Only forwarded headers count: one named
// in Connection is removed on the way, as every hop-by-hop header is, and is
// no identity. The upstream reads its own header (keyHeader) first; any
// other key header a provider or a gateway reads (keyHeaders) may hold a
// key the upstream reads when its own has none, before it (LiteLLM's), or
// as well. A second value of any of them, or a key in another beside one
// in its own, is an other key, which the caller may not ignore: the
// upstream might read it instead. So is any
// value the proxy cannot read as a key (an Authorization not "Bearer <key>")
// and any header an upstream may take for a key header (X_Api_Key, read as
// X-Api-Key by servers that map headers to CGI variables): an upstream
// that parses more loosely than the proxy must find no key it did not check.
// The keys of WebSocket subprotocols come after the headers, and the
// query's key parameters (Gemini's key, Azure's api-key, API Management's
// subscription-key) last.
func presentedKeys(h http.Header, rawQuery, keyHeader string) (key string, others []string) {
	var keys []string
	add := func(k string) {
		if k = strings.TrimSpace(k); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	read := func(name string) {
		if connectionNamed(h, name) {
			return
		}
		for _, v := range h[name] {
			if k := bearer(v); k != "" && bearerHeaders[keyHeaderOf(name)] {
				v = k
			}
			add(v)
		}
	}
	read(keyHeader)
	for _, name := range keyHeaders {
		if name != keyHeader {
			read(name)
		}
	}
	var lookalikes []string
	for name := range h {
		if kh := keyHeaderOf(name); kh != "" && name != kh {
			lookalikes = append(lookalikes, name)
		}
	}
	slices.Sort(lookalikes)
	for _, name := range lookalikes {
		read(name)
	}
	if !connectionNamed(h, "Sec-Websocket-Protocol") {
		for _, k := range subprotocolKeys(h["Sec-Websocket-Protocol"]) {
			add(k)
		}
	}
	for _, k := range queryKeys(rawQuery) {
		add(k)
	}
	if len(keys) == 0 {
		return "", nil
	}
	return keys[0], keys[1:]
}

// keySubprotocol prefixes the key OpenAI's realtime API reads from a
// WebSocket subprotocol, where a browser, which cannot set headers on a
// WebSocket, sends it.
const keySubprotocol = "openai-insecure-api-key."

// subprotocolKeys returns the keys of Sec-WebSocket-Protocol values: the
// rest of each protocol that starts with keySubprotocol, in any case.
func subprotocolKeys(values []string) []string {
	var keys []string
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			if p = textproto.TrimString(p); len(p) > len(keySubprotocol) && strings.EqualFold(p[:len(keySubprotocol)], keySubprotocol) {
				keys = append(keys, p[len(keySubprotocol):])
			}
		}
	}
	return keys
}

// keyParameters are the query parameters, in lower case, that an upstream
// may read a key from: Gemini's key (as its x-goog-api-key header), Azure
// OpenAI's api-key (its realtime API, for clients that cannot set
// headers), and subscription-key, Azure API Management's, the gateway
// often in front of it.
var keyParameters = []string{"key", "api-key", "subscription-key"}

// queryKeys returns the values of a raw query's key parameters, read as
// loosely as an upstream might: pairs split at & or ;, the name in any
// case and with _ for -, and a pair whose name does not unescape counted
// whole, since the upstream may read a key in it.
func queryKeys(rawQuery string) []string {
	var keys []string
	for pair := range strings.FieldsFuncSeq(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		switch {
		case err != nil:
			keys = append(keys, pair)
		case slices.Contains(keyParameters, strings.ToLower(strings.ReplaceAll(name, "_", "-"))):
			if value, err := url.QueryUnescape(rawValue); err == nil {
				rawValue = value
			}
			keys = append(keys, rawValue)
		}
	}
	return keys
}

// keyHeaders are the headers, canonical, that some provider, or a gateway
// in front of one, reads a key from: any of them may reach an upstream
// that reads it. LiteLLM reads X-Litellm-Api-Key before any other, and
// Azure API Management Ocp-Apim-Subscription-Key.
var keyHeaders = []string{"Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "X-Litellm-Api-Key", "Ocp-Apim-Subscription-Key"}

// bearerHeaders are the key headers whose key may follow "Bearer ", as
// LiteLLM's documentation writes x-litellm-api-key.
var bearerHeaders = map[string]bool{"Authorization": true, "X-Litellm-Api-Key": true}

// keyHeaderOf returns the key header that an upstream may read name as,
// one of keyHeaders, or "".
func keyHeaderOf(name string) string {
	canonical := textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(name, "_", "-"))
	if slices.Contains(keyHeaders, canonical) {
		return canonical
	}
	return ""
}

// connectionNamed reports whether a Connection header lists name, a
// canonical header name, which makes it hop-by-hop. It reads the list
// exactly as httputil.ReverseProxy does when it removes those headers
// (textproto.TrimString, then Header.Del's canonical name): a name it
// matched more loosely, with Unicode spaces or case folding, would be a
// key the upstream still receives.
func connectionNamed(h http.Header, name string) bool {
	for _, v := range h["Connection"] {
		for field := range strings.SplitSeq(v, ",") {
			if textproto.CanonicalMIMEHeaderKey(textproto.TrimString(field)) == name {
				return true
			}
		}
	}
	return false
}

// bearer returns the key of an Authorization value "Bearer <key>", the
// scheme in any case, and "" for any other value.
func bearer(v string) string {
	const scheme = "bearer "
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return ""
	}
	return v[len(scheme):]
}
