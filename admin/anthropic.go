package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// AnthropicBaseURL is the host of Anthropic's API, where its Admin API lives.
const AnthropicBaseURL = "https://api.anthropic.com"

// anthropicVersion is the anthropic-version header every request carries.
const anthropicVersion = "2023-06-01"

// anthropicLimiters maps each limiter type of Anthropic's Rate Limits API
// to its resource and window, with the resources of Anthropic's
// anthropic-ratelimit-* headers (requests, tokens, input_tokens,
// output_tokens, per minute). The types are those listed for
// WorkspaceRateLimitType in the API reference
// (https://platform.claude.com/docs/en/api/go/organization/workspaces/rate_limits)
// and in anthropic-sdk-go v1.84.0. Types whose meaning the reference does
// not spell out are left out and counted as dropped: fast_itpmca,
// fast_otpm and input_tokens_per_minute_cache_aware.
var anthropicLimiters = map[string]resourceWindow{
	"requests_per_minute":      {"requests", "minute"},
	"tokens_per_minute":        {"tokens", "minute"},
	"input_tokens_per_minute":  {"input_tokens", "minute"},
	"output_tokens_per_minute": {"output_tokens", "minute"},
	"tokens_per_day":           {"tokens", "day"},
	"tool_uses_per_second":     {"tool_uses", "second"},
}

// Anthropic lists the rate limits of an organization, or of one of its
// workspaces, and reads the organization's costs (Costs), with an
// Anthropic Admin API key.
//
// Relied on, from the Rate Limits API guide
// (https://platform.claude.com/docs/en/manage-claude/rate-limits-api) and
// its reference (https://platform.claude.com/docs/en/api/go/organization/workspaces/rate_limits),
// and anthropic-sdk-go v1.84.0 (organizationratelimit.go,
// organizationworkspaceratelimit.go): GET {BaseURL}/v1/organizations/rate_limits,
// or /v1/organizations/workspaces/{workspace_id}/rate_limits, with headers
// x-api-key (an Admin API key, sk-ant-admin...) and anthropic-version;
// query limit (1 to 1000; left out, every entry comes in one page) and
// page (the previous response's next_page). Response: {"data":[entry],
// "next_page": cursor or null}; an entry has group {id, type,
// display_name}, models (the model names and aliases of a model_group,
// null for other groups), and limits [{type, value}], a workspace's also
// {org_limit, source {type: workspace or organization}}.
type Anthropic struct {
	// Key is the Admin API key. Sent only as a header to BaseURL.
	Key config.Secret
	// Workspace, if set, lists this workspace's limits rather than the
	// organization's.
	Workspace string
	// IncludeInherited lists, for a workspace, the values it inherits from
	// the organization as well as its overrides (include_inherited=true).
	IncludeInherited bool
	// BaseURL is the API's root; "" for AnthropicBaseURL.
	BaseURL string
	// Client sends the requests; nil for http.DefaultClient. Redirects are
	// never followed whatever its CheckRedirect.
	Client *http.Client
	// PageLimit is the query's limit, entries per page; 0 leaves it out.
	PageLimit int
	// MaxPages bounds the pages read; 0 for DefaultMaxPages.
	MaxPages int
	// CostBuckets is the query's limit of Costs, daily buckets per page; 0
	// for DefaultCostBuckets.
	CostBuckets int
}

const (
	anthropicOrgAPI       = "anthropic organization rate limits"
	anthropicWorkspaceAPI = "anthropic workspace rate limits"
)

type anthropicPage struct {
	Data []struct {
		Group struct {
			Type string `json:"type"`
		} `json:"group"`
		Models []string `json:"models"`
		Limits []struct {
			Type   string          `json:"type"`
			Value  json.RawMessage `json:"value"`
			Source *struct {
				Type string `json:"type"`
			} `json:"source"`
		} `json:"limits"`
	} `json:"data"`
	NextPage *string `json:"next_page"`
}

// List reads every page of the organization's or the workspace's limits.
func (a *Anthropic) List(ctx context.Context) (Result, error) {
	var res Result
	base, err := baseURL(a.BaseURL, AnthropicBaseURL)
	if err != nil {
		return res, err
	}
	api, u := anthropicOrgAPI, base.JoinPath("v1", "organizations", "rate_limits")
	if a.Workspace != "" {
		api, u = anthropicWorkspaceAPI, base.JoinPath("v1", "organizations", "workspaces", a.Workspace, "rate_limits")
	}
	maxPages := a.MaxPages
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	client := noRedirects(a.Client)
	cursor := ""
	seen := map[string]bool{} // a cursor that comes back would go round
	for page := 1; ; page++ {
		if page > maxPages {
			return Result{}, &Error{API: api, Page: page, Reason: "more than " + strconv.Itoa(maxPages) + " pages", Err: ErrTooManyPages}
		}
		q := url.Values{}
		if a.PageLimit > 0 {
			q.Set("limit", strconv.Itoa(a.PageLimit))
		}
		if a.Workspace != "" && a.IncludeInherited {
			q.Set("include_inherited", "true")
		}
		if cursor != "" {
			q.Set("page", cursor)
		}
		u.RawQuery = q.Encode()
		var p anthropicPage
		if err := getPage(ctx, client, api, page, u, a.auth, &p); err != nil {
			return Result{}, err
		}
		res.Pages = page
		for _, entry := range p.Data {
			models := entry.Models
			if models == nil {
				models = []string{""} // a group of an API surface, not of models
			} else {
				models = slices.DeleteFunc(slices.Clone(models), func(m string) bool {
					if !modelName(m) {
						res.Dropped++
						return true
					}
					return false
				})
			}
			for _, l := range entry.Limits {
				rw, known := anthropicLimiters[l.Type]
				v, ok := value(l.Value)
				if !known || !ok {
					res.Dropped++
					continue
				}
				source := ""
				if a.Workspace != "" && l.Source != nil {
					source = l.Source.Type
				}
				if len(res.Limits)+len(models) > DefaultMaxLimits {
					return Result{}, tooManyLimits(api, page)
				}
				for _, model := range models {
					res.Limits = append(res.Limits, Limit{
						Model: model, Group: entry.Group.Type, Workspace: a.Workspace, Source: source,
						Observation: ratelimit.Observation{Kind: ratelimit.Limit, Resource: rw.resource, Window: rw.window, Value: v},
					})
				}
			}
		}
		if p.NextPage == nil || *p.NextPage == "" {
			return res, nil
		}
		if seen[*p.NextPage] {
			return Result{}, &Error{API: api, Page: page, Reason: "next_page repeats a cursor", Err: ErrMalformed}
		}
		cursor = *p.NextPage
		seen[cursor] = true
	}
}

// auth sets the headers of an Anthropic admin request: the admin key and
// the API version.
func (a *Anthropic) auth(h http.Header) {
	h.Set("x-api-key", a.Key.Reveal())
	h.Set("anthropic-version", anthropicVersion)
}
