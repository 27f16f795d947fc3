package admin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// june is the start of a month, as the poller passes it.
var june = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// openAICostBuckets are five days of an organization's costs in the
// documented shape: two projects, costs of no project (project_id null),
// a day without costs, and a currency other than usd.
var openAICostBuckets = []string{
	`{"object":"bucket","start_time":1748736000,"end_time":1748822400,"results":[` +
		`{"object":"organization.costs.result","amount":{"value":1.25,"currency":"usd"},"line_item":null,"project_id":"proj_abc"},` +
		`{"object":"organization.costs.result","amount":{"value":0.5,"currency":"usd"},"line_item":null,"project_id":"proj_xyz"},` +
		`{"object":"organization.costs.result","amount":{"value":0.06,"currency":"usd"},"line_item":null,"project_id":null}]}`,
	`{"object":"bucket","start_time":1748822400,"end_time":1748908800,"results":[` +
		`{"object":"organization.costs.result","amount":{"value":2.5,"currency":"usd"},"line_item":null,"project_id":"proj_abc"}]}`,
	`{"object":"bucket","start_time":1748908800,"end_time":1748995200,"results":[]}`,
	`{"object":"bucket","start_time":1748995200,"end_time":1749081600,"results":[` +
		`{"object":"organization.costs.result","amount":{"value":0.25,"currency":"usd"},"line_item":null,"project_id":"proj_abc"},` +
		`{"object":"organization.costs.result","amount":{"value":1e-05,"currency":"usd"},"line_item":null,"project_id":"proj_xyz"}]}`,
	`{"object":"bucket","start_time":1749081600,"end_time":1749168000,"results":[` +
		`{"object":"organization.costs.result","amount":{"value":1,"currency":"eur"},"line_item":null,"project_id":"proj_abc"}]}`,
}

// anthropicCostBuckets are five days of a cost report grouped by
// workspace, in the documented shape: amounts in cents as decimal strings,
// the default workspace as workspace_id null, a day without costs.
var anthropicCostBuckets = []string{
	`{"starting_at":"2025-06-01T00:00:00Z","ending_at":"2025-06-02T00:00:00Z","results":[` +
		`{"amount":"123.45","currency":"USD","workspace_id":"wrkspc_01","description":null,"cost_type":null,"context_window":null,"model":null,"service_tier":null,"token_type":null,"inference_geo":null},` +
		`{"amount":"1500","currency":"USD","workspace_id":null,"description":null,"cost_type":null,"context_window":null,"model":null,"service_tier":null,"token_type":null,"inference_geo":null}]}`,
	`{"starting_at":"2025-06-02T00:00:00Z","ending_at":"2025-06-03T00:00:00Z","results":[` +
		`{"amount":"0.1","currency":"USD","workspace_id":"wrkspc_01"},` +
		`{"amount":"250.5","currency":"USD","workspace_id":"wrkspc_02"}]}`,
	`{"starting_at":"2025-06-03T00:00:00Z","ending_at":"2025-06-04T00:00:00Z","results":[]}`,
	`{"starting_at":"2025-06-04T00:00:00Z","ending_at":"2025-06-05T00:00:00Z","results":[{"amount":"100","currency":"USD","workspace_id":"wrkspc_01"}]}`,
	`{"starting_at":"2025-06-05T00:00:00Z","ending_at":"2025-06-06T00:00:00Z","results":[{"amount":"50","currency":"USD","workspace_id":"wrkspc_02"}]}`,
}

const (
	openAICostsPath    = "/v1/organization/costs"
	anthropicCostsPath = "/v1/organizations/cost_report"
)

