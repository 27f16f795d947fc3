package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// OpenAIBaseURL is the host of OpenAI's API, where its admin API lives.
const OpenAIBaseURL = "https://api.openai.com/v1"

// openAIFields maps each documented limit field of a ProjectRateLimit to
// its resource and window. Documented in OpenAI's API reference, "List
// project rate limits" (GET /v1/organization/projects/{project_id}/rate_limits,
// https://platform.openai.com/docs/api-reference/project-rate-limits/list,
// as rendered at https://www.w3cschool.cn/openai_api/openai_api-reference-resources-admin-subresources-organization-subresources-projects-subresources-rate_limits-methods-list_rate_limits.html)
// and in openai-go v3.96.0's ProjectRateLimit: max_requests_per_1_minute
// and max_tokens_per_1_minute always, the others "only present for
// relevant models". The resources are those of OpenAI's x-ratelimit-*
// headers (requests, tokens); batch_input_tokens is the Batch API's queue
// of input tokens per day.
var openAIFields = map[string]resourceWindow{
	"max_requests_per_1_minute":        {"requests", "minute"},
	"max_tokens_per_1_minute":          {"tokens", "minute"},
	"max_requests_per_1_day":           {"requests", "day"},
	"max_images_per_1_minute":          {"images", "minute"},
	"max_audio_megabytes_per_1_minute": {"audio_megabytes", "minute"},
	"batch_1_day_max_input_tokens":     {"batch_input_tokens", "day"},
}

// openAIOther are a ProjectRateLimit's fields that are not limits.
var openAIOther = map[string]bool{"id": true, "model": true, "object": true}

// OpenAI lists a project's rate limits, and reads the organization's costs
// (Costs), with an OpenAI admin key.
//
// Request, per the reference above: GET
// {BaseURL}/organization/projects/{ProjectID}/rate_limits with
// "Authorization: Bearer {admin key}" and query limit (default 100) and
// after (an object ID). Response: {"object":"list","data":[ProjectRateLimit],
// "first_id","last_id","has_more"}; the next page is after=last_id while
// has_more is true.
type OpenAI struct {
	// Key is the admin key (sk-admin-...). Sent only as a header to BaseURL.
	Key config.Secret
	// ProjectID is the project (proj_...) whose limits are listed.
	ProjectID string
	// BaseURL is the API's root; "" for OpenAIBaseURL.
	BaseURL string
	// Client sends the requests; nil for http.DefaultClient. Redirects are
	// never followed whatever its CheckRedirect.
	Client *http.Client
	// PageLimit is the query's limit, objects per page; 0 leaves it out.
	PageLimit int
	// MaxPages bounds the pages read; 0 for DefaultMaxPages.
	MaxPages int
	// CostBuckets is the query's limit of Costs, daily buckets per page; 0
	// for DefaultCostBuckets.
	CostBuckets int
}

const openAIAPI = "openai project rate limits"

type openAIPage struct {
	Data    []map[string]json.RawMessage `json:"data"`
	HasMore bool                         `json:"has_more"`
	LastID  *string                      `json:"last_id"`
}

// List reads every page of the project's rate limits.
func (o *OpenAI) List(ctx context.Context) (Result, error) {
	var res Result
	base, err := baseURL(o.BaseURL, OpenAIBaseURL)
	if err != nil {
		return res, err
	}
	if o.ProjectID == "" {
		return res, errors.New("admin: openai: no project ID")
	}
	u := base.JoinPath("organization", "projects", o.ProjectID, "rate_limits")
	maxPages := o.MaxPages
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	client := noRedirects(o.Client)
	after := ""
	seen := map[string]bool{"": true} // a cursor that comes back would go round
	for page := 1; ; page++ {
		if page > maxPages {
			return Result{}, &Error{API: openAIAPI, Page: page, Reason: "more than " + strconv.Itoa(maxPages) + " pages", Err: ErrTooManyPages}
		}
		q := url.Values{}
		if o.PageLimit > 0 {
			q.Set("limit", strconv.Itoa(o.PageLimit))
		}
		if after != "" {
			q.Set("after", after)
		}
		u.RawQuery = q.Encode()
		var p openAIPage
		if err := getPage(ctx, client, openAIAPI, page, u, o.auth, &p); err != nil {
			return Result{}, err
		}
		res.Pages = page
		for _, item := range p.Data {
			res.add(item)
			if len(res.Limits) > DefaultMaxLimits {
				return Result{}, tooManyLimits(openAIAPI, page)
			}
		}
		if !p.HasMore {
			return res, nil
		}
		if p.LastID == nil || seen[*p.LastID] {
			return Result{}, &Error{API: openAIAPI, Page: page, Reason: "has_more without a new last_id", Err: ErrMalformed}
		}
		after = *p.LastID
		seen[after] = true
	}
}

// add maps one ProjectRateLimit's fields through openAIFields, in field
// name order; an item without a model is dropped whole.
func (r *Result) add(item map[string]json.RawMessage) {
	var model string
	if err := json.Unmarshal(item["model"], &model); err != nil || !modelName(model) {
		for name := range item {
			if !openAIOther[name] {
				r.Dropped++
			}
		}
		return
	}
	names := make([]string, 0, len(item))
	for name := range item {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if openAIOther[name] {
			continue
		}
		rw, known := openAIFields[name]
		if string(item[name]) == "null" && known {
			continue // an optional limit the model has not
		}
		v, ok := value(item[name])
		if !known || !ok {
			r.Dropped++
			continue
		}
		r.Limits = append(r.Limits, Limit{Model: model, Observation: ratelimit.Observation{
			Kind: ratelimit.Limit, Resource: rw.resource, Window: rw.window, Value: v,
		}})
	}
}

// auth sets the admin key of an OpenAI admin request.
func (o *OpenAI) auth(h http.Header) { h.Set("Authorization", "Bearer "+o.Key.Reveal()) }
