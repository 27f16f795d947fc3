package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/ratelimit-exporter/ratelimit_exporter/admin"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

const costsAdminKey = "sk-admin-sim-CANARY-4b1d"

// june is the start of a month; the simulator's clock is on its fifth day.
var (
	june      = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	juneFifth = time.Date(2025, 6, 5, 12, 0, 0, 0, time.UTC)
)

// monthOfCosts are costs over May's last day and June's first five, for
// two projects and for none, with a day without costs.
func monthOfCosts(project1, project2 string) []DayCost {
	day := func(d int) time.Time { return time.Date(2025, 6, d, 15, 30, 0, 0, time.UTC) }
	return []DayCost{
		{Day: day(0), Project: project1, Currency: "USD", Amount: 100}, // May 31st: not June's
		{Day: day(1), Project: project1, Currency: "USD", Amount: 1.25},
		{Day: day(1), Project: "", Currency: "USD", Amount: 0.5},
		{Day: day(2).In(time.FixedZone("PDT", -7*3600)), Project: project1, Currency: "USD", Amount: 2.5},
		{Day: day(2), Project: project2, Currency: "USD", Amount: 0.07},
		{Day: day(4), Project: project1, Currency: "USD", Amount: 0.25},
		{Day: day(5), Project: project2, Currency: "USD", Amount: 1},
	}
}

