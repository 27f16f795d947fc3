package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	openaioption "github.com/openai/openai-go/v3/option"
)

const (
	adminKey  = "sk-admin-test-canary-sim-0a1b"
	anthAdmin = "sk-ant-admin01-test-canary-sim-2c3d"
)

// The OpenAI SDK reads a project's rate limits from the simulator, page
// after page, with the fields each model has.
func TestOpenAIAdminWithSDK(t *testing.T) {
	sim := NewDialect(OpenAI)
	sim.SetAdminLimits(adminKey, "proj_abc",
		AdminLimit{Models: []string{"gpt-4o-mini"}, Values: map[string]float64{"max_requests_per_1_minute": 500, "max_tokens_per_1_minute": 200000, "max_requests_per_1_day": 10000}},
		AdminLimit{Models: []string{"gpt-4o"}, Values: map[string]float64{"max_requests_per_1_minute": 500, "max_tokens_per_1_minute": 30000, "batch_1_day_max_input_tokens": 90000}},
		AdminLimit{Models: []string{"dall-e-3"}, Values: map[string]float64{"max_requests_per_1_minute": 50, "max_tokens_per_1_minute": 0, "max_images_per_1_minute": 5}},
	)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	client := openai.NewClient(openaioption.WithBaseURL(srv.URL+"/v1"), openaioption.WithAdminAPIKey(adminKey), openaioption.WithMaxRetries(0))
	pager := client.Admin.Organization.Projects.RateLimits.ListRateLimitsAutoPaging(context.Background(), "proj_abc",
		openai.AdminOrganizationProjectRateLimitListRateLimitsParams{Limit: openai.Int(2)})
	var got []string
	for pager.Next() {
		l := pager.Current()
		got = append(got, fmt.Sprintf("%s %s rpm=%d tpm=%d rpd=%d(%t) batch=%d images=%d", l.ID, l.Model, l.MaxRequestsPer1Minute, l.MaxTokensPer1Minute,
			l.MaxRequestsPer1Day, l.JSON.MaxRequestsPer1Day.Valid(), l.Batch1DayMaxInputTokens, l.MaxImagesPer1Minute))
	}
	if err := pager.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"rl-gpt-4o-mini gpt-4o-mini rpm=500 tpm=200000 rpd=10000(true) batch=0 images=0",
		"rl-gpt-4o gpt-4o rpm=500 tpm=30000 rpd=0(false) batch=90000 images=0",
		"rl-dall-e-3 dall-e-3 rpm=50 tpm=0 rpd=0(false) batch=0 images=5",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("limits:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := sim.AdminRequests(); n != 2 {
		t.Errorf("%d admin requests for 3 entries 2 a page, want 2", n)
	}
	if e, _ := sim.LastExchange(adminKey); e.KeyHeader != "Authorization" || e.Query != "after=rl-gpt-4o&limit=2" {
		t.Errorf("last exchange: key in %q, query %q", e.KeyHeader, e.Query)
	}

	// Another project is not found; another key is refused, and its body
	// echoes the key, as providers do.
	_, err := client.Admin.Organization.Projects.RateLimits.ListRateLimits(context.Background(), "proj_other", openai.AdminOrganizationProjectRateLimitListRateLimitsParams{})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Errorf("another project: %v", err)
	}
	status, body := get(t, srv.URL+"/v1/organization/projects/proj_abc/rate_limits", "Authorization", "Bearer sk-admin-wrong")
	if status != 401 || !strings.Contains(body, "sk-admin-wrong") {
		t.Errorf("a wrong key: %d %s", status, body)
	}
}

