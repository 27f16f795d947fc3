package simulator

import (
	"encoding/base64"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DayCost is a cost the admin cost APIs report: what was spent on one UTC
// day, on one project (OpenAI) or workspace (Anthropic).
type DayCost struct {
	Day time.Time // any time of the day, in any zone: its UTC day counts
	// Project is the OpenAI project ID or Anthropic workspace ID; "" for
	// costs of no project (OpenAI) or of the default workspace (Anthropic).
	Project  string
	Currency string  // ISO 4217, upper case; Anthropic documents USD only
	Amount   float64 // in the currency's units: dollars, not cents
}

// CostsPageBuckets is the most daily buckets a page of the cost APIs
// holds, whatever the request's limit: few, so that a month's costs come
// in several pages and clients must follow next_page.
const CostsPageBuckets = 2

// SetCosts makes adminKey an admin key of the organization whose costs
// the dialect's cost API reports, replacing what it reported before.
// OpenAI: GET .../organization/costs with Authorization: Bearer; query
// start_time (Unix seconds), end_time, bucket_width=1d, group_by (or
// group_by[], as openai-go sends it) of project_id, limit (1 to 180,
// default 7), page; amounts in units. Anthropic: GET
// .../v1/organizations/cost_report with x-api-key and anthropic-version;
// query starting_at and ending_at (RFC 3339), bucket_width=1d,
// group_by[]=workspace_id, limit (1 to 31, default 7), page; amounts in
// cents as decimal strings. Both answer one bucket per day from the start
// to today (the simulator's clock) or the end, empty days included, at
// most CostsPageBuckets per page. Other dialects have no cost API.
func (s *Simulator) SetCosts(adminKey string, costs []DayCost) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adminOrgLocked(adminKey).costs = slices.Clone(costs)
}

// costsAPI is a dialect's cost API: where it is and how it reads a query.
type costsAPI struct {
	path          string
	start, end    string // the query's parameters of the period
	parseTime     func(string) (time.Time, error)
	maxLimit      int
	groupBy       string   // the group_by value that groups by project
	groupByParams []string // the query parameters that give group_by values
	key           func(http.Header) (string, bool)
	page          func(buckets []any, more bool, next any) any
	bucket        func(start, end time.Time, results []any) any
	result        func(project *string, currency string, amount float64) any
}

var costsAPIs = map[Dialect]*costsAPI{
	OpenAI: {
		path: "/organization/costs", start: "start_time", end: "end_time", maxLimit: 180,
		groupBy: "project_id", groupByParams: []string{"group_by", "group_by[]"},
		parseTime: func(v string) (time.Time, error) {
			sec, err := strconv.ParseInt(v, 10, 64)
			return time.Unix(sec, 0), err
		},
		key: bearerKey,
		page: func(buckets []any, more bool, next any) any {
			return map[string]any{"object": "page", "data": buckets, "has_more": more, "next_page": next}
		},
		bucket: func(start, end time.Time, results []any) any {
			return map[string]any{"object": "bucket", "start_time": start.Unix(), "end_time": end.Unix(), "results": results}
		},
		result: func(project *string, currency string, amount float64) any {
			return map[string]any{"object": "organization.costs.result", "amount": map[string]any{"value": amount, "currency": strings.ToLower(currency)},
				"line_item": nil, "project_id": project}
		},
	},
	Anthropic: {
		path: "/v1/organizations/cost_report", start: "starting_at", end: "ending_at", maxLimit: 31, groupBy: "workspace_id",
		parseTime: func(v string) (time.Time, error) { return time.Parse(time.RFC3339, v) },
		key:       apiKeyHeader,
		page: func(buckets []any, more bool, next any) any {
			return map[string]any{"data": buckets, "has_more": more, "next_page": next}
		},
		bucket: func(start, end time.Time, results []any) any {
			return map[string]any{"starting_at": start.Format(time.RFC3339), "ending_at": end.Format(time.RFC3339), "results": results}
		},
		result: func(project *string, currency string, amount float64) any {
			cents := math.Round(amount*100*1e6) / 1e6
			return map[string]any{"amount": strconv.FormatFloat(cents, 'f', -1, 64), "currency": currency, "workspace_id": project,
				"description": nil, "cost_type": nil, "context_window": nil, "model": nil, "service_tier": nil, "token_type": nil, "inference_geo": nil}
		},
		groupByParams: []string{"group_by[]"},
	},
}

