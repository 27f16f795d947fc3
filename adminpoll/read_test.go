package adminpoll

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/admin"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// fakeCosts reads the limits as the admin clients do, and answers Costs
// from a list, or with an error.
type fakeCosts struct {
	reader
	mu    sync.Mutex
	list  []admin.Cost
	err   error
	since []time.Time
}

func (c *fakeCosts) costs(_ context.Context, since time.Time) (admin.CostResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.since = append(c.since, since)
	if c.err != nil {
		return admin.CostResult{}, c.err
	}
	return admin.CostResult{Costs: slices.Clone(c.list), Pages: 2}, nil
}

// Budgets: each budget's spend is the month's costs of its project, or of
// the whole organization, in its currency; last month's spend goes with
// the month.
func TestBudgets(t *testing.T) {
	costs := &fakeCosts{list: []admin.Cost{
		{Project: "proj_abc", Currency: "usd", Amount: 120.5},
		{Project: "proj_def", Currency: "USD", Amount: 30},
		{Project: "", Currency: "usd", Amount: 5},
		{Project: "proj_abc", Currency: "eur", Amount: 7},
	}}
	f := newFixtureWith(t, func(p *Poller) {
		real := p.newReader
		p.newReader = func(s *settings) reader { costs.reader = real(s); return costs }
	}, `admin:
  - name: oai
    provider: openai
    admin_key: %[2]s
    base_url: '%[1]s/openai/v1'
    budgets:
      - {monthly: 500}
      - {project: proj_abc, monthly: 200}
      - {project: proj_abc, monthly: 10, currency: EUR}
      - {project: proj_zzz, monthly: 50}
`)
	want := `# HELP ratelimit_budget The monthly budget the config declares; project "" is the whole organization.
# TYPE ratelimit_budget gauge
ratelimit_budget{admin="oai",currency="EUR",project="proj_abc",provider="openai"} 10
ratelimit_budget{admin="oai",currency="USD",project="",provider="openai"} 500
ratelimit_budget{admin="oai",currency="USD",project="proj_abc",provider="openai"} 200
ratelimit_budget{admin="oai",currency="USD",project="proj_zzz",provider="openai"} 50
`
	spend := `# HELP ratelimit_spend Spend of the current calendar month (UTC) so far, from the provider's cost API, for each budget the config declares; project "" is the whole organization.
# TYPE ratelimit_spend gauge
ratelimit_spend{admin="oai",currency="EUR",project="proj_abc",provider="openai"} 7
ratelimit_spend{admin="oai",currency="USD",project="",provider="openai"} 155.5
ratelimit_spend{admin="oai",currency="USD",project="proj_abc",provider="openai"} 120.5
ratelimit_spend{admin="oai",currency="USD",project="proj_zzz",provider="openai"} 0
`
	if err := testutil.CollectAndCompare(f.p, strings.NewReader(want+spend), "ratelimit_budget", "ratelimit_spend"); err != nil {
		t.Error(err)
	}
	if got := testkit.Value(t, f.p, "ratelimit_admin_requests_total", "api", "costs", "result", "success"); got != 2 {
		t.Errorf("%v cost requests, want 2 (pages)", got)
	}
	if n := testutil.CollectAndCount(f.p, "ratelimit_admin_success"); n != 1 {
		t.Errorf("%d ratelimit_admin_success series, want the costs' alone: no key names the source", n)
	}

	// The month ends with the reads failing: the spend goes at midnight
	// UTC, the budgets stay.
	costs.mu.Lock()
	costs.err = &admin.Error{API: "openai costs", Page: 1, Status: http.StatusBadGateway, Reason: "unexpected status", Err: admin.ErrStatus}
	costs.mu.Unlock()
	f.advance(time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC).Sub(f.clock.Now()))
	if n := testutil.CollectAndCount(f.p, "ratelimit_spend"); n != 4 {
		t.Errorf("%d spend series on the month's last minute, want 4", n)
	}
	f.advance(time.Minute)
	if err := testutil.CollectAndCompare(f.p, strings.NewReader(want), "ratelimit_budget", "ratelimit_spend"); err != nil {
		t.Errorf("in a new month: %v", err)
	}
	costs.mu.Lock()
	costs.err = nil
	costs.mu.Unlock()
	f.advance(time.Hour)
	costs.mu.Lock()
	last := costs.since[len(costs.since)-1]
	costs.mu.Unlock()
	if want := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC); !last.Equal(want) {
		t.Errorf("costs read since %s, want %s", last, want)
	}
	if n := testutil.CollectAndCount(f.p, "ratelimit_spend"); n != 4 {
		t.Errorf("%d spend series after a read of the new month, want 4", n)
	}
}

// newFixtureWith is newFixture with the poller changed by edit before its
// first config.
func newFixtureWith(t *testing.T, edit func(*Poller), cfg string) *fixture {
	t.Helper()
	f := newFixture(t, "keys: [{name: none, api_key: sk-test-poll-none}]\n")
	edit(f.p)
	if err := f.apply(cfg + "keys: [{name: none, api_key: sk-test-poll-none}]\n"); err != nil {
		t.Fatal(err)
	}
	return f
}

