// Package admin reads the rate limits that providers' admin APIs say are
// configured, without spending any quota: OpenAI's project rate limits and
// Anthropic's Rate Limits API; and what the organization spent, from
// OpenAI's Costs API and Anthropic's cost report (costs.go). Each limit
// becomes a ratelimit.Observation of Kind Limit, with the resource and
// window of the same limit in the rate-limit headers, so that a limit read
// here and one read from a probe's headers are one series.
//
// A client sends its admin key only to its base URL, never follows a
// redirect (a redirect would carry the key's header to another host), and
// puts neither the key nor any of a body's text in its errors.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// MaxBodyBytes bounds a page's body, as prober.MaxBodyBytes bounds a
// probe's: a longer page is an error, not a truncated list.
const MaxBodyBytes = 1 << 20

// DefaultMaxPages bounds how many pages one List reads.
const DefaultMaxPages = 100

// DefaultMaxLimits bounds the limits one List returns: some ten times what
// a project lists today (a few hundred models, up to six limits each). A
// page is bounded in bytes, not in what it expands to (an Anthropic group
// names many models, each taking every limit), nor are a hundred pages.
const DefaultMaxLimits = 10000

// Limit is one configured limit of one model: an Observation of Kind
// ratelimit.Limit, and where it applies.
type Limit struct {
	// Model is the model the limit applies to; "" for a limit of an API
	// surface rather than a model (Anthropic's batch, files, ... groups).
	Model string
	// Group is the rate-limit group of Anthropic's entry ("model_group",
	// "batch", ...); "" for OpenAI.
	Group string
	// Workspace is the Anthropic workspace of a workspace's limit; "" for
	// the organization's.
	Workspace string
	// Source says, for a workspace's limit, whether the value is the
	// workspace's override ("workspace") or inherited ("organization");
	// "" otherwise.
	Source string
	ratelimit.Observation
}

// Result is what one List read.
type Result struct {
	Limits []Limit
	// Dropped counts values whose field or limiter type the mapping tables
	// do not know, or whose value is not a non-negative number: never
	// guessed into a resource or window.
	Dropped int
	// Pages counts the pages read.
	Pages int
}

// Error is a failed List: which API, which page (from 1), and the HTTP
// status if one came. It holds no key and none of a body's text.
type Error struct {
	API    string // such as "openai project rate limits"
	Page   int
	Status int // 0 when no response came or the failure was not its status
	// RetryAfter is a 429's or 503's Retry-After, 0 when none.
	RetryAfter time.Duration
	// Reason says what failed in words of this package only.
	Reason string
	// Err is the cause, for errors.Is: a transport or context error
	// (stripped of its URL), or one of the sentinels below.
	Err error
}

// Sentinels for errors.Is on an Error.
var (
	ErrTooManyPages  = errors.New("page cap reached")
	ErrTooManyLimits = errors.New("limit cap reached")
	ErrBodyTooLarge  = errors.New("body over the size cap")
	ErrMalformed     = errors.New("malformed body")
	ErrStatus        = errors.New("unexpected status")
)

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: page %d: ", e.API, e.Page)
	if e.Status != 0 {
		s += "HTTP " + strconv.Itoa(e.Status) + ": "
	}
	s += e.Reason
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// noRedirects is client with redirects refused: the 3xx itself comes back.
func noRedirects(c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	copied := *c
	copied.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &copied
}

// getPage sends one GET to u with the headers auth sets and decodes a 200's
// body into v, within MaxBodyBytes.
func getPage(ctx context.Context, c *http.Client, api string, page int, u *url.URL, auth func(http.Header), v any) error {
	fail := func(status int, reason string, err error) error {
		return &Error{API: api, Page: page, Status: status, Reason: reason, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(0, "building the request failed", err)
	}
	req.Header.Set("Accept", "application/json")
	auth(req.Header)
	resp, err := c.Do(req)
	if err != nil {
		// A *url.Error names the URL; the cause alone says what failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail(0, "request failed: "+err.Error(), err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBodyBytes))
		e := &Error{API: api, Page: page, Status: resp.StatusCode, Reason: statusReason(resp.StatusCode), Err: ErrStatus}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			e.RetryAfter = ratelimit.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		return e
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return fail(resp.StatusCode, "reading the body failed", err)
	}
	if len(data) > MaxBodyBytes {
		return fail(resp.StatusCode, fmt.Sprintf("body over %d bytes", MaxBodyBytes), ErrBodyTooLarge)
	}
	if err := json.Unmarshal(data, v); err != nil {
		// json's errors quote none of the input beyond a character.
		return fail(resp.StatusCode, "malformed body", ErrMalformed)
	}
	return nil
}

func statusReason(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "the admin key was refused"
	case http.StatusForbidden:
		return "the admin key may not read this"
	case http.StatusNotFound:
		return "not found"
	case http.StatusTooManyRequests:
		return "rate limited"
	}
	if status >= 300 && status < 400 {
		return "redirect refused"
	}
	return "unexpected status"
}

// tooManyLimits is the error of a List past DefaultMaxLimits at page.
func tooManyLimits(api string, page int) error {
	return &Error{API: api, Page: page, Status: http.StatusOK, Reason: "more than " + strconv.Itoa(DefaultMaxLimits) + " limits", Err: ErrTooManyLimits}
}

// value reads a limit's JSON value: a non-negative number, else ok false
// (null and a missing value included, which json would leave at 0).
func value(raw json.RawMessage) (float64, bool) {
	var f float64
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false
	}
	if err := json.Unmarshal(raw, &f); err != nil || f < 0 {
		return 0, false
	}
	return f, true
}

// MaxModelBytes bounds a model name taken from an admin API, as the proxy
// bounds one taken from a request: a name is a label value on every
// series of its model.
const MaxModelBytes = 256

// modelName reports whether s can be a model's label value: a printable
// name of at most MaxModelBytes bytes. The limits of any other are
// dropped, not made into series.
func modelName(s string) bool {
	return s != "" && len(s) <= MaxModelBytes && config.Printable(s)
}

// resourceWindow is the resource and window a documented field maps to.
type resourceWindow struct{ resource, window string }

// baseURL parses base, or def when base is "".
func baseURL(base, def string) (*url.URL, error) {
	if base == "" {
		base = def
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("admin: base URL must be an absolute http or https URL")
	}
	return u, nil
}
