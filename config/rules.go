package config

import (
	"errors"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The errors of CheckHTTPURL. They carry no URL, which may hold a password:
// the caller says which setting is wrong and how much of the value to show.
var (
	ErrNotHTTPURL = errors.New("is not an absolute http(s) URL")
	ErrURLExtras  = errors.New("must not carry user info, a query or a fragment")
)

// CheckHTTPURL parses raw as the address of an HTTP service: an absolute
// http or https URL with a host, and without user info, query or fragment,
// which a path appended to it would misplace or leak.
func CheckHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, ErrNotHTTPURL
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, ErrURLExtras
	}
	return u, nil
}

// Printable reports whether s is valid UTF-8 without whitespace, control
// characters or other runes that do not print, as a model name must be:
// such a name goes into labels and log lines as it is.
func Printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) })
}
