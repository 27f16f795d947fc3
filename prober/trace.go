package prober

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"

	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Redacted stands in a probe's log for a value that carries the key.
const Redacted = "<redacted>"

// keyHeaders are the headers that carry a key for some provider, or a
// session: their values are never shown, whatever they hold.
var keyHeaders = []string{"Authorization", "Proxy-Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "Cookie", "Set-Cookie"}

// Exchange is what a probe sent and received, kept by reference to the
// request and the response it already had: the probe's log is rendered
// from it, with the key hidden, only when someone reads it.
type Exchange struct {
	provider       string
	secret         string
	method         string
	url            *url.URL
	requestHeader  http.Header
	requestBody    []byte
	status, proto  string
	responseHeader http.Header
	// omitted counts the response header values beyond maxKeptHeaderBytes.
	omitted int
	sent    bool
}

// maxKeptHeaderBytes bounds the response headers, and maxKeptStatusBytes
// the status line, an exchange keeps: the history keeps the last failure of
// every target, and an upstream may send a megabyte of headers each time.
const (
	maxKeptHeaderBytes = 16 << 10
	maxKeptStatusBytes = 256
)

// keep records the response's status and headers, within
// maxKeptStatusBytes and maxKeptHeaderBytes. Headers that fit are kept as
// they are, uncopied; else a copy keeps those that fit, in name order.
func (ex *Exchange) keep(resp *http.Response) {
	ex.status, ex.proto = resp.Status, resp.Proto
	if len(ex.status) > maxKeptStatusBytes {
		ex.status = strings.ToValidUTF8(ex.status[:maxKeptStatusBytes], "") + "..."
	}
	size := 0
	for name, values := range resp.Header {
		for _, v := range values {
			size += len(name) + len(v)
		}
	}
	if size <= maxKeptHeaderBytes {
		ex.responseHeader = resp.Header
		return
	}
	names := make([]string, 0, len(resp.Header))
	for name := range resp.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	kept, left := http.Header{}, maxKeptHeaderBytes
	for _, name := range names {
		for _, v := range resp.Header[name] {
			if len(name)+len(v) > left {
				ex.omitted++
				continue
			}
			left -= len(name) + len(v)
			kept[name] = append(kept[name], strings.Clone(v))
		}
	}
	ex.responseHeader = kept
}

// Format implements fmt.Formatter: an exchange holds the key, and prints
// as a placeholder whatever the verb.
func (*Exchange) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("<probe exchange>")) }

// WriteTrace logs what the probe of r sent and received, what it read and
// how it ended, each value that carries the key hidden.
func (r *Result) WriteTrace(trace log.Logger) {
	ex := r.Exchange
	if ex == nil {
		ex = &Exchange{}
	}
	redact := redactor{secret: ex.secret}
	if ex.sent {
		trace.Log("msg", "Sending request", "method", ex.method, "url", redact.url(ex.url))
		redact.logHeader(trace, "Request header", ex.requestHeader)
		if ex.requestBody != nil {
			trace.Log("msg", "Request body", "body", redact.value(string(ex.requestBody)))
		}
	} else if r.Outcome == KeyUnavailable {
		trace.Log("msg", "The key could not be read; nothing was sent")
	}
	if ex.responseHeader != nil {
		trace.Log("msg", "Received response", "status", ex.status, "proto", ex.proto)
		redact.logHeader(trace, "Response header", ex.responseHeader)
		if ex.omitted > 0 {
			trace.Log("msg", "Response headers not kept", "count", ex.omitted, "reason", "beyond the "+strconv.Itoa(maxKeptHeaderBytes>>10)+" KiB of headers a probe's log keeps")
		}
		if prov, ok := provider.Lookup(ex.provider); ok && r.Dropped > 0 {
			for _, u := range prov.Parser().Unread(ex.responseHeader, r.Time) {
				trace.Log("msg", "Rate-limit header dropped", "name", redact.name(u.Header), "reason", u.Reason)
			}
		}
	}
	writeReading(trace, &r.Reading)
	keyvals := []any{"msg", "Probe ended", "result", r.Outcome, "duration", r.Duration}
	if r.RetryAfter > 0 {
		keyvals = append(keyvals, "retry_after", r.RetryAfter)
	}
	if r.Cause != "" {
		keyvals = append(keyvals, "cause", r.Cause)
	}
	if r.ErrorCode != "" {
		keyvals = append(keyvals, "error_code", redact.value(r.ErrorCode))
	}
	if r.Err != nil {
		keyvals = append(keyvals, "err", redact.value(r.Err.Error()))
	}
	trace.Log(keyvals...)
}

