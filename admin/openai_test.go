package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// canary is an admin key that must appear in no error: the fakes echo it
// in their bodies, as providers echo a wrong key.
const canary = "sk-admin-CANARY-7f3e9a"

// checkNoKey fails t if err's text holds the canary.
func checkNoKey(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Fatalf("error holds the admin key: %v", err)
	}
	if err != nil && strings.Contains(fmt.Sprintf("%+v %#v", err, err), canary) {
		t.Fatalf("error's formats hold the admin key")
	}
}

// openAIRateLimits are a project's limits as the reference documents them.
var openAIRateLimits = []string{
	`{"object":"project.rate_limit","id":"rl-gpt-4o","model":"gpt-4o","max_requests_per_1_minute":500,"max_tokens_per_1_minute":30000,"batch_1_day_max_input_tokens":90000}`,
	`{"object":"project.rate_limit","id":"rl-gpt-4o-mini","model":"gpt-4o-mini","max_requests_per_1_minute":500,"max_tokens_per_1_minute":200000,"max_requests_per_1_day":10000,"batch_1_day_max_input_tokens":null}`,
	`{"object":"project.rate_limit","id":"rl-dall-e-3","model":"dall-e-3","max_requests_per_1_minute":500,"max_tokens_per_1_minute":0,"max_images_per_1_minute":5}`,
	`{"object":"project.rate_limit","id":"rl-whisper-1","model":"whisper-1","max_requests_per_1_minute":500,"max_tokens_per_1_minute":0,"max_audio_megabytes_per_1_minute":100}`,
	`{"object":"project.rate_limit","id":"rl-o3","model":"o3","max_requests_per_1_minute":500,"max_tokens_per_1_minute":30000,"max_videos_per_1_hour":3}`,
}

// fakeOpenAI serves items as OpenAI's list endpoint does, limit (default
// 100) per page after the item whose id is after; it answers 401 with the
// key echoed to any other key.
func fakeOpenAI(t *testing.T, items []string) (*httptest.Server, *[]string) {
	t.Helper()
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		if r.Method != http.MethodGet || r.URL.Path != "/v1/organization/projects/proj_abc/rate_limits" {
			http.NotFound(w, r)
			return
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+canary {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s","type":"invalid_request_error"}}`, got)
			return
		}
		limit := 100
		if l := r.URL.Query().Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
		}
		start := 0
		if after := r.URL.Query().Get("after"); after != "" {
			for i, it := range items {
				if strings.Contains(it, `"id":"`+after+`"`) {
					start = i + 1
				}
			}
		}
		end := min(start+limit, len(items))
		page := items[start:end]
		var ids []string
		for _, it := range page {
			var v struct{ ID string }
			_ = json.Unmarshal([]byte(it), &v)
			ids = append(ids, v.ID)
		}
		first, last := "null", "null"
		if len(ids) > 0 {
			first, last = strconv.Quote(ids[0]), strconv.Quote(ids[len(ids)-1])
		}
		_, _ = fmt.Fprintf(w, `{"object":"list","data":[%s],"first_id":%s,"last_id":%s,"has_more":%t}`,
			strings.Join(page, ","), first, last, end < len(items))
	}))
	t.Cleanup(srv.Close)
	return srv, &queries
}

func newOpenAI(url string) *OpenAI {
	return &OpenAI{Key: config.Secret(canary), ProjectID: "proj_abc", BaseURL: url + "/v1", Client: &http.Client{Timeout: 5 * time.Second}}
}

func TestOpenAIPaginatesOverThreePages(t *testing.T) {
	srv, queries := fakeOpenAI(t, openAIRateLimits)
	c := newOpenAI(srv.URL)
	c.PageLimit = 2
	res, err := c.List(context.Background())
	checkNoKey(t, err)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pages != 3 {
		t.Errorf("pages = %d, want 3", res.Pages)
	}
	wantQueries := []string{"limit=2", "after=rl-gpt-4o-mini&limit=2", "after=rl-whisper-1&limit=2"}
	if fmt.Sprint(*queries) != fmt.Sprint(wantQueries) {
		t.Errorf("queries = %q, want %q", *queries, wantQueries)
	}
	lim := func(model, resource, window string, v float64) Limit {
		return Limit{Model: model, Observation: ratelimit.Observation{Kind: ratelimit.Limit, Resource: resource, Window: window, Value: v}}
	}
	want := []Limit{
		lim("gpt-4o", "batch_input_tokens", "day", 90000),
		lim("gpt-4o", "requests", "minute", 500),
		lim("gpt-4o", "tokens", "minute", 30000),
		lim("gpt-4o-mini", "requests", "day", 10000),
		lim("gpt-4o-mini", "requests", "minute", 500),
		lim("gpt-4o-mini", "tokens", "minute", 200000),
		lim("dall-e-3", "images", "minute", 5),
		lim("dall-e-3", "requests", "minute", 500),
		lim("dall-e-3", "tokens", "minute", 0),
		lim("whisper-1", "audio_megabytes", "minute", 100),
		lim("whisper-1", "requests", "minute", 500),
		lim("whisper-1", "tokens", "minute", 0),
		lim("o3", "requests", "minute", 500),
		lim("o3", "tokens", "minute", 30000),
	}
	if fmt.Sprint(res.Limits) != fmt.Sprint(want) {
		t.Errorf("limits =\n%v\nwant\n%v", res.Limits, want)
	}
	if res.Dropped != 1 { // o3's max_videos_per_1_hour: not in the table
		t.Errorf("dropped = %d, want 1", res.Dropped)
	}
}

