package prober

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-kit/log"

	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Redacted stands in a probe's log for a value that carries the key.
const Redacted = "<redacted>"

// keyHeaders are the headers that carry a key for some provider: their
// values are never logged, whatever they hold.
var keyHeaders = []string{"Authorization", "Proxy-Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "Cookie", "Set-Cookie"}

type traceKey struct{}

// WithTrace returns ctx with logger as the trace of the probe sent with
// it: the request, the response and what was read of it, for /probe?debug=true.
func WithTrace(ctx context.Context, logger log.Logger) context.Context {
	return context.WithValue(ctx, traceKey{}, logger)
}

// traceOf returns ctx's trace logger; a no-op when there is none.
func traceOf(ctx context.Context) log.Logger {
	if logger, ok := ctx.Value(traceKey{}).(log.Logger); ok {
		return logger
	}
	return log.NewNopLogger()
}

// redactor hides the key, and the headers that carry keys, from a probe's log.
type redactor struct{ secret string }

func (r redactor) value(v string) string {
	if r.secret == "" {
		return v
	}
	return strings.ReplaceAll(v, r.secret, Redacted)
}

func (r redactor) url(u *url.URL) string {
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
	v := r.value(c.String())
	if r.secret != "" {
		v = strings.ReplaceAll(v, url.QueryEscape(r.secret), Redacted)
		v = strings.ReplaceAll(v, url.PathEscape(r.secret), Redacted)
	}
	return v
}

// logHeader logs each header of h, sorted by name, as msg.
func (r redactor) logHeader(trace log.Logger, msg string, h http.Header) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range h[name] {
			if slices.ContainsFunc(keyHeaders, func(k string) bool { return strings.EqualFold(k, name) }) {
				v = Redacted
			}
			trace.Log("msg", msg, "name", name, "value", r.value(v))
		}
	}
}

// logResult logs what a probe read and its outcome.
func (rd redactor) logResult(trace log.Logger, r *Result) {
	for _, o := range r.Observations {
		trace.Log("msg", "Observation read", "kind", o.Kind, "resource", o.Resource, "window", o.Window, "value", o.Value)
	}
	if r.Dropped > 0 {
		trace.Log("msg", "Rate-limit values dropped", "count", r.Dropped, "reason", "invalid, beyond the "+strconv.Itoa(ratelimit.MaxObservations)+" taken from one response, or the less cautious of two values of one figure")
	}
	if r.Served {
		trace.Log("msg", "Served: no window was empty, and the provider sends no values until one is")
	}
	keyvals := []any{"msg", "Probe ended", "result", r.Outcome, "duration", r.Duration}
	if r.RetryAfter > 0 {
		keyvals = append(keyvals, "retry_after", r.RetryAfter)
	}
	if r.Cause != "" {
		keyvals = append(keyvals, "cause", r.Cause)
	}
	if r.Err != nil {
		keyvals = append(keyvals, "err", rd.value(r.Err.Error()))
	}
	trace.Log(keyvals...)
}
