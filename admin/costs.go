package admin

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Cost is what was spent in one currency on one project (OpenAI) or
// workspace (Anthropic) over the period a Costs call read.
type Cost struct {
	// Project is the OpenAI project ID or the Anthropic workspace ID. ""
	// is what neither API assigns to one: OpenAI's results whose
	// project_id is null, and Anthropic's default workspace, whose
	// workspace_id is null. The organization's spend is the sum of all.
	Project string
	// Currency is an ISO 4217 code in upper case, such as "USD".
	Currency string
	// Amount is in the currency's units (dollars, not cents).
	Amount float64
}

// CostResult is what one Costs call read.
type CostResult struct {
	// Costs holds one Cost per project and currency, summed over the days
	// read, in project then currency order.
	Costs []Cost
	// Pages counts the pages read.
	Pages int
}

// ErrCurrency is a cost in a currency whose unit the API does not
// document: its amount is not guessed.
var ErrCurrency = errors.New("currency without a documented unit")

// DefaultCostBuckets is the query's limit of a Costs call, in daily
// buckets per page: a month's days, within both APIs' maximum (OpenAI's
// 180, Anthropic's 31), so that a month is one page.
const DefaultCostBuckets = 31

// MinCostsInterval is the shortest time between two Costs calls that the
// APIs' documentation allows for sustained polling. Anthropic's Usage and
// Cost API guide
// (https://platform.claude.com/docs/en/build-with-claude/usage-cost-api,
// "Frequently asked questions") says: "The API supports polling once per
// minute for sustained use. For short bursts (for example, downloading
// paginated data), more frequent polling is acceptable", and "Usage and
// cost data typically appears within 5 minutes of API request completion,
// though delays may occasionally be longer". OpenAI documents no polling
// rate or delay for its Costs API (its buckets are daily). A Costs call
// reads its pages one after another: a short burst.
const MinCostsInterval = time.Minute

// costSums adds up costs per project and currency.
type costSums map[[2]string]float64

// add adds amount and reports whether the sum is still a finite number:
// a sum past the largest float would be a spend of +Inf.
func (s costSums) add(project, currency string, amount float64) bool {
	k := [2]string{project, currency}
	s[k] += amount
	return !math.IsInf(s[k], 0)
}

func (s costSums) result(pages int) CostResult {
	res := CostResult{Pages: pages}
	for k, amount := range s {
		res.Costs = append(res.Costs, Cost{Project: k[0], Currency: k[1], Amount: amount})
	}
	sort.Slice(res.Costs, func(i, j int) bool {
		a, b := res.Costs[i], res.Costs[j]
		return a.Project < b.Project || a.Project == b.Project && a.Currency < b.Currency
	})
	return res
}

// currencyCode is an ISO 4217 code in either case: it becomes a label value.
var currencyCode = regexp.MustCompile(`^[A-Za-z]{3}$`)

const openAICostsAPI = "openai costs"

// openAICostPage is a page of OpenAI's Costs API. data, has_more and each
// bucket's results are required: a body without them is not a month
// without spend.
type openAICostPage struct {
	Data *[]struct {
		Results *[]struct {
			Amount *struct {
				Value    *float64 `json:"value"`
				Currency string   `json:"currency"`
			} `json:"amount"`
			ProjectID *string `json:"project_id"`
		} `json:"results"`
	} `json:"data"`
	HasMore  *bool   `json:"has_more"`
	NextPage *string `json:"next_page"`
}