func TestOpenAIOnePageWithoutLimit(t *testing.T) {
	srv, queries := fakeOpenAI(t, openAIRateLimits)
	res, err := newOpenAI(srv.URL).List(context.Background())
	if err != nil || res.Pages != 1 || len(res.Limits) != 14 {
		t.Fatalf("List = %d pages, %d limits, %v; want 1, 14, nil", res.Pages, len(res.Limits), err)
	}
	if (*queries)[0] != "" {
		t.Errorf("query = %q, want none", (*queries)[0])
	}
}

func TestOpenAIPageCap(t *testing.T) {
	srv, queries := fakeOpenAI(t, openAIRateLimits)
	c := newOpenAI(srv.URL)
	c.PageLimit, c.MaxPages = 2, 2
	res, err := c.List(context.Background())
	checkNoKey(t, err)
	var e *Error
	if !errors.Is(err, ErrTooManyPages) || !errors.As(err, &e) || e.Page != 3 {
		t.Fatalf("List = %v, want the page cap at page 3", err)
	}
	if len(*queries) != 2 || len(res.Limits) != 0 {
		t.Errorf("%d requests, %d limits; want 2 and none", len(*queries), len(res.Limits))
	}
}

func TestOpenAIEmptyList(t *testing.T) {
	srv, _ := fakeOpenAI(t, nil)
	res, err := newOpenAI(srv.URL).List(context.Background())
	if err != nil || res.Pages != 1 || len(res.Limits) != 0 || res.Dropped != 0 {
		t.Fatalf("List = %+v, %v; want one empty page", res, err)
	}
}

func TestOpenAIUnauthorized(t *testing.T) {
	srv, _ := fakeOpenAI(t, openAIRateLimits)
	c := newOpenAI(srv.URL)
	c.Key = config.Secret(canary + "-wrong")
	_, err := c.List(context.Background())
	checkNoKey(t, err)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Page != 1 || e.API != openAIAPI {
		t.Fatalf("List = %v, want a 401 on page 1", err)
	}
	if strings.Contains(err.Error(), "Incorrect") {
		t.Errorf("error quotes the body: %v", err)
	}
}

// serveOn answers the project's rate limits with h, the key unchecked.
func serveOn(t *testing.T, h http.HandlerFunc) *OpenAI {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return newOpenAI(srv.URL)
}

func TestOpenAIRateLimited(t *testing.T) {
	c := serveOn(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = fmt.Fprintf(w, `{"error":{"message":"Rate limit reached for %s"}}`, r.Header.Get("Authorization"))
	})
	_, err := c.List(context.Background())
	checkNoKey(t, err)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.RetryAfter != 30*time.Second {
		t.Fatalf("List = %v, want a 429 to retry after 30s", err)
	}
	if !strings.Contains(err.Error(), "retry after 30s") {
		t.Errorf("error %q says not when to retry", err)
	}
}

func TestOpenAIBodyOverCap(t *testing.T) {
	c := serveOn(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"object":"list","data":[],"pad":"%s","has_more":false}`, strings.Repeat("x", MaxBodyBytes))
	})
	_, err := c.List(context.Background())
	checkNoKey(t, err)
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("List = %v, want a body over the cap", err)
	}
}

func TestOpenAIBodyAtCap(t *testing.T) {
	c := serveOn(t, func(w http.ResponseWriter, r *http.Request) {
		head, tail := `{"object":"list","data":[],"pad":"`, `","has_more":false}`
		_, _ = fmt.Fprint(w, head+strings.Repeat("x", MaxBodyBytes-len(head)-len(tail))+tail)
	})
	if _, err := c.List(context.Background()); err != nil {
		t.Fatalf("List of a body of exactly the cap = %v", err)
	}
}

func TestOpenAIMalformedBody(t *testing.T) {
	for name, body := range map[string]string{
		"not json":               `Bad gateway: ` + canary,
		"truncated":              `{"object":"list","data":[{"model":"gpt-4o"`,
		"data not a list":        `{"object":"list","data":{"model":"` + canary + `"}}`,
		"has_more, no last_id":   `{"object":"list","data":[],"has_more":true,"last_id":null}`,
		"has_more, empty cursor": `{"object":"list","data":[],"has_more":true,"last_id":""}`,
		"has_more, cursor loops": `{"object":"list","data":[],"has_more":true,"last_id":"rl-1"}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := serveOn(t, func(w http.ResponseWriter, r *http.Request) { _, _ = fmt.Fprint(w, body) })
			_, err := c.List(context.Background())
			checkNoKey(t, err)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("List = %v, want a malformed body", err)
			}
		})
	}
}

