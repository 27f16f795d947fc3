package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// errTooLarge is a request body above max_request_bytes.
var errTooLarge = errors.New("request body too large")

// readBody reads r's body, refusing one larger than limit bytes before
// reading it if its Content-Length says so, else as soon as it has read
// limit+1 bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if n > limit {
		return nil, errTooLarge
	}
	return buf.Bytes(), err
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
			if len(model) > maxModelBytes || !printable(model) {
				return ""
			}
			return model
		case ',':
			i = skipSpace(body, i+1)
		}
		nameEnd := stringEnd(body, i)
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

// The walkers below expect valid JSON and an index at the start of what
// they walk; each returns the index just past it.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd walks the string that starts at b[i], a double quote.
func stringEnd(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// valueEnd walks the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for ; i < len(b); i++ { // a number, true, false or null
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// printable reports whether s is valid UTF-8 without whitespace, control
// characters or other runes that do not print, as a configured model name.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) < 0
}
