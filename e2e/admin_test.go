package e2e

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Keys of the admin tests: an OpenAI API key that probes, and the admin
// key of its organization.
const (
	adminProbeKey = "sk-test-canary-admin-probe-7a1c"
	adminKey      = "sk-admin-test-canary-admin-e2e-4d2b"
	wrongAdminKey = "sk-admin-test-canary-admin-wrong-90fe"
)

// startAdminSimulator is an OpenAI simulator whose admin API lists the
// limits of project proj_abc: gpt-4o-mini's, the model the key probes, and
// o3's, which no key probes.
func startAdminSimulator(t *testing.T) (*simulator.Simulator, string) {
	t.Helper()
	sim := simulator.NewDialect(simulator.OpenAI, "gpt-4o-mini")
	sim.AddKey(adminProbeKey, simulator.Limits{"requests": {"minute": 500, "day": 10000}, "tokens": {"minute": 200000}})
	sim.SetAdminLimits(adminKey, "proj_abc",
		simulator.AdminLimit{Models: []string{"gpt-4o-mini"}, Values: map[string]float64{
			"max_requests_per_1_minute": 500, "max_tokens_per_1_minute": 200000, "max_requests_per_1_day": 10000}},
		simulator.AdminLimit{Models: []string{"o3"}, Values: map[string]float64{"max_requests_per_1_minute": 50, "max_tokens_per_1_minute": 30000}},
	)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// writeAdminKey writes key to a new file and returns its path.
func writeAdminKey(t *testing.T, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin-key")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func adminConfig(url, adminKeyFile string) string {
	return fmt.Sprintf(`probe: {interval: 200ms, min_interval: 0s, max_quota_share: 1}
admin:
  - {name: openai-org, provider: openai, admin_key_file: %[2]s, base_url: '%[1]s/v1'}
keys:
  - {name: prod, provider: openai, api_key: %[3]s, base_url: '%[1]s/v1', models: [gpt-4o-mini], admin: openai-org, project: proj_abc, labels: {team: search}}
`, url, adminKeyFile, adminProbeKey)
}

// The binary with an admin source: a model that no key probes appears on
// /metrics with its limits, and in `check`; the probed model's header
// window and the admin API's are one series; a 401 from the admin API
// keeps what it read last and says so in ratelimit_admin_success.
func TestAdminSourceInTheBinary(t *testing.T) {
	_, url := startAdminSimulator(t)
	cfg := testkit.WriteConfig(t, adminConfig(url, writeAdminKey(t, adminKey)))
	e := start(t, nil, "--config.file="+cfg)
	o3 := `key="prod",model="o3",provider="openai"`
	mini := `key="prod",model="gpt-4o-mini",provider="openai"`
	lines := []string{
		`ratelimit_limit{` + o3 + `,resource="requests",team="search",window="minute"} 50`,
		`ratelimit_limit{` + o3 + `,resource="tokens",team="search",window="minute"} 30000`,
		`ratelimit_configured_limit{` + o3 + `,resource="requests",source="admin_api",team="search",window="minute"} 50`,
		`ratelimit_configured_limit{` + o3 + `,resource="tokens",source="admin_api",team="search",window="minute"} 30000`,
		// OpenAI's headers name no window: the admin API's limit of the
		// same value names it, and headers and admin API are one series.
		`ratelimit_limit{` + mini + `,resource="requests",team="search",window="minute"} 500`,
		`ratelimit_remaining{` + mini + `,resource="requests",team="search",window="minute"} `,
		`ratelimit_configured_limit{` + mini + `,resource="requests",source="admin_api",team="search",window="minute"} 500`,
		`ratelimit_limit{` + mini + `,resource="tokens",team="search",window="minute"} 200000`,
		`ratelimit_limit{` + mini + `,resource="requests",team="search",window="day"} 10000`,
		`ratelimit_admin_success{admin="openai-org",api="rate_limits",provider="openai"} 1`,
		`ratelimit_admin_requests_total{admin="openai-org",api="rate_limits",provider="openai",result="success"} 1`,
		`ratelimit_probe_success{` + mini + `,team="search"} 1`,
	}
	body := e.waitFor(t, lines...)
	for _, absent := range []string{`window=""`, `ratelimit_probe_success{` + o3, `ratelimit_probes_total{cause="",` + o3} {
		if strings.Contains(body, absent) {
			t.Errorf("/metrics has %s:\n%s", absent, body)
		}
	}
	promtool := testkit.RequireTool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	if lines := grepLines(e.Logs(), "Read an admin API"); lines != "" {
		t.Errorf("successful admin reads logged at info:\n%s", lines)
	}

	// check shows the same, marked with the source.
	code, stdout, stderr := runCheckCommand(t, "check", "--config.file="+cfg)
	for _, line := range []string{
		"prod  openai    gpt-4o-mini  requests  (not given)  ",
		"prod  openai    gpt-4o-mini  requests  minute       limit 500 (admin API)",
		"prod  openai    gpt-4o-mini  requests  day          limit 10000 (admin API)",
		"prod  openai    o3           requests  minute       limit 50 (admin API)",
		"prod  openai    o3           tokens    minute       limit 30000 (admin API)",
		"All 1 key and model pairs read their rate limits.",
		"  openai-org (openai): read the rate limits of proj_abc",
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("check lacks %q:\n%s", line, stdout)
		}
	}
	if code != 0 {
		t.Errorf("check exited %d:\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = runCheckCommand(t, "check", "--output=json", "--config.file="+cfg)
	var report struct {
		OK      bool
		Targets []struct {
			Model, Result string
			Windows       []struct {
				Resource, Window, Source string
				Limit                    *float64
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil || code != 0 || !report.OK || len(report.Targets) != 2 {
		t.Fatalf("check --output=json: exit %d, %v:\n%s", code, err, stdout)
	}
	if o3 := report.Targets[1]; o3.Model != "o3" || o3.Result != "not_probed" || len(o3.Windows) != 2 ||
		o3.Windows[0].Source != "admin_api" || *o3.Windows[0].Limit != 50 {
		t.Errorf("o3 in JSON: %+v", o3)
	}

	// A reload to an admin key the API refuses reads at once: 401, and the
	// limits read before stay.
	if err := os.WriteFile(cfg, []byte(adminConfig(url, writeAdminKey(t, wrongAdminKey))), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, out := e.do(t, "POST", "/-/reload"); status != 200 {
		t.Fatalf("reload: %d %s", status, out)
	}
	body = e.waitFor(t,
		`ratelimit_admin_success{admin="openai-org",api="rate_limits",provider="openai"} 0`,
		`ratelimit_admin_requests_total{admin="openai-org",api="rate_limits",provider="openai",result="unauthorized"} 1`,
	)
	for _, line := range lines[:4] {
		if !strings.Contains(body, line) {
			t.Errorf("after the admin API's 401, /metrics lacks %s", line)
		}
	}
	logs := e.Logs()
	if !strings.Contains(logs, `level=warn`) || !strings.Contains(logs, `result=unauthorized err="openai project rate limits: page 1: HTTP 401: the admin key was refused"`) {
		t.Errorf("the logs lack the 401:\n%s", logs)
	}
	for name, out := range map[string]string{"/metrics": body, "logs": logs, "check": stdout} {
		for _, key := range []string{adminKey, wrongAdminKey, adminProbeKey} {
			if strings.Contains(out, key) {
				t.Errorf("%s holds the key %s", name, key)
			}
		}
	}
}

// The README's admin example is a valid config, once its secrets exist.
func TestReadmeAdminExample(t *testing.T) {
	blocks := readmeYAMLBlocks(t, "### Admin APIs: OpenAI project rate limits and Anthropic's Rate Limits API")
	if len(blocks) != 1 {
		t.Fatalf("%d yaml blocks, want 1", len(blocks))
	}
	text := strings.Replace(blocks[0], "/run/secrets/openai-admin", writeAdminKey(t, "sk-admin-test-readme-1"), 1)
	env := []string{"OPENAI_API_KEY=sk-test-readme-2", "ANTHROPIC_ADMIN_KEY=sk-ant-admin01-test-readme-3", "ANTHROPIC_API_KEY=sk-ant-api03-test-readme-4"}
	code, out := runOnce(t, env, "--config.file="+testkit.WriteConfig(t, text), "--config.check")
	if code != 0 || !strings.Contains(out, "  admin source openai-org: openai https://api.openai.com/v1, every 1h0m0s, limits of keys [prod], 2 budgets\n") {
		t.Errorf("--config.check of the README's example: exit %d\n%s", code, out)
	}
}