// fakeCosts serves buckets at path as both cost APIs do: limit (default 7)
// buckets per page, has_more while buckets remain, next_page an opaque
// cursor to the next one (null on the last page); OpenAI's pages say
// "object":"page". A request without the canary as its provider's admin
// header gets 401 with the key it presented echoed.
func fakeCosts(t *testing.T, path string, buckets []string) (*httptest.Server, *[]string) {
	t.Helper()
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		if r.Method != http.MethodGet || r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		presented, object := r.Header.Get("x-api-key"), ""
		if path == openAICostsPath {
			presented, object = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), `"object":"page",`
		} else if r.Header.Get("anthropic-version") != "2023-06-01" {
			presented = "no version"
		}
		if presented != canary {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s","type":"invalid_request_error"}}`, presented)
			return
		}
		limit := 7
		if l := r.URL.Query().Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
		}
		start := 0
		if p := r.URL.Query().Get("page"); p != "" {
			start, _ = strconv.Atoi(strings.TrimPrefix(p, "page_"))
		}
		end := min(start+limit, len(buckets))
		next := "null"
		if end < len(buckets) {
			next = strconv.Quote("page_" + strconv.Itoa(end))
		}
		_, _ = fmt.Fprintf(w, `{%s"data":[%s],"has_more":%t,"next_page":%s}`, object, strings.Join(buckets[start:end], ","), end < len(buckets), next)
	}))
	t.Cleanup(srv.Close)
	return srv, &queries
}

func newOpenAICosts(url string) *OpenAI {
	return &OpenAI{Key: config.Secret(canary), BaseURL: url + "/v1", Client: &http.Client{Timeout: 5 * time.Second}}
}

// costsText prints costs one a line, amounts to a millionth of a unit:
// sums of floats, compared at a precision far finer than a cent.
func costsText(costs []Cost) string {
	var lines []string
	for _, c := range costs {
		lines = append(lines, fmt.Sprintf("%q %s %.6f", c.Project, c.Currency, c.Amount))
	}
	return strings.Join(lines, "\n")
}

func TestOpenAICostsPaginatesOverThreePages(t *testing.T) {
	srv, queries := fakeCosts(t, openAICostsPath, openAICostBuckets)
	c := newOpenAICosts(srv.URL)
	c.CostBuckets = 2
	c.ProjectID = "proj_ignored"
	res, err := c.Costs(context.Background(), june)
	checkNoKey(t, err)
	if err != nil {
		t.Fatal(err)
	}
	wantQueries := []string{
		"bucket_width=1d&group_by=project_id&limit=2&start_time=1748736000",
		"bucket_width=1d&group_by=project_id&limit=2&page=page_2&start_time=1748736000",
		"bucket_width=1d&group_by=project_id&limit=2&page=page_4&start_time=1748736000",
	}
	if strings.Join(*queries, "\n") != strings.Join(wantQueries, "\n") {
		t.Errorf("queries =\n%s\nwant\n%s", strings.Join(*queries, "\n"), strings.Join(wantQueries, "\n"))
	}
	want := `"" USD 0.060000` + "\n" +
		`"proj_abc" EUR 1.000000` + "\n" +
		`"proj_abc" USD 4.000000` + "\n" +
		`"proj_xyz" USD 0.500010`
	if got := costsText(res.Costs); got != want || res.Pages != 3 {
		t.Errorf("Costs = %d pages,\n%s\nwant 3 pages,\n%s", res.Pages, got, want)
	}
}

// OpenAI's value is in the currency's units: 0.06 usd is 6 cents, not 6
// dollars (the reference's own example).
func TestOpenAICostsAreInUnitsNotCents(t *testing.T) {
	srv, _ := fakeCosts(t, openAICostsPath, []string{
		`{"object":"bucket","start_time":1730419200,"end_time":1730505600,"results":[{"object":"organization.costs.result","amount":{"value":0.06,"currency":"usd"},"line_item":null,"project_id":null}]}`,
	})
	res, err := newOpenAICosts(srv.URL).Costs(context.Background(), june)
	if err != nil || len(res.Costs) != 1 || res.Costs[0] != (Cost{Project: "", Currency: "USD", Amount: 0.06}) {
		t.Fatalf("Costs = %+v, %v; want 0.06 USD", res, err)
	}
}

