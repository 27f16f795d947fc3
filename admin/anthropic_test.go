package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// anthropicEntries are an organization's entries as the reference
// documents them: model groups, and a group of an API surface.
var anthropicEntries = []string{
	`{"type":"rate_limit","id":"rl_1","group":{"id":"rlg_1","type":"model_group","display_name":"Claude Sonnet 4.x"},"models":["claude-sonnet-4-5","claude-sonnet-4-5-20250929"],"limits":[{"type":"requests_per_minute","value":4000},{"type":"input_tokens_per_minute","value":2000000},{"type":"output_tokens_per_minute","value":400000}]}`,
	`{"type":"rate_limit","id":"rl_2","group":{"id":"rlg_2","type":"model_group","display_name":"Claude Haiku 4.x"},"models":["claude-haiku-4-5"],"limits":[{"type":"requests_per_minute","value":4000},{"type":"fast_otpm","value":10}]}`,
	`{"type":"rate_limit","id":"rl_3","group":{"id":"rlg_3","type":"batch"},"models":null,"limits":[{"type":"requests_per_minute","value":4000}]}`,
	`{"type":"rate_limit","id":"rl_4","group":{"id":"rlg_4","type":"web_search"},"models":null,"limits":[{"type":"tool_uses_per_second","value":30}]}`,
	`{"type":"rate_limit","id":"rl_5","group":{"id":"rlg_5","type":"model_group","display_name":"Claude Opus 4.x"},"models":["claude-opus-4-1"],"limits":[{"type":"tokens_per_day","value":null},{"type":"tokens_per_minute","value":800000}]}`,
}

// fakeAnthropic serves entries as the Rate Limits API does: all in one page
// without limit, else limit per page with next_page the index to go on
// from; 401 with the key echoed to any other key.
func fakeAnthropic(t *testing.T, path string, entries []string) (*httptest.Server, *[]string) {
	t.Helper()
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		if r.Method != http.MethodGet || r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		if got := r.Header.Get("x-api-key"); got != canary || r.Header.Get("anthropic-version") != "2023-06-01" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = fmt.Fprintf(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key %s"}}`, got)
			return
		}
		limit := len(entries)
		if l := r.URL.Query().Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
		}
		start := 0
		if p := r.URL.Query().Get("page"); p != "" {
			start, _ = strconv.Atoi(strings.TrimPrefix(p, "page_"))
		}
		end := min(start+limit, len(entries))
		next := "null"
		if end < len(entries) {
			next = strconv.Quote("page_" + strconv.Itoa(end))
		}
		_, _ = fmt.Fprintf(w, `{"data":[%s],"next_page":%s}`, strings.Join(entries[start:end], ","), next)
	}))
	t.Cleanup(srv.Close)
	return srv, &queries
}

const anthropicOrgPath = "/v1/organizations/rate_limits"

func newAnthropic(url string) *Anthropic {
	return &Anthropic{Key: config.Secret(canary), BaseURL: url, Client: &http.Client{Timeout: 5 * time.Second}}
}

func TestAnthropicPaginatesOverThreePages(t *testing.T) {
	srv, queries := fakeAnthropic(t, anthropicOrgPath, anthropicEntries)
	c := newAnthropic(srv.URL)
	c.PageLimit = 2
	res, err := c.List(context.Background())
	checkNoKey(t, err)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"limit=2", "limit=2&page=page_2", "limit=2&page=page_4"}; fmt.Sprint(*queries) != fmt.Sprint(want) {
		t.Errorf("queries = %q, want %q", *queries, want)
	}
	var got []string
	for _, l := range res.Limits {
		got = append(got, fmt.Sprintf("%s/%s %s/%s=%g", l.Group, l.Model, l.Resource, l.Window, l.Value))
	}
	want := []string{
		"model_group/claude-sonnet-4-5 requests/minute=4000",
		"model_group/claude-sonnet-4-5-20250929 requests/minute=4000",
		"model_group/claude-sonnet-4-5 input_tokens/minute=2e+06",
		"model_group/claude-sonnet-4-5-20250929 input_tokens/minute=2e+06",
		"model_group/claude-sonnet-4-5 output_tokens/minute=400000",
		"model_group/claude-sonnet-4-5-20250929 output_tokens/minute=400000",
		"model_group/claude-haiku-4-5 requests/minute=4000",
		"batch/ requests/minute=4000",
		"web_search/ tool_uses/second=30",
		"model_group/claude-opus-4-1 tokens/minute=800000",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("limits =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.Pages != 3 || res.Dropped != 2 { // fast_otpm, and a null value
		t.Errorf("pages %d, dropped %d; want 3 and 2", res.Pages, res.Dropped)
	}
}

