package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/grafana"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// These tests run the built binary, as users do: built as the Dockerfile
// builds it, and started as testkit starts it.

func TestMain(m *testing.M) { testkit.Main(m) }

// Simulator keys used by these tests.
const (
	goodKey    = "sk-test-canary-main-good-5e1d"
	revokedKey = "sk-test-canary-main-revoked-77c2"
)

func startSimulator(t *testing.T) (*simulator.Simulator, string) {
	t.Helper()
	sim := simulator.New("llama3.1-8b", "llama-3.3-70b")
	sim.AddKey(goodKey, simulator.Limits{
		"requests": {"minute": 1000, "hour": 1e5, "day": 1e6},
		"tokens":   {"minute": 1e6, "hour": 1e7, "day": 1e8},
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL + "/v1"
}

// exporter is the built exporter, started for a test.
type exporter struct{ *testkit.Process }

// start runs the exporter on a free loopback port and waits until it is ready.
func start(t *testing.T, env []string, args ...string) *exporter {
	t.Helper()
	return &exporter{testkit.Start(t, testkit.Launch{Env: env, Args: args})}
}

func (e *exporter) get(t *testing.T, path string, header ...string) (int, string) {
	t.Helper()
	return e.do(t, http.MethodGet, path, header...)
}

func (e *exporter) do(t *testing.T, method, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, nil)
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

// waitFor scrapes until every wanted line is in /metrics.
func (e *exporter) waitFor(t *testing.T, lines ...string) string {
	t.Helper()
	return e.waitForWithin(t, 10*time.Second, lines...)
}

func (e *exporter) waitForWithin(t *testing.T, timeout time.Duration, lines ...string) string {
	t.Helper()
	var body string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, body = e.get(t, "/metrics")
		if containsAll(body, lines) {
			return body
		}
	}
	for _, l := range lines {
		if !strings.Contains(body, l) {
			t.Errorf("/metrics lacks %s", l)
		}
	}
	t.FailNow()
	return ""
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// twoKeyConfig is the config most binary tests use, probing url in mode:
// key good (two models, api_key from the environment env sets) and key
// revoked (api_key_file, written here; the simulator does not know it).
func twoKeyConfig(t *testing.T, url, mode string) (text string, env []string) {
	t.Helper()
	return fmt.Sprintf(`probe:
  mode: %[3]s
  interval: 200ms
  min_interval: 0s
  max_quota_share: 1
keys:
  - name: good
    api_key: ${RLE_TEST_GOOD_KEY}
    base_url: %[1]s
    models: [llama3.1-8b, llama-3.3-70b]
    labels: {team: search}
  - name: revoked
    api_key_file: %[2]s
    base_url: %[1]s
`, url, revokedKeyFile(t), mode), []string{"RLE_TEST_GOOD_KEY=" + goodKey}
}

// revokedKeyFile writes revokedKey to a file and returns its path.
func revokedKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "revoked.key")
	if err := os.WriteFile(path, []byte(revokedKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTwoKeys runs the exporter with twoKeyConfig, edited by edit if not
// nil, against a new simulator, and returns both and the config's path.
func startTwoKeys(t *testing.T, mode string, edit func(string) string, args ...string) (*simulator.Simulator, *exporter, string) {
	t.Helper()
	sim, url := startSimulator(t)
	text, env := twoKeyConfig(t, url, mode)
	if edit != nil {
		text = edit(text)
	}
	cfg := testkit.WriteConfig(t, text)
	return sim, start(t, env, append([]string{"--config.file=" + cfg}, args...)...), cfg
}

func TestIntervalModeServesEveryKey(t *testing.T) {
	_, e, _ := startTwoKeys(t, "interval", nil)
	good := `key="good",model="llama3.1-8b",provider="cerebras"`
	body := e.waitFor(t,
		`ratelimit_limit{`+good+`,resource="requests",team="search",window="minute"} 1000`,
		`ratelimit_limit{key="good",model="llama-3.3-70b",provider="cerebras",resource="tokens",team="search",window="day"} 1e+08`,
		`ratelimit_probe_success{`+good+`,team="search"} 1`,
		`ratelimit_probe_success{key="revoked",model="llama3.1-8b",provider="cerebras"} 0`,
		`ratelimit_probe_status_code{key="revoked",model="llama3.1-8b",provider="cerebras"} 401`,
		`ratelimit_exporter_config_last_reload_successful 1`,
		`ratelimit_exporter_build_info{`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	)
	if strings.Contains(body, `ratelimit_limit{key="revoked"`) || strings.Contains(body, `ratelimit_remaining{key="revoked"`) {
		t.Error("a key that never read headers has rate-limit series")
	}
	if n := strings.Count(body, "\nratelimit_reset_timestamp_seconds{key=\"good\""); n != 12 {
		t.Errorf("%d reset timestamps for 2 models × 6 windows, want 12", n)
	}
}

func TestScrapeModeProbesDuringTheScrape(t *testing.T) {
	sim, e, _ := startTwoKeys(t, "scrape", nil)
	if n := sim.Requests(); n != 0 {
		t.Errorf("scrape mode probed %d times before any scrape", n)
	}
	status, body := e.get(t, "/metrics", "X-Prometheus-Scrape-Timeout-Seconds", "5")
	if status != 200 || !strings.Contains(body, `ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras",team="search"} 1`) {
		t.Errorf("first scrape (%d) lacks the fresh probe:\n%s", status, body)
	}
	if n := sim.Requests(); n != 3 {
		t.Errorf("one scrape sent %d probes, want 3", n)
	}

	// A scrape whose deadline the upstream misses is served on time, with
	// the values read before; the probes go on with probe.timeout (10s),
	// and their results serve the next scrape.
	sim.SetLatency(2 * time.Second)
	start := time.Now()
	_, body = e.get(t, "/metrics", "X-Prometheus-Scrape-Timeout-Seconds", "1")
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
		t.Errorf("scrape with a 1s timeout took %s", elapsed)
	}
	for _, want := range []string{
		`ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras",team="search"} 1`,
		`ratelimit_probes_total{cause="",key="good",model="llama3.1-8b",provider="cerebras",reason="",result="timeout",team="search"} 0`,
		`ratelimit_limit{key="good",model="llama3.1-8b",provider="cerebras",resource="requests",team="search",window="minute"} 1000`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape past the deadline lacks %s", want)
		}
	}
	_, body = e.get(t, "/metrics", "X-Prometheus-Scrape-Timeout-Seconds", "5") // joins the probes under way
	for _, want := range []string{
		`ratelimit_probes_total{cause="",key="good",model="llama3.1-8b",provider="cerebras",reason="",result="success",team="search"} 2`,
		`ratelimit_probes_total{cause="",key="good",model="llama3.1-8b",provider="cerebras",reason="",result="timeout",team="search"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the scrape after it lacks %s", want)
		}
	}
	// 3, then 2: the revoked key backs off after its 401.
	if n := sim.Requests(); n != 5 {
		t.Errorf("%d probes in all, want 5: the third scrape should have joined the probes under way", n)
	}
}

func TestEndpoints(t *testing.T) {
	_, e, _ := startTwoKeys(t, "interval", nil)
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/-/healthy", 200, "Healthy\n"},
		{"GET", "/-/ready", 200, "Ready\n"},
		{"GET", "/-/reload", 405, "This endpoint requires a POST request.\n"},
		{"POST", "/-/reload", 200, "Reloaded\n"},
		{"GET", "/nope", 404, "404 page not found\n"},
	} {
		if status, body := e.do(t, tc.method, tc.path); status != tc.status || body != tc.body {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, status, body, tc.status, tc.body)
		}
	}
	if status, body := e.get(t, "/grafana/dashboard.json"); status != 200 || body != string(grafana.Dashboard) {
		t.Errorf("/grafana/dashboard.json = %d, %d bytes; want 200 and the embedded dashboard", status, len(body))
	}
	status, body := e.get(t, "/")
	if status != 200 || !containsAll(body, []string{`href="/metrics"`, `href="/grafana/dashboard.json"`, `href="/-/healthy"`, `href="/-/ready"`, "Rate Limit Exporter"}) {
		t.Errorf("landing page %d:\n%s", status, body)
	}
}

func TestReloadGoodBadGood(t *testing.T) {
	_, url := startSimulator(t)
	good, env := twoKeyConfig(t, url, "interval")
	cfg := testkit.WriteConfig(t, good)
	e := start(t, env, "--config.file="+cfg)
	e.waitFor(t, `ratelimit_probe_success{key="revoked"`)
	const revokedProbe = "/probe?key=revoked&model=llama3.1-8b"
	if status, body := e.get(t, revokedProbe); status != 200 || !strings.Contains(body, `ratelimit_probe_success{key="revoked"`) {
		t.Errorf("%s before the reloads = %d %q", revokedProbe, status, body)
	}

	// Bad: the running config stays, and the reason is given.
	if err := os.WriteFile(cfg, []byte(good+"    surprise: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	status, body := e.do(t, "POST", "/-/reload")
	want := "Failed to reload config; the running config is kept:\n" + cfg + `:15: keys[1].surprise: unknown field "surprise" (see the configuration reference in README.md)` + "\n"
	if status != 500 || body != want {
		t.Errorf("bad reload = %d %q\nwant 500 %q", status, body, want)
	}
	e.waitFor(t, "ratelimit_exporter_config_last_reload_successful 0", `ratelimit_probe_success{key="revoked"`)

	// SIGHUP with a bad file fails the same way.
	if err := e.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "SIGHUP with a bad file logs the failure", func() error {
		if !strings.Contains(e.Logs(), `msg="Error reloading config; the running config is kept"`) {
			return errors.New("no such log line")
		}
		return nil
	})
	if status, _ := e.get(t, revokedProbe); status != 200 {
		t.Errorf("%s after the bad reloads = %d, want 200: the running config is kept", revokedProbe, status)
	}

	// Good again, by SIGHUP: the revoked key leaves, and its series with it.
	onlyGood := good[:strings.Index(good, "  - name: revoked")]
	if err := os.WriteFile(cfg, []byte(onlyGood), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	body = e.waitFor(t, "ratelimit_exporter_config_last_reload_successful 1")
	if strings.Contains(body, `key="revoked"`) {
		t.Error("the removed key's series are still served")
	}
	// /probe and /sd follow the running config.
	if status, body := e.get(t, revokedProbe); status != 400 || !strings.HasPrefix(body, "parameter key:") {
		t.Errorf("%s after the key was removed = %d %q, want 400", revokedProbe, status, body)
	}
	if status, body := e.get(t, "/sd"); status != 200 || strings.Contains(body, `"revoked"`) || !strings.Contains(body, `"key":"good"`) {
		t.Errorf("/sd after the key was removed = %d %s", status, body)
	}
}

func TestSIGTERMExitsCleanly(t *testing.T) {
	sim, e, _ := startTwoKeys(t, "interval", nil)
	sim.SetLatency(time.Minute) // probes in flight when the signal comes
	time.Sleep(300 * time.Millisecond)
	begin := time.Now()
	if err := e.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Done():
		if err := e.Err(); err != nil {
			t.Errorf("exit: %v, want status 0", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit within 5s of SIGTERM")
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	// Probes cancelled at shutdown failed nothing: nothing above debug.
	if logs := e.Logs(); strings.Contains(logs, "context canceled") || strings.Contains(logs, "network_error") {
		t.Errorf("cancelled probes were logged as failures:\n%s", logs)
	}
}

func runOnce(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(testkit.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if exitErr, ok := err.(*exec.ExitError); ok {
		return exitErr.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestConfigCheck(t *testing.T) {
	text, env := twoKeyConfig(t, "http://127.0.0.1:9/v1", "interval")
	good := testkit.WriteConfig(t, text)
	code, out := runOnce(t, env, "--config.file="+good, "--config.check")
	want := "Config is valid: 2 keys, 3 key and model pairs to probe, interval mode, every 200ms\n" +
		"  good: cerebras http://127.0.0.1:9/v1, models [llama3.1-8b llama-3.3-70b]\n" +
		"  revoked: cerebras http://127.0.0.1:9/v1, models [llama3.1-8b]\n"
	if code != 0 || out != want {
		t.Errorf("valid: exit %d\n%s\nwant exit 0\n%s", code, out, want)
	}

	bad := testkit.WriteConfig(t, "keys:\n  - name: x\n    api_key: ${RLE_TEST_UNSET_VAR}\n")
	code, out = runOnce(t, nil, "--config.file="+bad, "--config.check")
	want = "Config is invalid:\n" + bad + ":3: keys[0].api_key: environment variable RLE_TEST_UNSET_VAR is not set\n"
	if code != 1 || out != want {
		t.Errorf("invalid: exit %d\n%s\nwant exit 1\n%s", code, out, want)
	}
}

func TestDefaultConfigFromEnvironment(t *testing.T) {
	dir := t.TempDir() // no ratelimit_exporter.yml here
	cmd := func(env ...string) (int, string) {
		c := exec.Command(testkit.Binary(t), "--config.check")
		c.Dir = dir
		c.Env = append(os.Environ(), env...)
		out, err := c.CombinedOutput()
		if exitErr, ok := err.(*exec.ExitError); ok {
			return exitErr.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	code, out := cmd("CEREBRAS_API_KEY=" + goodKey)
	if code != 0 || !strings.HasPrefix(out, "Config is valid: 1 keys, 1 key and model pairs to probe, interval mode, every 1m0s\n  default: cerebras https://api.cerebras.ai/v1, models [llama3.1-8b]\n") {
		t.Errorf("with CEREBRAS_API_KEY: exit %d\n%s", code, out)
	}
	code, out = cmd("CEREBRAS_API_KEY=")
	want := "Config is invalid:\nno configuration: ratelimit_exporter.yml does not exist and CEREBRAS_API_KEY is not set; " +
		"either write a config file (and pass --config.file if it lives elsewhere) or set CEREBRAS_API_KEY to use the built-in default (model llama3.1-8b)\n"
	if code != 1 || out != want {
		t.Errorf("with neither: exit %d\n%s\nwant exit 1\n%s", code, out, want)
	}
}

func TestStartupFailureExitsWithReason(t *testing.T) {
	bad := testkit.WriteConfig(t, "keys: []\n")
	code, out := runOnce(t, nil, "--config.file="+bad, "--web.listen-address=127.0.0.1:0")
	if code != 1 || !strings.Contains(out, `msg="Error loading config" err="`+bad+`:1: keys: no keys configured`) {
		t.Errorf("exit %d\n%s", code, out)
	}
}

// The demo shows keys of several providers, OpenRouter's free probe among
// them, and an Anthropic admin source.
func TestDemoServesLiveSeries(t *testing.T) {
	e := start(t, nil, "--demo")
	// First probes go out at once.
	body := e.waitForWithin(t, 20*time.Second,
		`ratelimit_remaining{key="prod",model="llama3.1-8b",provider="cerebras",resource="requests",team="search",window="minute"}`,
		`ratelimit_remaining{key="trial",model="llama-3.1-8b-instant",provider="groq",resource="requests",team="research",window="day"}`,
		`ratelimit_remaining{key="assistant",model="claude-haiku-4-5",provider="anthropic",resource="input_tokens",team="support",window="minute"}`,
		`ratelimit_limit{key="router",model="",provider="openrouter",resource="credits",team="research",window="month"} 25`,
		`ratelimit_probe_tokens_total{key="router",model="",provider="openrouter",team="research"} 0`,
		`ratelimit_probe_status_code{key="revoked",model="gpt-4o-mini",provider="openai"} 401`,
		// The assistant's traffic goes through the proxy, which reads it.
		`ratelimit_observations_total{key="assistant",model="claude-haiku-4-5",provider="anthropic",source="proxy"} `,
		`ratelimit_proxy_requests_total{code="200",route="/anthropic/"} `,
		// A provisioned Azure deployment's share in use, a DeepSeek wallet.
		`ratelimit_remaining{key="ptu",model="gpt-4o-mini",provider="azure_openai",resource="tokens",team="search",window="minute"} `,
		`ratelimit_utilization{key="ptu",model="gpt-4o-mini",provider="azure_openai",resource="deployment",team="search",window=""} `,
		`ratelimit_balance{currency="USD",key="wallet",model="",provider="deepseek",team="research"} `,
		`ratelimit_window_status{key="wallet",model="",provider="deepseek",resource="balance",status="allowed",team="research",window=""} 1`,
		// The Anthropic organization's admin API: a model no key probes.
		`ratelimit_limit{key="assistant",model="claude-sonnet-4-5",provider="anthropic",resource="output_tokens",team="support",window="minute"} 8000`,
		`ratelimit_admin_success{admin="claude-org",api="rate_limits",provider="anthropic"} 1`,
	)
	if n := metricsOf(t, body)[series("ratelimit_observations_total", "key", "assistant", "model", "claude-haiku-4-5", "provider", "anthropic", "source", "proxy")]; n < 1 {
		t.Errorf("no reading of the assistant's traffic through the proxy")
	}
	for _, key := range []string{"sk-demo", "sk-ant-demo", "sk-or-v1-demo", "azure-demo", "sk-deepseek-demo", "sk-ant-admin-demo"} {
		if strings.Contains(body, key) {
			t.Errorf("/metrics shows a demo key (%s...)", key)
		}
	}
}

func TestParallelScrapesShareProbes(t *testing.T) {
	// Above the default 40, which would refuse some of the 50.
	sim, e, _ := startTwoKeys(t, "scrape", func(s string) string {
		return strings.Replace(s, "min_interval: 0s", "min_interval: 1m", 1)
	}, "--web.max-requests=100")
	sim.SetLatency(300 * time.Millisecond)
	var wg sync.WaitGroup
	statuses := make(chan int, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _ := e.get(t, "/metrics", "X-Prometheus-Scrape-Timeout-Seconds", "5")
			statuses <- status
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Errorf("a scrape answered %d", s)
		}
	}
	if n := sim.Requests(); n != 3 {
		t.Errorf("50 parallel scrapes sent %d probes, want 3 (one per key and model)", n)
	}
}

func TestMaxRequests(t *testing.T) {
	sim, e, _ := startTwoKeys(t, "scrape", nil, "--web.max-requests=2")
	sim.SetLatency(time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _ := e.get(t, "/metrics")
			mu.Lock()
			counts[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[200] != 2 || counts[503] != 4 {
		t.Errorf("6 scrapes at once with --web.max-requests=2: %v, want 2 answered and 4 refused with 503", counts)
	}
}