// admin_key_file is read at each read: a file that cannot be read sends
// nothing and counts as key_unavailable; once it holds a key again, the
// next read works.
func TestAdminKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin-key")
	if err := os.WriteFile(path, []byte(openAIAdminKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, strings.Replace(openAI("5m"), "admin_key: %[2]s", "admin_key_file: "+path, 1))
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.advance(5 * time.Minute)
	if got := f.sentTo(projectPath); len(got) != 1 {
		t.Errorf("read at %v, want nothing sent without a key", got)
	}
	if got := testkit.Value(t, f.p, "ratelimit_admin_requests_total", "result", "key_unavailable"); got != 1 {
		t.Errorf("%v key_unavailable, want 1", got)
	}
	if err := os.WriteFile(path, []byte(openAIAdminKey), 0o600); err != nil {
		t.Fatal(err)
	}
	f.advance(30 * time.Second)
	if got := f.sentTo(projectPath); !slices.Equal(got, durations("0s", "5m30s")) {
		t.Errorf("read at %v, want 0s and 5m30s", got)
	}
	if logs := f.logs.String(); !strings.Contains(logs, `result=key_unavailable err="admin_key_file `+path+`: the key is empty"`) {
		t.Errorf("the logs lack the key file's problem:\n%s", logs)
	}
}

// ReadOnce reads every source once, for the check command: each key's
// limits, and the projects or workspaces that failed.
func TestReadOnce(t *testing.T) {
	f := newFixture(t, "keys: [{name: none, api_key: sk-test-poll-none}]\n")
	cfg, err := config.Parse([]byte(f.configText(`admin:
  - {name: oai, provider: openai, admin_key: %[2]s, base_url: '%[1]s/openai/v1'}
  - {name: ant, provider: anthropic, admin_key: %[3]s, base_url: '%[1]s/anthropic'}
keys:
  - {name: prod, provider: openai, api_key: sk-test-poll-prod, admin: oai, project: proj_abc}
  - {name: lost, provider: openai, api_key: sk-test-poll-lost, admin: oai, project: proj_gone}
  - {name: team, provider: anthropic, api_key: sk-test-poll-team, admin: ant, workspace: wrkspc_01}
`)), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	reads, err := ReadOnce(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(reads) != 2 || reads[0].Admin != "oai" || reads[1].Admin != "ant" || reads[1].Provider != "anthropic" {
		t.Fatalf("reads %+v", reads)
	}
	if got := render(reads[0].Keys["prod"]); got != openAIWindows || len(reads[0].Keys) != 1 {
		t.Errorf("oai: keys %v, prod %s", reads[0].Keys, got)
	}
	if err := reads[0].Failed["proj_gone"]; len(reads[0].Failed) != 1 || err == nil ||
		err.Error() != "openai project rate limits: page 1: HTTP 404: not found" {
		t.Errorf("oai failed: %v", reads[0].Failed)
	}
	if got := render(reads[1].Keys["team"]); !strings.Contains(got, "claude-sonnet-4-5 requests/minute=100") || len(reads[1].Failed) != 0 {
		t.Errorf("ant: %s, failed %v", got, reads[1].Failed)
	}
}

// Two entries that give one model's window: the lower limit binds.
func TestWindowsByModelKeepsTheLeast(t *testing.T) {
	lim := func(model, resource, window string, v float64) admin.Limit {
		return admin.Limit{Model: model, Observation: ratelimit.Observation{Kind: ratelimit.Limit, Resource: resource, Window: window, Value: v}}
	}
	got := render(windowsByModel([]admin.Limit{
		lim("m", "tokens", "minute", 900), lim("m", "requests", "minute", 50), lim("m", "tokens", "minute", 600),
		lim("m", "tokens", "minute", 700), lim("", "requests", "minute", 1), lim("n", "requests", "day", 3),
	}))
	if want := "m requests/minute=50; m tokens/minute=600; n requests/day=3"; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

// Each failure is one result, and a page that failed after others counts
// them as successes.
func TestResults(t *testing.T) {
	status := func(code int) error {
		return &admin.Error{API: "x", Page: 3, Status: code, Reason: "r", Err: admin.ErrStatus}
	}
	for _, tc := range []struct {
		err    error
		result string
	}{
		{nil, ResultSuccess},
		{&keyError{errors.New("admin_key_file f: the key is empty")}, ResultKeyUnavailable},
		{status(401), ResultUnauthorized},
		{status(403), ResultUnauthorized},
		{status(429), ResultRateLimited},
		{status(500), ResultHTTPError},
		{status(307), ResultHTTPError},
		{&admin.Error{API: "x", Page: 3, Reason: "request failed", Err: context.DeadlineExceeded}, ResultTimeout},
		{&admin.Error{API: "x", Page: 3, Status: 200, Reason: "malformed body", Err: admin.ErrMalformed}, ResultInvalidResponse},
		{&admin.Error{API: "x", Page: 3, Status: 200, Err: admin.ErrBodyTooLarge}, ResultInvalidResponse},
		{&admin.Error{API: "x", Page: 3, Err: admin.ErrTooManyPages}, ResultInvalidResponse},
		{&admin.Error{API: "x", Page: 3, Status: 200, Err: admin.ErrTooManyLimits}, ResultInvalidResponse},
		{&admin.Error{API: "x", Page: 3, Status: 200, Err: admin.ErrCurrency}, ResultInvalidResponse},
		{&admin.Error{API: "x", Page: 3, Reason: "request failed", Err: errors.New("connection refused")}, ResultNetworkError},
	} {
		if got := resultOf(tc.err); got != tc.result {
			t.Errorf("resultOf(%v) = %s, want %s", tc.err, got, tc.result)
		}
		if tc.err == nil {
			continue
		}
		want := map[string]float64{tc.result: 1}
		var adminErr *admin.Error
		if errors.As(tc.err, &adminErr) {
			want[ResultSuccess] = 2
		}
		if got := requestsOf(0, tc.err); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("requestsOf(%v) = %v, want %v", tc.err, got, want)
		}
	}
	if got := requestsOf(4, nil); fmt.Sprint(got) != "map[success:4]" {
		t.Errorf("requestsOf(4 pages) = %v", got)
	}
}