func TestOpenAICostsOnePageByDefault(t *testing.T) {
	srv, queries := fakeCosts(t, openAICostsPath, openAICostBuckets)
	res, err := newOpenAICosts(srv.URL).Costs(context.Background(), june)
	if err != nil || res.Pages != 1 || len(res.Costs) != 4 {
		t.Fatalf("Costs = %+v, %v; want one page, 4 costs", res, err)
	}
	if want := "bucket_width=1d&group_by=project_id&limit=31&start_time=1748736000"; (*queries)[0] != want {
		t.Errorf("query = %q, want %q", (*queries)[0], want)
	}
}

func TestOpenAICostsEmptyMonth(t *testing.T) {
	srv, _ := fakeCosts(t, openAICostsPath, nil)
	res, err := newOpenAICosts(srv.URL).Costs(context.Background(), june)
	if err != nil || res.Pages != 1 || len(res.Costs) != 0 {
		t.Fatalf("Costs = %+v, %v; want one empty page", res, err)
	}
}

func newAnthropicCosts(url string) *Anthropic {
	return &Anthropic{Key: config.Secret(canary), BaseURL: url, Client: &http.Client{Timeout: 5 * time.Second}}
}

func TestAnthropicCostsPaginatesOverThreePages(t *testing.T) {
	srv, queries := fakeCosts(t, anthropicCostsPath, anthropicCostBuckets)
	c := newAnthropicCosts(srv.URL)
	c.CostBuckets = 2
	c.Workspace = "wrkspc_ignored"
	// The start of June in UTC, given in another zone.
	res, err := c.Costs(context.Background(), june.In(time.FixedZone("CEST", 2*3600)))
	checkNoKey(t, err)
	if err != nil {
		t.Fatal(err)
	}
	wantQueries := []string{
		"bucket_width=1d&group_by%5B%5D=workspace_id&limit=2&starting_at=2025-06-01T00%3A00%3A00Z",
		"bucket_width=1d&group_by%5B%5D=workspace_id&limit=2&page=page_2&starting_at=2025-06-01T00%3A00%3A00Z",
		"bucket_width=1d&group_by%5B%5D=workspace_id&limit=2&page=page_4&starting_at=2025-06-01T00%3A00%3A00Z",
	}
	if strings.Join(*queries, "\n") != strings.Join(wantQueries, "\n") {
		t.Errorf("queries =\n%s\nwant\n%s", strings.Join(*queries, "\n"), strings.Join(wantQueries, "\n"))
	}
	// Cents: "123.45" + "0.1" + "100" is $2.2355; the default workspace's
	// "1500" is $15.
	want := `"" USD 15.000000` + "\n" +
		`"wrkspc_01" USD 2.235500` + "\n" +
		`"wrkspc_02" USD 3.005000`
	if got := costsText(res.Costs); got != want || res.Pages != 3 {
		t.Errorf("Costs = %d pages,\n%s\nwant 3 pages,\n%s", res.Pages, got, want)
	}
}

// The reference's own example: "123.45" in "USD" represents $1.23 (and
// 0.45 of a cent).
func TestAnthropicCostsAreInCents(t *testing.T) {
	srv, _ := fakeCosts(t, anthropicCostsPath, []string{
		`{"starting_at":"2025-08-01T00:00:00Z","ending_at":"2025-08-02T00:00:00Z","results":[{"amount":"123.45","currency":"USD","workspace_id":"wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"}]}`,
		// "usd" is USD, whatever its case.
		`{"starting_at":"2025-08-02T00:00:00Z","ending_at":"2025-08-03T00:00:00Z","results":[{"amount":"1","currency":"usd","workspace_id":"wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"}]}`,
	})
	res, err := newAnthropicCosts(srv.URL).Costs(context.Background(), june)
	if err != nil || len(res.Costs) != 1 || math.Abs(res.Costs[0].Amount-1.2445) > 1e-12 || res.Costs[0].Currency != "USD" {
		t.Fatalf("Costs = %+v, %v; want $1.2445", res, err)
	}
}