// isCosts reports whether r asks for the dialect's cost API.
func (s *Simulator) isCosts(r *http.Request) bool {
	api := costsAPIs[s.dialect]
	return api != nil && strings.HasSuffix(r.URL.Path, api.path)
}

// serveCosts answers a request to the dialect's cost API. s.mu is held.
func (s *Simulator) serveCosts(ans *answer, r *http.Request, now time.Time) {
	sp, api := s.spec, costsAPIs[s.dialect]
	bad := func(message string) { ans.fail(sp, now, problem{kind: invalidRequest, message: message}) }
	if r.Method != http.MethodGet {
		ans.header.Set("Allow", http.MethodGet)
		ans.fail(sp, now, problem{kind: methodNotAllowed, message: "use GET"})
		return
	}
	key, given := api.key(r.Header)
	var org *adminOrg
	if s.admin != nil {
		org = s.admin.orgs[key]
	}
	if !given || org == nil {
		ans.fail(sp, now, problem{kind: unauthorized, message: "invalid admin key", key: key})
		return
	}
	if sp.version != "" && r.Header.Get("anthropic-version") != sp.version {
		bad("anthropic-version: header is required and must be " + sp.version)
		return
	}
	if org.status != 0 { // SetAdminFault
		*ans = s.adminError(*ans, org.status, "simulated admin fault")
		if org.retryAfter > 0 {
			ans.header.Set("Retry-After", strconv.Itoa(int(org.retryAfter/time.Second)))
		}
		return
	}
	q := r.URL.Query()
	from, err := api.parseTime(q.Get(api.start))
	if err != nil {
		bad(api.start + " is required")
		return
	}
	day := 24 * time.Hour
	from = from.UTC().Truncate(day)
	until := now.UTC().Truncate(day).Add(day) // today's bucket, as far as it goes
	if v := q.Get(api.end); v != "" {
		if until, err = api.parseTime(v); err != nil {
			bad(api.end + " is not a time")
			return
		}
	}
	if w := q.Get("bucket_width"); w != "" && w != "1d" {
		bad("bucket_width must be 1d")
		return
	}
	byProject := false
	for _, param := range api.groupByParams {
		byProject = byProject || slices.Contains(q[param], api.groupBy)
	}
	limit := 7
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > api.maxLimit {
			bad("limit must be from 1 to " + strconv.Itoa(api.maxLimit))
			return
		}
	}
	if page := q.Get("page"); page != "" {
		raw, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(page, "page_"))
		if from, err = time.Parse(time.RFC3339, string(raw)); err != nil || !strings.HasPrefix(page, "page_") {
			bad("invalid page")
			return
		}
	}

	buckets := []any{}
	for start := from; start.Before(until) && len(buckets) < min(limit, CostsPageBuckets); start = start.Add(day) {
		type group struct{ project, currency string }
		sums := map[group]float64{}
		for _, c := range org.costs {
			if c.Day.UTC().Truncate(day).Equal(start) {
				g := group{currency: c.Currency}
				if byProject {
					g.project = c.Project
				}
				sums[g] += c.Amount
			}
		}
		order := slices.SortedFunc(maps.Keys(sums), func(a, b group) int {
			return strings.Compare(a.project+" "+a.currency, b.project+" "+b.currency)
		})
		results := []any{}
		for _, g := range order {
			var project *string
			if g.project != "" {
				project = &g.project
			}
			results = append(results, api.result(project, g.currency, sums[g]))
		}
		buckets = append(buckets, api.bucket(start, start.Add(day), results))
		from = start.Add(day)
	}
	var next any
	more := from.Before(until)
	if more {
		next = "page_" + base64.URLEncoding.EncodeToString([]byte(from.Format(time.RFC3339)))
	}
	ans.reply(sp, now, http.StatusOK, api.page(buckets, more, next))
}