func TestOpenAIDropsWhatItCannotRead(t *testing.T) {
	c := serveOn(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprint(w, `{"object":"list","data":[`+
			`{"id":"a","model":"gpt-4o","max_requests_per_1_minute":-1,"max_tokens_per_1_minute":"many"},`+
			`{"id":"b","max_requests_per_1_minute":5}],"has_more":false}`)
	})
	res, err := c.List(context.Background())
	if err != nil || len(res.Limits) != 0 || res.Dropped != 3 {
		t.Fatalf("List = %+v, %v; want no limits and 3 dropped", res, err)
	}
}

// TestOpenAIRefusesRedirects: a redirect to another host must not carry the
// admin key there.
func TestOpenAIRefusesRedirects(t *testing.T) {
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed, Authorization %q", r.Header.Get("Authorization"))
	}))
	defer elsewhere.Close()
	c := serveOn(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
	})
	_, err := c.List(context.Background())
	checkNoKey(t, err)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusTemporaryRedirect {
		t.Fatalf("List = %v, want the 307 refused", err)
	}
}

func TestOpenAITransportErrorNamesNoURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	_, err := newOpenAI(srv.URL).List(context.Background())
	checkNoKey(t, err)
	if err == nil || strings.Contains(err.Error(), "rate_limits") {
		t.Fatalf("List = %v, want a transport error without the URL", err)
	}
}

// A project that lists more than DefaultMaxLimits limits is refused, in
// one page or over several.
func TestOpenAILimitCap(t *testing.T) {
	items := make([]string, DefaultMaxLimits/6+1)
	for i := range items {
		items[i] = fmt.Sprintf(`{"id":"rl-%d","model":"m%d","max_requests_per_1_minute":1,"max_tokens_per_1_minute":2,"max_requests_per_1_day":3,`+
			`"max_images_per_1_minute":4,"max_audio_megabytes_per_1_minute":5,"batch_1_day_max_input_tokens":6}`, i, i)
	}
	srv, _ := fakeOpenAI(t, items)
	for _, pageLimit := range []int{len(items), 100} {
		c := newOpenAI(srv.URL)
		c.PageLimit = pageLimit
		res, err := c.List(context.Background())
		checkNoKey(t, err)
		if !errors.Is(err, ErrTooManyLimits) || len(res.Limits) != 0 {
			t.Errorf("limit %d: List = %d limits, %v; want the limit cap", pageLimit, len(res.Limits), err)
		}
	}
	// At the cap, the list is read.
	srv, _ = fakeOpenAI(t, items[:DefaultMaxLimits/6])
	if res, err := newOpenAI(srv.URL).List(context.Background()); err != nil || len(res.Limits) != DefaultMaxLimits/6*6 {
		t.Errorf("List = %d limits, %v; want %d", len(res.Limits), err, DefaultMaxLimits/6*6)
	}
}

// A model name that could not be a label value (too long, or with
// whitespace or control characters) takes its limits with it.
func TestOpenAIDropsModelNamesThatAreNoLabel(t *testing.T) {
	long := strings.Repeat("m", MaxModelBytes+1)
	c := serveOn(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"object":"list","data":[`+
			`{"id":"a","model":%q,"max_requests_per_1_minute":5},`+
			`{"id":"b","model":"gpt 4o\n","max_requests_per_1_minute":5},`+
			`{"id":"c","model":%q,"max_requests_per_1_minute":5}],"has_more":false}`, long, long[1:])
	})
	res, err := c.List(context.Background())
	if err != nil || len(res.Limits) != 1 || res.Limits[0].Model != long[1:] || res.Dropped != 2 {
		t.Fatalf("List = %d limits, %d dropped, %v; want the %d-byte name's limit alone, 2 dropped", len(res.Limits), res.Dropped, err, MaxModelBytes)
	}
}