// Costs reads what the organization spent from since to now, per project
// and currency, from OpenAI's Costs API; ProjectID is ignored.
//
// Relied on, from the API reference "Costs"
// (https://platform.openai.com/docs/api-reference/usage/costs, as rendered
// at https://developers.openai.com/api/reference/resources/organization/subresources/audit_logs/methods/get_costs),
// OpenAI's cookbook "How to use the Usage API and Cost API"
// (https://cookbook.openai.com/examples/completions_usage_api) and
// openai-go v3.96.0 (AdminOrganizationUsageCostsResponse): GET
// {BaseURL}/organization/costs with "Authorization: Bearer {admin key}"
// and query start_time (Unix seconds, inclusive), bucket_width=1d (the
// only width), group_by=project_id, limit (buckets per page, 1 to 180,
// default 7) and page (the previous page's next_page). Response:
// {"object":"page","data":[bucket],"has_more","next_page"}; a bucket is
// {"object":"bucket","start_time","end_time","results":[result]}, a result
// {"object":"organization.costs.result","amount":{"value","currency"},
// "project_id","line_item"}. value is a number in the currency's units
// (0.06 is 6 cents); currency is lower-case ISO 4217 ("usd"); project_id
// is null for costs of no project.
func (o *OpenAI) Costs(ctx context.Context, since time.Time) (CostResult, error) {
	base, err := baseURL(o.BaseURL, OpenAIBaseURL)
	if err != nil {
		return CostResult{}, err
	}
	u := base.JoinPath("organization", "costs")
	query := url.Values{
		"start_time":   {strconv.FormatInt(since.Unix(), 10)},
		"bucket_width": {"1d"},
		"group_by":     {"project_id"},
		"limit":        {strconv.Itoa(costBuckets(o.CostBuckets))},
	}
	sums := costSums{}
	pages, err := readCostPages(ctx, noRedirects(o.Client), openAICostsAPI, u, query, o.MaxPages, o.auth,
		func(page int, p *openAICostPage) (string, error) {
			if p.Data == nil || p.HasMore == nil {
				return "", malformedCost(openAICostsAPI, page, "no data or has_more")
			}
			for _, bucket := range *p.Data {
				if bucket.Results == nil {
					return "", malformedCost(openAICostsAPI, page, "a bucket without results")
				}
				for _, r := range *bucket.Results {
					if r.Amount == nil || r.Amount.Value == nil || !currencyCode.MatchString(r.Amount.Currency) {
						return "", malformedCost(openAICostsAPI, page, "a result without an amount's value and currency")
					}
					project := ""
					if r.ProjectID != nil {
						project = *r.ProjectID
					}
					if !sums.add(project, strings.ToUpper(r.Amount.Currency), *r.Amount.Value) {
						return "", malformedCost(openAICostsAPI, page, "a sum past the largest number")
					}
				}
			}
			return nextCursor(openAICostsAPI, page, *p.HasMore, p.NextPage)
		})
	if err != nil {
		return CostResult{}, err
	}
	return sums.result(pages), nil
}

const anthropicCostsAPI = "anthropic cost report"

// anthropicCostPage is a page of Anthropic's cost report; data, has_more
// and each bucket's results are required, as for OpenAI.
type anthropicCostPage struct {
	Data *[]struct {
		Results *[]struct {
			Amount      *string `json:"amount"`
			Currency    string  `json:"currency"`
			WorkspaceID *string `json:"workspace_id"`
		} `json:"results"`
	} `json:"data"`
	HasMore  *bool   `json:"has_more"`
	NextPage *string `json:"next_page"`
}

// anthropicAmount is the cost report's amount: a decimal string, bounded
// so that no exponent or length can make it anything but a plain figure.
var anthropicAmount = regexp.MustCompile(`^-?[0-9]{1,20}(\.[0-9]{1,20})?$`)