func TestAnthropicCostsOnePageByDefault(t *testing.T) {
	srv, queries := fakeCosts(t, anthropicCostsPath, anthropicCostBuckets)
	res, err := newAnthropicCosts(srv.URL).Costs(context.Background(), june)
	if err != nil || res.Pages != 1 || len(res.Costs) != 3 {
		t.Fatalf("Costs = %+v, %v; want one page, 3 costs", res, err)
	}
	if want := "bucket_width=1d&group_by%5B%5D=workspace_id&limit=31&starting_at=2025-06-01T00%3A00%3A00Z"; (*queries)[0] != want {
		t.Errorf("query = %q, want %q", (*queries)[0], want)
	}
}

func TestAnthropicCostsEmptyMonth(t *testing.T) {
	srv, _ := fakeCosts(t, anthropicCostsPath, []string{`{"starting_at":"2025-06-01T00:00:00Z","ending_at":"2025-06-02T00:00:00Z","results":[]}`})
	res, err := newAnthropicCosts(srv.URL).Costs(context.Background(), june)
	if err != nil || res.Pages != 1 || len(res.Costs) != 0 {
		t.Fatalf("Costs = %+v, %v; want one page without costs", res, err)
	}
}

// costsClients are both clients, as functions of a base URL, with the
// name of their API in errors.
var costsClients = []struct {
	api   string
	path  string
	costs func(url string) func(context.Context, time.Time) (CostResult, error)
}{
	{openAICostsAPI, openAICostsPath, func(url string) func(context.Context, time.Time) (CostResult, error) {
		return newOpenAICosts(url).Costs
	}},
	{anthropicCostsAPI, anthropicCostsPath, func(url string) func(context.Context, time.Time) (CostResult, error) {
		return newAnthropicCosts(url).Costs
	}},
}

func TestCostsWrongKey(t *testing.T) {
	for _, c := range costsClients {
		t.Run(c.api, func(t *testing.T) {
			srv, _ := fakeCosts(t, c.path, openAICostBuckets)
			var err error
			if c.api == openAICostsAPI {
				client := newOpenAICosts(srv.URL)
				client.Key = config.Secret(canary + "-wrong")
				_, err = client.Costs(context.Background(), june)
			} else {
				client := newAnthropicCosts(srv.URL)
				client.Key = config.Secret(canary + "-wrong")
				_, err = client.Costs(context.Background(), june)
			}
			checkNoKey(t, err)
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Page != 1 || e.API != c.api || strings.Contains(err.Error(), "Incorrect") {
				t.Fatalf("Costs = %v, want a 401 on page 1 without the body's text", err)
			}
		})
	}
}