func TestAnthropicOnePageWithoutLimit(t *testing.T) {
	srv, queries := fakeAnthropic(t, anthropicOrgPath, anthropicEntries)
	res, err := newAnthropic(srv.URL).List(context.Background())
	if err != nil || res.Pages != 1 || len(res.Limits) != 10 || (*queries)[0] != "" {
		t.Fatalf("List = %d pages, %d limits, %v, query %q; want 1, 10, nil, none", res.Pages, len(res.Limits), err, (*queries)[0])
	}
}

func TestAnthropicWorkspace(t *testing.T) {
	srv, queries := fakeAnthropic(t, "/v1/organizations/workspaces/wrkspc_01/rate_limits", []string{
		`{"type":"workspace_rate_limit","rate_limit_id":"rl_1","workspace_id":"wrkspc_01","group":{"id":"rlg_1","type":"model_group","display_name":"Claude Sonnet 4.x"},"models":["claude-sonnet-4-5"],"limits":[` +
			`{"type":"requests_per_minute","value":100,"org_limit":4000,"source":{"type":"workspace"}},` +
			`{"type":"input_tokens_per_minute","value":2000000,"org_limit":2000000,"source":{"type":"organization"}}]}`,
	})
	c := newAnthropic(srv.URL)
	c.Workspace, c.IncludeInherited = "wrkspc_01", true
	res, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if (*queries)[0] != "include_inherited=true" {
		t.Errorf("query = %q", (*queries)[0])
	}
	var got []string
	for _, l := range res.Limits {
		got = append(got, fmt.Sprintf("%s %s %s %s/%s=%g", l.Workspace, l.Source, l.Model, l.Resource, l.Window, l.Value))
	}
	want := "wrkspc_01 workspace claude-sonnet-4-5 requests/minute=100\nwrkspc_01 organization claude-sonnet-4-5 input_tokens/minute=2e+06"
	if strings.Join(got, "\n") != want {
		t.Errorf("limits =\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}

func TestAnthropicPageCap(t *testing.T) {
	srv, queries := fakeAnthropic(t, anthropicOrgPath, anthropicEntries)
	c := newAnthropic(srv.URL)
	c.PageLimit, c.MaxPages = 2, 2
	_, err := c.List(context.Background())
	checkNoKey(t, err)
	var e *Error
	if !errors.Is(err, ErrTooManyPages) || !errors.As(err, &e) || e.Page != 3 || len(*queries) != 2 {
		t.Fatalf("List = %v after %d requests, want the page cap at page 3 after 2", err, len(*queries))
	}
}

func TestAnthropicEmptyList(t *testing.T) {
	srv, _ := fakeAnthropic(t, anthropicOrgPath, nil)
	res, err := newAnthropic(srv.URL).List(context.Background())
	if err != nil || res.Pages != 1 || len(res.Limits) != 0 {
		t.Fatalf("List = %+v, %v; want one empty page", res, err)
	}
}

func TestAnthropicUnauthorized(t *testing.T) {
	srv, _ := fakeAnthropic(t, anthropicOrgPath, anthropicEntries)
	c := newAnthropic(srv.URL)
	c.Key = config.Secret(canary + "-wrong")
	_, err := c.List(context.Background())
	checkNoKey(t, err)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.API != anthropicOrgAPI || strings.Contains(err.Error(), "invalid") {
		t.Fatalf("List = %v, want a 401 without the body's text", err)
	}
}

func TestAnthropicErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		h    http.HandlerFunc
		want error
	}{
		"429": {func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "17")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = fmt.Fprintf(w, `{"type":"error","error":{"type":"rate_limit_error","message":"%s"}}`, r.Header.Get("x-api-key"))
		}, ErrStatus},
		"body over the cap": {func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, `{"data":[],"next_page":null,"pad":"%s"}`, strings.Repeat(canary, MaxBodyBytes/len(canary)+1))
		}, ErrBodyTooLarge},
		"malformed": {func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, `{"data":[{"models":"%s"}]}`, r.Header.Get("x-api-key"))
		}, ErrMalformed},
		"cursor loop": {func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprint(w, `{"data":[],"next_page":"page_1"}`)
		}, ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			_, err := newAnthropic(srv.URL).List(context.Background())
			checkNoKey(t, err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("List = %v, want %v", err, tc.want)
			}
			var e *Error
			if name == "429" && (!errors.As(err, &e) || e.Status != 429 || e.RetryAfter != 17*time.Second) {
				t.Fatalf("List = %v, want a 429 to retry after 17s", err)
			}
		})
	}
}