// The Anthropic SDK reads an organization's limits and a workspace's,
// with and without the values it inherits.
func TestAnthropicAdminWithSDK(t *testing.T) {
	sim := NewDialect(Anthropic)
	sim.SetAdminLimits(anthAdmin, "",
		AdminLimit{Models: []string{"claude-sonnet-4-5", "claude-sonnet-4-5-20250929"}, Values: map[string]float64{"requests_per_minute": 4000, "input_tokens_per_minute": 2e6}},
		AdminLimit{Models: []string{"claude-haiku-4-5"}, Values: map[string]float64{"requests_per_minute": 4000}},
		AdminLimit{Group: "batch", Values: map[string]float64{"requests_per_minute": 1000}},
	)
	sim.SetAdminLimits(anthAdmin, "wrkspc_01", AdminLimit{Models: []string{"claude-sonnet-4-5", "claude-sonnet-4-5-20250929"}, Values: map[string]float64{"requests_per_minute": 100}})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	client := anthropic.NewClient(anthropicoption.WithBaseURL(srv.URL), anthropicoption.WithAPIKey(anthAdmin), anthropicoption.WithMaxRetries(0))
	ctx := context.Background()

	var org []string
	pager := client.Organization.RateLimits.ListAutoPaging(ctx, anthropic.OrganizationRateLimitListParams{Limit: anthropic.Int(1)})
	for pager.Next() {
		e := pager.Current()
		var limits []string
		for _, l := range e.Limits {
			limits = append(limits, fmt.Sprintf("%s=%d", l.Type, l.Value))
		}
		org = append(org, fmt.Sprintf("%s %s %v %v", e.ID, e.Group.Type, e.Models, limits))
	}
	if err := pager.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"rl_01 model_group [claude-sonnet-4-5 claude-sonnet-4-5-20250929] [input_tokens_per_minute=2000000 requests_per_minute=4000]",
		"rl_02 model_group [claude-haiku-4-5] [requests_per_minute=4000]",
		"rl_03 batch [] [requests_per_minute=1000]",
	}
	if strings.Join(org, "\n") != strings.Join(want, "\n") {
		t.Errorf("organization:\n%s\nwant\n%s", strings.Join(org, "\n"), strings.Join(want, "\n"))
	}
	if n := sim.AdminRequests(); n != 3 {
		t.Errorf("%d requests for 3 entries one a page, want 3", n)
	}

	workspace := func(inherited bool) []string {
		params := anthropic.OrganizationWorkspaceRateLimitListParams{}
		if inherited {
			params.IncludeInherited = anthropic.Bool(true)
		}
		pager := client.Organization.Workspaces.RateLimits.ListAutoPaging(ctx, "wrkspc_01", params)
		var out []string
		for pager.Next() {
			e := pager.Current()
			for _, l := range e.Limits {
				out = append(out, fmt.Sprintf("%s %s %s=%d (org %d, %s)", e.WorkspaceID, e.RateLimitID, l.Type, l.Value, l.OrgLimit, l.Source.Type))
			}
		}
		if err := pager.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := workspace(false), []string{"wrkspc_01 rl_01 requests_per_minute=100 (org 4000, workspace)"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("workspace overrides:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want = []string{
		"wrkspc_01 rl_01 input_tokens_per_minute=2000000 (org 2000000, organization)",
		"wrkspc_01 rl_01 requests_per_minute=100 (org 4000, workspace)",
		"wrkspc_01 rl_02 requests_per_minute=4000 (org 4000, organization)",
		"wrkspc_01 rl_03 requests_per_minute=1000 (org 1000, organization)",
	}
	if got := workspace(true); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("workspace with inherited:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if e, _ := sim.LastExchange(anthAdmin); e.KeyHeader != "X-Api-Key" || e.Query != "include_inherited=true" {
		t.Errorf("last exchange: key in %q, query %q", e.KeyHeader, e.Query)
	}
}

// An admin key is refused where an API key goes, and the other way round;
// a fault answers its status with a Retry-After; other dialects have no
// admin API.
func TestAdminKeysApart(t *testing.T) {
	sim := NewDialect(Anthropic)
	sim.AddKey("sk-ant-test-api-key", FreeTrial())
	sim.SetAdminLimits(anthAdmin, "", AdminLimit{Models: []string{"claude-haiku-4-5"}, Values: map[string]float64{"requests_per_minute": 50}})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	const orgPath = "/v1/organizations/rate_limits"
	for _, tc := range []struct {
		path, key string
		status    int
	}{
		{orgPath, anthAdmin, 200},
		{orgPath, "sk-ant-test-api-key", 401},
		{"/v1/organizations/workspaces/wrkspc_none/rate_limits", anthAdmin, 404},
	} {
		if status, body := get(t, srv.URL+tc.path, "X-Api-Key", tc.key, "Anthropic-Version", "2023-06-01"); status != tc.status {
			t.Errorf("GET %s with %s: %d %s, want %d", tc.path, tc.key, status, body, tc.status)
		}
	}
	resp, err := http.Post(srv.URL+"/v1/messages", "application/json", strings.NewReader(`{"model":"claude-haiku-4-5","max_tokens":1,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("a message without a key: %d", resp.StatusCode)
	}

	sim.SetAdminFault(anthAdmin, http.StatusTooManyRequests, 90*time.Second)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+orgPath, nil)
	req.Header.Set("X-Api-Key", anthAdmin)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "90" {
		t.Errorf("fault: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	sim.RevokeAdminKey(anthAdmin)
	if status, _ := get(t, srv.URL+orgPath, "X-Api-Key", anthAdmin, "Anthropic-Version", "2023-06-01"); status != 401 {
		t.Errorf("a revoked admin key: %d", status)
	}

	cerebras := httptest.NewServer(New())
	defer cerebras.Close()
	if status, _ := get(t, cerebras.URL+"/v1/organization/projects/p/rate_limits", "Authorization", "Bearer "+adminKey); status != 404 {
		t.Errorf("Cerebras has an admin API: %d", status)
	}
}

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