// A body that is not a page of costs as documented fails the read, for
// each client: a month's spend is never a guess.
func TestCostsMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string // served as the first page, with the key echoed in place of KEY
		want error
		only string // one client's API, or both
		page int    // the page that fails, if not the first
	}{
		{name: "not json", body: `Bad gateway: KEY`, want: ErrMalformed},
		{name: "truncated", body: `{"data":[{"results":[{"amount":`, want: ErrMalformed},
		{name: "an error envelope", body: `{"error":{"message":"KEY"}}`, want: ErrMalformed},
		{name: "no has_more", body: `{"data":[]}`, want: ErrMalformed},
		{name: "data null", body: `{"data":null,"has_more":false}`, want: ErrMalformed},
		{name: "a bucket without results", body: `{"data":[{"start_time":1}],"has_more":false}`, want: ErrMalformed},
		{name: "has_more, no next_page", body: `{"data":[],"has_more":true,"next_page":null}`, want: ErrMalformed},
		{name: "has_more, empty next_page", body: `{"data":[],"has_more":true,"next_page":""}`, want: ErrMalformed},
		{name: "has_more, next_page repeats", body: `{"data":[],"has_more":true,"next_page":"page_0"}`, want: ErrMalformed, page: 2},
		{name: "no amount", only: openAICostsAPI, body: `{"data":[{"results":[{"project_id":"KEY"}]}],"has_more":false}`, want: ErrMalformed},
		{name: "amount without value", only: openAICostsAPI, body: `{"data":[{"results":[{"amount":{"currency":"usd"}}]}],"has_more":false}`, want: ErrMalformed},
		{name: "value a string", only: openAICostsAPI, body: `{"data":[{"results":[{"amount":{"value":"0.5","currency":"usd"}}]}],"has_more":false}`, want: ErrMalformed},
		{name: "no currency", only: openAICostsAPI, body: `{"data":[{"results":[{"amount":{"value":0.5}}]}],"has_more":false}`, want: ErrMalformed},
		{name: "a currency that is no code", only: openAICostsAPI, body: `{"data":[{"results":[{"amount":{"value":0.5,"currency":"KEY"}}]}],"has_more":false}`, want: ErrMalformed},
		{name: "a sum past the largest float", only: openAICostsAPI, want: ErrMalformed,
			body: `{"data":[{"results":[{"amount":{"value":1e308,"currency":"usd"}},{"amount":{"value":1e308,"currency":"usd"}}]}],"has_more":false}`},
		{name: "no amount", only: anthropicCostsAPI, body: `{"data":[{"results":[{"currency":"USD"}]}],"has_more":false}`, want: ErrMalformed},
		{name: "amount a number", only: anthropicCostsAPI, body: `{"data":[{"results":[{"amount":123.45,"currency":"USD"}]}],"has_more":false}`, want: ErrMalformed},
		{name: "amount with an exponent", only: anthropicCostsAPI, body: `{"data":[{"results":[{"amount":"1e400","currency":"USD"}]}],"has_more":false}`, want: ErrMalformed},
		{name: "amount not a figure", only: anthropicCostsAPI, body: `{"data":[{"results":[{"amount":"KEY","currency":"USD"}]}],"has_more":false}`, want: ErrMalformed},
		{name: "amount NaN", only: anthropicCostsAPI, body: `{"data":[{"results":[{"amount":"NaN","currency":"USD"}]}],"has_more":false}`, want: ErrMalformed},
		{name: "a currency without a documented unit", only: anthropicCostsAPI, body: `{"data":[{"results":[{"amount":"100","currency":"EUR"}]}],"has_more":false}`, want: ErrCurrency},
	} {
		for _, c := range costsClients {
			if tc.only != "" && tc.only != c.api {
				continue
			}
			t.Run(c.api+"/"+tc.name, func(t *testing.T) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					key := r.Header.Get("x-api-key") + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
					_, _ = fmt.Fprint(w, strings.ReplaceAll(tc.body, "KEY", key))
				}))
				defer srv.Close()
				res, err := c.costs(srv.URL)(context.Background(), june)
				checkNoKey(t, err)
				if !errors.Is(err, tc.want) || len(res.Costs) != 0 {
					t.Fatalf("Costs = %+v, %v; want %v and no costs", res, err, tc.want)
				}
				var e *Error
				if !errors.As(err, &e) || e.API != c.api || e.Page != max(tc.page, 1) {
					t.Fatalf("Costs = %v, want an *Error of %s on page %d", err, c.api, max(tc.page, 1))
				}
			})
		}
	}
}