// costsServer serves a simulator of d on loopback with an API key and an
// admin key of costs.
func costsServer(t *testing.T, d Dialect, costs []DayCost) (*Simulator, string) {
	t.Helper()
	s := NewDialect(d)
	s.SetClock(func() time.Time { return juneFifth })
	s.AddKey(simKey, Limits{"requests": {"minute": 10}})
	s.SetCosts(costsAdminKey, costs)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func costsText(costs []admin.Cost) string {
	var lines []string
	for _, c := range costs {
		lines = append(lines, fmt.Sprintf("%q %s %.6f", c.Project, c.Currency, c.Amount))
	}
	return strings.Join(lines, "\n")
}

// The admin package's clients read the month's spend from the
// simulator's cost APIs, over three pages of two days each (June 1st to
// 5th).
func TestCostsThroughTheAdminClients(t *testing.T) {
	for _, tc := range []struct {
		dialect       Dialect
		costs         func(url string) (admin.CostResult, error)
		project1      string
		project2      string
		lastPageQuery string
	}{
		{OpenAI, func(url string) (admin.CostResult, error) {
			return (&admin.OpenAI{Key: config.Secret(costsAdminKey), BaseURL: url + "/v1"}).Costs(context.Background(), june)
		}, "proj_abc", "proj_xyz", "bucket_width=1d&group_by=project_id&limit=31&page=page_MjAyNS0wNi0wNVQwMDowMDowMFo%3D&start_time=1748736000"},
		{Anthropic, func(url string) (admin.CostResult, error) {
			return (&admin.Anthropic{Key: config.Secret(costsAdminKey), BaseURL: url}).Costs(context.Background(), june)
		}, "wrkspc_01", "wrkspc_02", "bucket_width=1d&group_by%5B%5D=workspace_id&limit=31&page=page_MjAyNS0wNi0wNVQwMDowMDowMFo%3D&starting_at=2025-06-01T00%3A00%3A00Z"},
	} {
		t.Run(string(tc.dialect), func(t *testing.T) {
			s, url := costsServer(t, tc.dialect, monthOfCosts(tc.project1, tc.project2))
			res, err := tc.costs(url)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("\"\" USD 0.500000\n%q USD 4.000000\n%q USD 1.070000", tc.project1, tc.project2)
			if got := costsText(res.Costs); got != want || res.Pages != 3 {
				t.Errorf("Costs = %d pages,\n%s\nwant 3 pages,\n%s", res.Pages, got, want)
			}
			if e, _ := s.LastExchange(costsAdminKey); e.Query != tc.lastPageQuery || e.Status != http.StatusOK {
				t.Errorf("last page: %q answered %d, want %q answered 200", e.Query, e.Status, tc.lastPageQuery)
			}
			if s.Requests() != 0 {
				t.Errorf("%d requests counted as the API endpoint's", s.Requests())
			}
		})
	}
}

// openai-go sends group_by as group_by[]: the simulator groups by project
// for it too, and its pages decode into the SDK's types.
func TestCostsThroughOpenAIGo(t *testing.T) {
	s, url := costsServer(t, OpenAI, monthOfCosts("proj_abc", "proj_xyz"))
	client := openai.NewClient(option.WithBaseURL(url+"/v1"), option.WithAdminAPIKey(costsAdminKey), option.WithMaxRetries(0))
	params := openai.AdminOrganizationUsageCostsParams{StartTime: june.Unix(), GroupBy: []string{"project_id"}, Limit: openai.Int(31)}
	sums, pages := map[string]float64{}, 0
	for {
		page, err := client.Admin.Organization.Usage.Costs(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, bucket := range page.Data {
			for _, r := range bucket.Results {
				c := r.AsOrganizationCostsResult()
				sums[c.ProjectID+" "+c.Amount.Currency] += c.Amount.Value
			}
		}
		if !page.HasMore || pages > 10 {
			break
		}
		params.Page = openai.String(page.NextPage)
	}
	var got []string
	for _, k := range slices.Sorted(maps.Keys(sums)) {
		got = append(got, fmt.Sprintf("%q %.6f", k, sums[k]))
	}
	if pages != 3 || strings.Join(got, ", ") != `" usd" 0.500000, "proj_abc usd" 4.000000, "proj_xyz usd" 1.070000` {
		t.Errorf("%d pages, %s; want 3 pages and each project's sum", pages, got)
	}
	if e, _ := s.LastExchange(costsAdminKey); !strings.Contains(e.Query, "group_by%5B%5D=project_id") {
		t.Errorf("openai-go sent %q", e.Query)
	}
}

// Only an admin key reads costs: an API key of the same simulator, or
// none, gets the dialect's 401.
func TestCostsNeedAnAdminKey(t *testing.T) {
	for _, d := range []Dialect{OpenAI, Anthropic} {
		_, url := costsServer(t, d, monthOfCosts("a", "b"))
		for _, key := range []string{simKey, costsAdminKey + "-wrong"} {
			var err error
			if d == OpenAI {
				_, err = (&admin.OpenAI{Key: config.Secret(key), BaseURL: url + "/v1"}).Costs(context.Background(), june)
			} else {
				_, err = (&admin.Anthropic{Key: config.Secret(key), BaseURL: url}).Costs(context.Background(), june)
			}
			var e *admin.Error
			if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || strings.Contains(err.Error(), key) {
				t.Errorf("%s, key %s: Costs = %v, want a 401 without the key", d, key, err)
			}
		}
	}
}

func getCosts(t *testing.T, url, key string, header func(http.Header, string)) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	header(req.Header, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func bearer(h http.Header, key string) { h.Set("Authorization", "Bearer "+key) }
func anthropicAdmin(h http.Header, key string) {
	h.Set("x-api-key", key)
	h.Set("anthropic-version", "2023-06-01")
}

// What the query asks is answered as the API documents it, and what it
// may not ask is a 400 in the dialect's shape.
func TestCostsQueries(t *testing.T) {
	_, openAIURL := costsServer(t, OpenAI, monthOfCosts("proj_abc", "proj_xyz"))
	_, anthropicURL := costsServer(t, Anthropic, monthOfCosts("wrkspc_01", "wrkspc_02"))
	for _, tc := range []struct {
		name, url string
		header    func(http.Header, string)
		status    int
		body      string
	}{
		{"openai, not grouped: one result per currency", openAIURL + "/v1/organization/costs?start_time=1748736000&limit=1", bearer, 200,
			`{"data":[{"end_time":1748822400,"object":"bucket","results":[{"amount":{"currency":"usd","value":1.75},"line_item":null,"object":"organization.costs.result","project_id":null}],"start_time":1748736000}],"has_more":true,"next_page":"page_MjAyNS0wNi0wMlQwMDowMDowMFo=","object":"page"}`},
		{"openai, to end_time, an empty day", openAIURL + "/v1/organization/costs?start_time=1748908800&end_time=1748995200&group_by=project_id", bearer, 200,
			`{"data":[{"end_time":1748995200,"object":"bucket","results":[],"start_time":1748908800}],"has_more":false,"next_page":null,"object":"page"}`},
		{"anthropic, grouped, in cents", anthropicURL + "/v1/organizations/cost_report?starting_at=2025-06-02T00:00:00Z&limit=1&group_by[]=workspace_id", anthropicAdmin, 200,
			`{"data":[{"ending_at":"2025-06-03T00:00:00Z","results":[` +
				`{"amount":"250","context_window":null,"cost_type":null,"currency":"USD","description":null,"inference_geo":null,"model":null,"service_tier":null,"token_type":null,"workspace_id":"wrkspc_01"},` +
				`{"amount":"7","context_window":null,"cost_type":null,"currency":"USD","description":null,"inference_geo":null,"model":null,"service_tier":null,"token_type":null,"workspace_id":"wrkspc_02"}],` +
				`"starting_at":"2025-06-02T00:00:00Z"}],"has_more":true,"next_page":"page_MjAyNS0wNi0wM1QwMDowMDowMFo="}`},
		{"openai, no start_time", openAIURL + "/v1/organization/costs", bearer, 400, `"start_time is required"`},
		{"openai, limit over 180", openAIURL + "/v1/organization/costs?start_time=1748736000&limit=181", bearer, 400, `"limit must be from 1 to 180"`},
		{"anthropic, limit over 31", anthropicURL + "/v1/organizations/cost_report?starting_at=2025-06-01T00:00:00Z&limit=32", anthropicAdmin, 400, `"limit must be from 1 to 31"`},
		{"anthropic, an hour's buckets", anthropicURL + "/v1/organizations/cost_report?starting_at=2025-06-01T00:00:00Z&bucket_width=1h", anthropicAdmin, 400, `"type":"invalid_request_error"`},
		{"anthropic, a page that is no cursor", anthropicURL + "/v1/organizations/cost_report?starting_at=2025-06-01T00:00:00Z&page=x", anthropicAdmin, 400, `"invalid page"`},
		{"anthropic, no version", anthropicURL + "/v1/organizations/cost_report?starting_at=2025-06-01T00:00:00Z", func(h http.Header, key string) { h.Set("x-api-key", key) }, 400, `anthropic-version`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := getCosts(t, tc.url, costsAdminKey, tc.header)
			if status != tc.status || !strings.Contains(body, tc.body) {
				t.Errorf("GET = %d %s\nwant %d with %s", status, body, tc.status, tc.body)
			}
		})
	}
}

// A dialect without a cost API answers as for any other unknown path.
func TestCostsOnlyWhereTheProviderHasThem(t *testing.T) {
	_, url := costsServer(t, Cerebras, monthOfCosts("a", "b"))
	if status, _ := getCosts(t, url+"/v1/organization/costs?start_time=1748736000", costsAdminKey, bearer); status != http.StatusNotFound {
		t.Errorf("Cerebras's costs: %d, want 404", status)
	}
}
