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
func topLevelModel(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	model := ""
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		if name, _ := t.(string); name != "model" {
			if dec.Decode(new(skipValue)) != nil {
				return ""
			}
			continue
		}
		var value json.RawMessage
		if dec.Decode(&value) != nil {
			return ""
		}
		model = ""
		if value[0] == '"' {
			_ = json.Unmarshal(value, &model)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return ""
	}
	if _, err := dec.Token(); err != io.EOF { // and nothing after it
		return ""
	}
	if len(model) > maxModelBytes || !printable(model) {
		return ""
	}
	return model
}

// skipValue reads a JSON value and keeps nothing of it, without copying it.
type skipValue struct{}

func (skipValue) UnmarshalJSON([]byte) error { return nil }

// printable reports whether s is valid UTF-8 without whitespace, control
// characters or other runes that do not print, as a configured model name.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) < 0
}
