package adminpoll

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/admin"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// The APIs an admin source reads, the api label.
const (
	APIRateLimits = "rate_limits"
	APICosts      = "costs"
)

type api int

const (
	apiRateLimits api = iota
	apiCosts
	numAPIs
)

var apiNames = [numAPIs]string{apiRateLimits: APIRateLimits, apiCosts: APICosts}

// The results of an admin API request, the result label of
// ratelimit_admin_requests_total.
const (
	ResultSuccess         = "success"
	ResultUnauthorized    = "unauthorized"     // 401 or 403
	ResultRateLimited     = "rate_limited"     // 429
	ResultHTTPError       = "http_error"       // any other status, redirects included
	ResultTimeout         = "timeout"          // no answer within requestTimeout
	ResultNetworkError    = "network_error"    // no answer for another reason
	ResultInvalidResponse = "invalid_response" // malformed, too large, or too many pages or limits
	ResultKeyUnavailable  = "key_unavailable"  // admin_key_file could not be read: nothing was sent
)

// Results lists every result, in the order metrics show them.
var Results = []string{ResultSuccess, ResultUnauthorized, ResultRateLimited, ResultHTTPError, ResultTimeout,
	ResultNetworkError, ResultInvalidResponse, ResultKeyUnavailable}

// requestTimeout bounds one read of one API: every page of a project's or
// workspace's limits, or of a month's costs.
const requestTimeout = 2 * time.Minute

// reader reads one admin source's APIs.
type reader interface {
	limits(ctx context.Context, scope string) (admin.Result, error)
	costs(ctx context.Context, since time.Time) (admin.CostResult, error)
}

// adminReader reads them with the admin package's clients.
type adminReader struct {
	provider string
	baseURL  string // "": the admin client's documented host
	key      func() (config.Secret, error)
	client   *http.Client
}

// keyError is an admin key that could not be read; it names the file, never
// its content.
type keyError struct{ err error }

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

func (r *adminReader) limits(ctx context.Context, scope string) (admin.Result, error) {
	key, err := r.key()
	if err != nil {
		return admin.Result{}, &keyError{err}
	}
	if r.provider == config.AdminOpenAI {
		return (&admin.OpenAI{Key: key, ProjectID: scope, BaseURL: r.baseURL, Client: r.client}).List(ctx)
	}
	// A workspace's own overrides are not all its limits: the values it
	// inherits from the organization apply to it as well, and only
	// include_inherited=true lists them
	// (https://platform.claude.com/docs/en/api/go/organization/workspaces/rate_limits).
	return (&admin.Anthropic{Key: key, Workspace: scope, IncludeInherited: true, BaseURL: r.baseURL, Client: r.client}).List(ctx)
}

func (r *adminReader) costs(ctx context.Context, since time.Time) (admin.CostResult, error) {
	key, err := r.key()
	if err != nil {
		return admin.CostResult{}, &keyError{err}
	}
	if r.provider == config.AdminOpenAI {
		return (&admin.OpenAI{Key: key, BaseURL: r.baseURL, Client: r.client}).Costs(ctx, since)
	}
	return (&admin.Anthropic{Key: key, BaseURL: r.baseURL, Client: r.client}).Costs(ctx, since)
}

// windowsByModel groups limits into windows per model. A limit of no model
// (an Anthropic group of an API surface: batch, files, web_search, ...)
// is left out: no target is its. A model group names several models, each
// of which takes the group's windows; where two entries give one model's
// window, the lower limit is kept, as the stricter one binds.
func windowsByModel(limits []admin.Limit) map[string][]ratelimit.Window {
	byModel := map[string][]ratelimit.Window{}
	li := ratelimit.KindIndex[ratelimit.Limit]
	for _, l := range limits {
		if l.Model == "" || l.Kind != ratelimit.Limit {
			continue
		}
		windows := byModel[l.Model]
		i := slices.IndexFunc(windows, func(w ratelimit.Window) bool { return w.Resource == l.Resource && w.Window == l.Window })
		if i < 0 {
			w := ratelimit.Window{Resource: l.Resource, Window: l.Window}
			w.Values[li], w.Has[li] = l.Value, true
			byModel[l.Model] = append(windows, w)
			continue
		}
		windows[i].Values[li] = min(windows[i].Values[li], l.Value)
	}
	for model, windows := range byModel {
		slices.SortFunc(windows, func(a, b ratelimit.Window) int {
			if c := strings.Compare(a.Resource, b.Resource); c != 0 {
				return c
			}
			return strings.Compare(a.Window, b.Window)
		})
		byModel[model] = windows
	}
	return byModel
}

// resultOf classifies the outcome of one read.
func resultOf(err error) string {
	if err == nil {
		return ResultSuccess
	}
	var keyErr *keyError
	if errors.As(err, &keyErr) {
		return ResultKeyUnavailable
	}
	status := 0
	if adminErr := (*admin.Error)(nil); errors.As(err, &adminErr) {
		status = adminErr.Status
	}
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return ResultUnauthorized
	case status == http.StatusTooManyRequests:
		return ResultRateLimited
	case errors.Is(err, admin.ErrStatus):
		return ResultHTTPError
	case errors.Is(err, context.DeadlineExceeded):
		return ResultTimeout
	case errors.Is(err, admin.ErrMalformed), errors.Is(err, admin.ErrBodyTooLarge), errors.Is(err, admin.ErrTooManyPages),
		errors.Is(err, admin.ErrTooManyLimits), errors.Is(err, admin.ErrCurrency):
		return ResultInvalidResponse
	}
	return ResultNetworkError
}

// requestsOf counts the requests of one read by result: the pages read,
// and the page that failed. A read that failed before sending (its key
// unreadable) counts once as key_unavailable.
func requestsOf(pages int, err error) map[string]float64 {
	counts := map[string]float64{}
	var adminErr *admin.Error
	if errors.As(err, &adminErr) {
		pages = adminErr.Page - 1
	}
	if pages > 0 {
		counts[ResultSuccess] = float64(pages)
	}
	if err != nil {
		counts[resultOf(err)]++
	}
	return counts
}

// retryAfterOf is the wait a refusal asked for, 0 when none.
func retryAfterOf(err error) time.Duration {
	var adminErr *admin.Error
	if errors.As(err, &adminErr) {
		return adminErr.RetryAfter
	}
	return 0
}

// monthStart is the start of t's calendar month, UTC: the period of a
// budget.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// spendOf sums the costs of b's project, or of every project when b names
// none, in b's currency, whichever case the API writes it in ("usd").
func spendOf(b config.Budget, costs []admin.Cost) float64 {
	var sum float64
	for _, c := range costs {
		if strings.EqualFold(c.Currency, b.Currency) && (b.Project == "" || c.Project == b.Project) {
			sum += c.Amount
		}
	}
	return sum
}