// Costs reads what the organization spent from since to now, per
// workspace and currency, from Anthropic's cost report; Workspace is
// ignored.
//
// Relied on, from the Cost API reference
// (https://platform.claude.com/docs/en/api/admin/cost_report) and the
// Usage and Cost API guide
// (https://platform.claude.com/docs/en/build-with-claude/usage-cost-api):
// GET {BaseURL}/v1/organizations/cost_report with headers x-api-key (an
// Admin API key) and anthropic-version, and query starting_at (RFC 3339;
// buckets that start on or after it, snapped to the start of the day in
// UTC), bucket_width=1d (the only width), group_by[]=workspace_id, limit
// (buckets per page, 1 to 31, default 7) and page (the previous page's
// next_page). Response: {"data":[bucket],"has_more","next_page"}, a bucket
// {"starting_at","ending_at","results":[result]} (one per day, empty days
// included), a result {"amount","currency","workspace_id",...}. amount is
// "Cost amount in lowest currency units (e.g. cents) as a decimal string.
// For example, "123.45" in "USD" represents $1.23"; currency is
// "Currently always "USD"", so a result in another currency is refused
// (ErrCurrency) rather than divided by a guess. workspace_id is null for
// the default workspace. The guide: "All costs in USD, reported as decimal
// strings in lowest units (cents)"; Priority Tier costs are not included.
func (a *Anthropic) Costs(ctx context.Context, since time.Time) (CostResult, error) {
	base, err := baseURL(a.BaseURL, AnthropicBaseURL)
	if err != nil {
		return CostResult{}, err
	}
	u := base.JoinPath("v1", "organizations", "cost_report")
	query := url.Values{
		"starting_at":  {since.UTC().Format(time.RFC3339)},
		"bucket_width": {"1d"},
		"group_by[]":   {"workspace_id"},
		"limit":        {strconv.Itoa(costBuckets(a.CostBuckets))},
	}
	sums := costSums{}
	pages, err := readCostPages(ctx, noRedirects(a.Client), anthropicCostsAPI, u, query, a.MaxPages, a.auth,
		func(page int, p *anthropicCostPage) (string, error) {
			if p.Data == nil || p.HasMore == nil {
				return "", malformedCost(anthropicCostsAPI, page, "no data or has_more")
			}
			for _, bucket := range *p.Data {
				if bucket.Results == nil {
					return "", malformedCost(anthropicCostsAPI, page, "a bucket without results")
				}
				for _, r := range *bucket.Results {
					if r.Amount == nil || !anthropicAmount.MatchString(*r.Amount) {
						return "", malformedCost(anthropicCostsAPI, page, "an amount that is not a decimal string")
					}
					if !strings.EqualFold(r.Currency, "USD") {
						return "", &Error{API: anthropicCostsAPI, Page: page, Err: ErrCurrency,
							Reason: "an amount in a currency other than USD, whose lowest unit the API does not document"}
					}
					cents, _ := strconv.ParseFloat(*r.Amount, 64) // the pattern admits only what parses
					project := ""
					if r.WorkspaceID != nil {
						project = *r.WorkspaceID
					}
					if !sums.add(project, "USD", cents/100) {
						return "", malformedCost(anthropicCostsAPI, page, "a sum past the largest number")
					}
				}
			}
			return nextCursor(anthropicCostsAPI, page, *p.HasMore, p.NextPage)
		})
	if err != nil {
		return CostResult{}, err
	}
	return sums.result(pages), nil
}

// costBuckets is a client's buckets per page, or DefaultCostBuckets.
func costBuckets(n int) int {
	if n <= 0 {
		return DefaultCostBuckets
	}
	return n
}

// readCostPages reads pages of a cost API from u with query, each with the
// previous page's cursor as page, until one gives none. read takes in a
// decoded page and returns the next cursor, "" after the last page. It
// returns the number of pages read.
func readCostPages[P any](ctx context.Context, client *http.Client, api string, u *url.URL, query url.Values, maxPages int,
	auth func(http.Header), read func(page int, p *P) (next string, err error)) (int, error) {
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	cursor := ""
	seen := map[string]bool{} // a cursor that comes back would go round
	for page := 1; ; page++ {
		if page > maxPages {
			return 0, &Error{API: api, Page: page, Reason: "more than " + strconv.Itoa(maxPages) + " pages", Err: ErrTooManyPages}
		}
		if cursor != "" {
			query.Set("page", cursor)
		}
		u.RawQuery = query.Encode()
		var p P
		if err := getPage(ctx, client, api, page, u, auth, &p); err != nil {
			return 0, err
		}
		next, err := read(page, &p)
		if err != nil {
			return 0, err
		}
		if next == "" {
			return page, nil
		}
		if seen[next] {
			return 0, malformedCost(api, page, "next_page repeats a cursor")
		}
		cursor = next
		seen[cursor] = true
	}
}

// nextCursor is the cursor of the page after one that says hasMore and
// next: "" when there is none; a page with more and no cursor is malformed.
func nextCursor(api string, page int, hasMore bool, next *string) (string, error) {
	if !hasMore {
		return "", nil
	}
	if next == nil || *next == "" {
		return "", malformedCost(api, page, "has_more without a next_page")
	}
	return *next, nil
}

func malformedCost(api string, page int, reason string) error {
	return &Error{API: api, Page: page, Reason: "malformed body: " + reason, Err: ErrMalformed}
}