// WriteReading logs what a response read by the proxy said of the limits.
// The proxy keeps none of the request or response: only the reading.
func WriteReading(trace log.Logger, r *ratelimit.Reading) {
	trace.Log("msg", "Response read by the proxy", "status", r.StatusCode, "at", r.Time.Format(time.RFC3339Nano))
	writeReading(trace, r)
	keyvals := []any{"msg", "Reading ended", "result", ReadingResult(r)}
	if r.RetryAfter > 0 {
		keyvals = append(keyvals, "retry_after", r.RetryAfter)
	}
	if r.Cause != "" {
		keyvals = append(keyvals, "cause", r.Cause)
	}
	trace.Log(keyvals...)
}

// ReadingResult names what a response read by the proxy said: success
// when it gave limits, else the outcome a probe would have had.
func ReadingResult(r *ratelimit.Reading) Outcome {
	switch status := r.StatusCode; {
	case r.Success():
		return Success
	case status == http.StatusTooManyRequests:
		return RateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Unauthorized
	case status >= 200 && status < 300:
		return NoHeaders
	default:
		return HTTPError
	}
}

func writeReading(trace log.Logger, r *ratelimit.Reading) {
	for _, o := range r.Observations {
		trace.Log("msg", "Observation read", "kind", o.Kind, "resource", o.Resource, "window", o.Window, "value", o.Value)
	}
	if r.Dropped > 0 {
		trace.Log("msg", "Rate-limit values dropped", "count", r.Dropped, "reason", "invalid, beyond the "+strconv.Itoa(ratelimit.MaxObservations)+" taken from one response, or the less cautious of two values of one figure")
	}
	if r.Served {
		trace.Log("msg", "Served: no window was empty, and the provider sends no values until one is")
	}
}

// redactor hides the key, and the headers that carry keys, from a probe's log.
type redactor struct{ secret string }

func (r redactor) value(v string) string {
	if r.secret == "" {
		return v
	}
	v = strings.ReplaceAll(v, r.secret, Redacted)
	v = strings.ReplaceAll(v, url.QueryEscape(r.secret), Redacted)
	return strings.ReplaceAll(v, url.PathEscape(r.secret), Redacted)
}

// name hides the key in a header name, whatever its case: Go
// canonicalizes the names of the headers it reads, so a key an upstream
// echoes in a name comes back with its case changed.
func (r redactor) name(name string) string {
	secret := strings.ToLower(r.secret)
	if secret == "" || len(secret) != len(r.secret) {
		return r.value(name)
	}
	lower := strings.ToLower(name)
	if len(lower) != len(name) {
		return r.value(name)
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, secret)
		if i < 0 {
			b.WriteString(name)
			return b.String()
		}
		b.WriteString(name[:i])
		b.WriteString(Redacted)
		name, lower = name[i+len(secret):], lower[i+len(secret):]
	}
}

func (r redactor) url(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	query := c.Query()
	for name, values := range query {
		if strings.EqualFold(name, "key") || strings.EqualFold(name, "api_key") {
			for i := range values {
				values[i] = Redacted
			}
		}
	}
	c.RawQuery = strings.ReplaceAll(query.Encode(), url.QueryEscape(Redacted), Redacted)
	return r.value(c.String())
}

// logHeader logs each header of h, sorted by name, as msg.
func (r redactor) logHeader(trace log.Logger, msg string, h http.Header) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		secret := slices.ContainsFunc(keyHeaders, func(k string) bool { return strings.EqualFold(k, name) })
		for _, v := range h[name] {
			if secret {
				v = Redacted
			}
			trace.Log("msg", msg, "name", r.name(name), "value", r.value(v))
		}
	}
}