// A page after the first that fails fails the whole read: a part of the
// month's spend is not its spend.
func TestCostsFailOnALaterPage(t *testing.T) {
	for _, c := range costsClients {
		t.Run(c.api, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("page") == "" {
					_, _ = fmt.Fprint(w, `{"data":[{"results":[]}],"has_more":true,"next_page":"page_1"}`)
					return
				}
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusTooManyRequests)
			}))
			defer srv.Close()
			res, err := c.costs(srv.URL)(context.Background(), june)
			var e *Error
			if !errors.As(err, &e) || e.Page != 2 || e.Status != http.StatusTooManyRequests || e.RetryAfter != 30*time.Second || res.Pages != 0 {
				t.Fatalf("Costs = %+v, %v; want a 429 on page 2, to retry after 30s", res, err)
			}
		})
	}
}

func TestCostsRateLimited(t *testing.T) {
	for _, c := range costsClients {
		t.Run(c.api, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "17")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = fmt.Fprintf(w, `{"type":"error","error":{"type":"rate_limit_error","message":"%s%s"}}`, r.Header.Get("x-api-key"), r.Header.Get("Authorization"))
			}))
			defer srv.Close()
			_, err := c.costs(srv.URL)(context.Background(), june)
			checkNoKey(t, err)
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.RetryAfter != 17*time.Second || !strings.Contains(err.Error(), "retry after 17s") {
				t.Fatalf("Costs = %v, want a 429 to retry after 17s", err)
			}
		})
	}
}

func TestCostsBodyOverCap(t *testing.T) {
	for _, c := range costsClients {
		t.Run(c.api, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = fmt.Fprintf(w, `{"data":[],"has_more":false,"pad":"%s"}`, strings.Repeat(canary, MaxBodyBytes/len(canary)+1))
			}))
			defer srv.Close()
			_, err := c.costs(srv.URL)(context.Background(), june)
			checkNoKey(t, err)
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("Costs = %v, want a body over the cap", err)
			}
		})
	}
}

func TestCostsPageCap(t *testing.T) {
	srv, queries := fakeCosts(t, openAICostsPath, openAICostBuckets)
	c := newOpenAICosts(srv.URL)
	c.CostBuckets, c.MaxPages = 2, 2
	res, err := c.Costs(context.Background(), june)
	var e *Error
	if !errors.Is(err, ErrTooManyPages) || !errors.As(err, &e) || e.Page != 3 || len(*queries) != 2 || len(res.Costs) != 0 {
		t.Fatalf("Costs = %+v, %v after %d requests; want the page cap at page 3 after 2, no costs", res, err, len(*queries))
	}

	srv, queries = fakeCosts(t, anthropicCostsPath, anthropicCostBuckets)
	a := newAnthropicCosts(srv.URL)
	a.CostBuckets, a.MaxPages = 2, 2
	if _, err := a.Costs(context.Background(), june); !errors.Is(err, ErrTooManyPages) || len(*queries) != 2 {
		t.Fatalf("Costs = %v after %d requests; want the page cap after 2", err, len(*queries))
	}
}

// A redirect to another host must not carry the admin key there.
func TestCostsRefuseRedirects(t *testing.T) {
	for _, c := range costsClients {
		t.Run(c.api, func(t *testing.T) {
			elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				t.Errorf("the redirect was followed, Authorization %q, x-api-key %q", r.Header.Get("Authorization"), r.Header.Get("x-api-key"))
			}))
			defer elsewhere.Close()
			srv := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/steal", http.StatusTemporaryRedirect))
			defer srv.Close()
			_, err := c.costs(srv.URL)(context.Background(), june)
			checkNoKey(t, err)
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusTemporaryRedirect {
				t.Fatalf("Costs = %v, want the 307 refused", err)
			}
		})
	}
}

func TestCostsTransportErrorNamesNoURL(t *testing.T) {
	for _, c := range costsClients {
		t.Run(c.api, func(t *testing.T) {
			srv := httptest.NewServer(http.NotFoundHandler())
			srv.Close()
			_, err := c.costs(srv.URL)(context.Background(), june)
			checkNoKey(t, err)
			if err == nil || strings.Contains(err.Error(), "/v1/") {
				t.Fatalf("Costs = %v, want a transport error without the URL", err)
			}
		})
	}
}