func TestAnthropicRefusesRedirects(t *testing.T) {
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed, x-api-key %q", r.Header.Get("x-api-key"))
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.RedirectHandler(elsewhere.URL, http.StatusFound))
	defer srv.Close()
	_, err := newAnthropic(srv.URL).List(context.Background())
	checkNoKey(t, err)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusFound {
		t.Fatalf("List = %v, want the 302 refused", err)
	}
}

// A model group that names thousands of models, each taking every limit,
// stops the list at DefaultMaxLimits limits: a page of 1 MiB must not
// become hundreds of thousands of limits in memory.
func TestAnthropicLimitCap(t *testing.T) {
	models := make([]string, DefaultMaxLimits/6+1)
	for i := range models {
		models[i] = strconv.Quote(fmt.Sprintf("m%d", i))
	}
	var limits []string
	for limiter := range anthropicLimiters {
		limits = append(limits, fmt.Sprintf(`{"type":%q,"value":1}`, limiter))
	}
	entry := fmt.Sprintf(`{"group":{"type":"model_group"},"models":[%s],"limits":[%s]}`, strings.Join(models, ","), strings.Join(limits, ","))
	srv, _ := fakeAnthropic(t, anthropicOrgPath, []string{entry})
	res, err := newAnthropic(srv.URL).List(context.Background())
	checkNoKey(t, err)
	var e *Error
	if !errors.Is(err, ErrTooManyLimits) || !errors.As(err, &e) || e.Page != 1 || len(res.Limits) != 0 {
		t.Fatalf("List = %d limits, %v; want the limit cap on page 1", len(res.Limits), err)
	}
}

// A model group's names that could not be label values are left out, and
// counted; the group's other names keep its limits.
func TestAnthropicDropsModelNamesThatAreNoLabel(t *testing.T) {
	srv, _ := fakeAnthropic(t, anthropicOrgPath, []string{
		`{"type":"rate_limit","group":{"type":"model_group"},"models":["claude-ok","bad name",` + strconv.Quote(strings.Repeat("x", MaxModelBytes+1)) + `],"limits":[{"type":"requests_per_minute","value":50}]}`,
	})
	res, err := newAnthropic(srv.URL).List(context.Background())
	if err != nil || len(res.Limits) != 1 || res.Limits[0].Model != "claude-ok" || res.Dropped != 2 {
		t.Fatalf("List = %+v, %v; want claude-ok's limit alone and 2 dropped", res, err)
	}
}
