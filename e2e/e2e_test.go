package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/grafana"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// The shipped rule files pass the checks and unit tests of the promtool
// beside each Prometheus.
func TestPrometheusRules(t *testing.T) {
	withEachPrometheus(t, prometheusRules)
}

func prometheusRules(t *testing.T, prometheus string) {
	promtool := filepath.Join(filepath.Dir(prometheus), "promtool")
	if _, err := os.Stat(promtool); err != nil {
		t.Fatalf("no promtool beside %s: %v", prometheus, err)
	}
	root := testkit.RepoRoot(t)
	for _, args := range [][]string{
		{"check", "rules", "prometheus/rules.yml", "prometheus/alerts.yml", "prometheus/cloud.rules.yml"},
		{"test", "rules", "prometheus/alerts_test.yml", "prometheus/cloud_test.yml", "prometheus/budget_month_test.yml"},
		{"check", "config", "prometheus/prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// prometheusServer is a real Prometheus started for a test.
type prometheusServer struct {
	url string
}

// prometheusRelease is a Prometheus that the end-to-end tests scrape with.
type prometheusRelease struct {
	version string                  // what it reports, or will once installed
	binary  func(testing.TB) string // its path; skips or fails the test without it
}

// prometheusReleases are Debian's Prometheus 2 on PATH and the Prometheus 3
// that .ci/prometheus3 builds: users run both.
func prometheusReleases() []prometheusRelease {
	debian := prometheusRelease{version: "2", binary: func(t testing.TB) string { return testkit.RequireTool(t, "prometheus") }}
	if path, err := exec.LookPath("prometheus"); err == nil {
		if v, err := testkit.PrometheusVersion(path); err == nil {
			debian.version = v
		}
	}
	return []prometheusRelease{debian, {version: testkit.Prometheus3Release(), binary: testkit.RequirePrometheus3}}
}

// withEachPrometheus runs test in parallel subtests, one for each of
// prometheusReleases, named by its version.
func withEachPrometheus(t *testing.T, test func(t *testing.T, prometheus string)) {
	for _, release := range prometheusReleases() {
		t.Run(release.version, func(t *testing.T) {
			t.Parallel()
			test(t, release.binary(t))
		})
	}
}

// startPrometheusWith runs the prometheus binary with the shipped rules
// and ruleFiles, scraping every second with scrapeConfigs, a YAML
// scrape_configs section.
func startPrometheusWith(t *testing.T, binary, scrapeConfigs string, ruleFiles ...string) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	repo := testkit.RepoRoot(t)
	cfg := "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n"
	for _, file := range []string{"rules.yml", "alerts.yml", "cloud.rules.yml"} {
		ruleFiles = append(ruleFiles, filepath.Join(repo, "prometheus", file))
	}
	for _, file := range ruleFiles {
		cfg += fmt.Sprintf("  - %q\n", file)
	}
	cfg += scrapeConfigs
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testkit.Start(t, testkit.Launch{Binary: binary, Within: 30 * time.Second, Args: []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path=" + filepath.Join(dir, "data")}})
	return &prometheusServer{url: p.URL}
}

// api calls a Prometheus HTTP API path and decodes its data.
func (p *prometheusServer) api(t *testing.T, path string, params url.Values, data any) error {
	t.Helper()
	resp, err := http.Get(p.url + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s", body.Status, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

type vectorSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (p *prometheusServer) query(t *testing.T, expr string) ([]vectorSample, error) {
	t.Helper()
	var data struct {
		Result json.RawMessage `json:"result"`
	}
	if err := p.api(t, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	var samples []vectorSample
	if err := json.Unmarshal(data.Result, &samples); err != nil {
		return nil, fmt.Errorf("not an instant vector: %s", data.Result)
	}
	return samples, nil
}

type activeAlert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
}

func (p *prometheusServer) alerts(t *testing.T) []activeAlert {
	t.Helper()
	var data struct {
		Alerts []activeAlert `json:"alerts"`
	}
	if err := p.api(t, "/api/v1/alerts", nil, &data); err != nil {
		t.Fatal(err)
	}
	return data.Alerts
}

// scrapeRecorder passes scrapes on to an exporter, noting what the scraper
// asked for and what it was given.
type scrapeRecorder struct {
	mu                  sync.Mutex
	accept, contentType string
	// Accept-Encoding asked for and Content-Encoding given.
	acceptEncoding, contentEncoding string
}

// recordScrapes starts a scrapeRecorder in front of the exporter at
// exporterURL and returns it with its address, the target to scrape.
func recordScrapes(t *testing.T, exporterURL string) (*scrapeRecorder, string) {
	t.Helper()
	upstream, err := url.Parse(exporterURL)
	if err != nil {
		t.Fatal(err)
	}
	rec := &scrapeRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.ModifyResponse = func(resp *http.Response) error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.accept, rec.contentType = resp.Request.Header.Get("Accept"), resp.Header.Get("Content-Type")
		rec.acceptEncoding, rec.contentEncoding = resp.Request.Header.Get("Accept-Encoding"), resp.Header.Get("Content-Encoding")
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return rec, strings.TrimPrefix(srv.URL, "http://")
}

// last returns the last scrape's Accept and Content-Type headers.
func (r *scrapeRecorder) last() (accept, contentType string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accept, r.contentType
}

// lastEncoding returns the last scrape's Accept-Encoding and
// Content-Encoding headers.
func (r *scrapeRecorder) lastEncoding() (acceptEncoding, contentEncoding string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acceptEncoding, r.contentEncoding
}

// acceptsText004 reports whether an Accept header takes the text format
// 0.0.4, as Prometheus 2 and 3 write it (text/plain;version=0.0.4;q=...).
func acceptsText004(accept string) bool {
	for _, media := range strings.Split(accept, ",") {
		params := strings.Split(strings.ReplaceAll(media, " ", ""), ";")
		if params[0] == "text/plain" && slices.Contains(params[1:], "version=0.0.4") && !slices.Contains(params[1:], "q=0") {
			return true
		}
	}
	return false
}

// eventually retries check until it returns nil or the time is up.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// The exporter, probing the simulator and proxying to it, scraped by a
// real Prometheus with the shipped rules: the target is up, every
// dashboard query works and returns data, and the alerts fire for the
// right keys only.
func TestEndToEndWithPrometheus(t *testing.T) {
	withEachPrometheus(t, endToEnd)
}

func endToEnd(t *testing.T, prometheus string) {
	const exhaustedKey = "sk-test-e2e-exhausted-31c0"
	sim, simURL := startSimulator(t)
	sim.AddKey(exhaustedKey, simulator.FreeTrial())
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { // the key's real traffic keeps it empty
		for ctx.Err() == nil {
			sim.Exhaust(exhaustedKey, "llama3.1-8b")
			time.Sleep(200 * time.Millisecond)
		}
	}()
	// A provisioned Azure deployment (a utilization) and a DeepSeek account
	// (a balance and its status), so that every family is scraped; the
	// healthy key declares limits of 2-second windows, so that an
	// estimate shows within seconds.
	const ptuKey, balanceKey = "sk-test-e2e-azure-ptu-8d2e", "sk-test-e2e-deepseek-51f7"
	azure := simulator.NewDialect(simulator.AzureOpenAI, "gpt-4o-mini")
	azure.AddKey(ptuKey, simulator.Limits{"deployment": {"minute": 1000}})
	deepseek := simulator.NewDialect(simulator.DeepSeek)
	deepseek.AddKey(balanceKey, nil)
	deepseek.SetBalance(balanceKey, simulator.Balance{Available: true, Currencies: []simulator.CurrencyBalance{{Currency: "USD", Granted: 5, ToppedUp: 20}}})
	// An admin source, so that the admin API's limits (a model no key
	// probes among them), the budgets and the source's health show.
	admin, adminURL := startAdminSimulator(t)
	admin.SetCosts(adminKey, []simulator.DayCost{{Day: time.Now().UTC(), Project: "proj_abc", Currency: "USD", Amount: 12.5}})
	azureSrv, deepseekSrv := httptest.NewServer(azure), httptest.NewServer(deepseek)
	t.Cleanup(azureSrv.Close)
	t.Cleanup(deepseekSrv.Close)
	keyFile, env := revokedKeyFile(t), []string{"RLE_TEST_GOOD_KEY=" + goodKey}
	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {interval: 1s, timeout: 900ms}
admin:
  - {name: org, provider: openai, admin_key_file: %[9]s, base_url: '%[10]s/v1', budgets: [{monthly: 500}, {project: proj_abc, monthly: 100}]}
keys:
  - {name: healthy, api_key: "${RLE_TEST_GOOD_KEY}", base_url: %[1]q, labels: {team: search},
     limits: [{resource: requests, window: 2s, limit: 1000}, {resource: tokens, window: 2s, limit: 100000}]}
  - {name: exhausted, api_key: %[2]s, base_url: %[1]q}
  - {name: revoked, api_key_file: %[3]s, base_url: %[1]q}
  - {name: ptu, provider: azure_openai, api_key: %[5]s, base_url: %[6]q, models: [gpt-4o-mini]}
  - {name: wallet, provider: deepseek, api_key: %[7]s, base_url: %[8]q}
  - {name: project, provider: openai, api_key: %[11]s, base_url: '%[10]s/v1', models: [gpt-4o-mini], admin: org, project: proj_abc}
proxy:
  listen_address: %[4]s
  routes: [{path_prefix: /c/, upstream: %[1]q, provider: cerebras}]
`, simURL, exhaustedKey, keyFile, proxyAddr, ptuKey, azureSrv.URL, balanceKey, deepseekSrv.URL, writeAdminKey(t, adminKey), adminURL, adminProbeKey))
	e := start(t, env, "--config.file="+cfg)
	// Prometheus scrapes through a recorder of the exposition format it
	// asks for and gets.
	scrapes, target := recordScrapes(t, e.URL)
	// Bedrock, Vertex AI and the Gemini API through the exporters users run
	// for them, mapped by prometheus/cloud.rules.yml.
	cloudScrapes, cloudTarget, quotaRules := startCloudExporters(t)
	prom := startPrometheusWith(t, prometheus, fmt.Sprintf(`scrape_configs:
  - job_name: ratelimit
    static_configs:
      - targets: [%q]
`, target)+cloudScrapes, quotaRules)

	// The exhausted key's application, refused through the proxy.
	req, _ := http.NewRequest(http.MethodPost, "http://"+proxyAddr+"/c/chat/completions",
		strings.NewReader(`{"model":"llama3.1-8b","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":1}`))
	req.Header.Set("Authorization", "Bearer "+exhaustedKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the exhausted key's request through the proxy: HTTP %d, want 429", resp.StatusCode)
	}

	eventually(t, 30*time.Second, "target up", func() error {
		up, err := prom.query(t, `up{job="ratelimit"} == 1`)
		if err == nil && len(up) != 1 {
			err = fmt.Errorf("up == 1 has %d series", len(up))
		}
		return err
	})

	// Prometheus takes the text format 0.0.4 that the exporter serves
	// (README: "Exposition format"), whatever it would rather have.
	accept, contentType := scrapes.last()
	t.Logf("Prometheus asks for %s", accept)
	if contentType != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("the exporter answered a scrape with Content-Type %q, want text 0.0.4", contentType)
	}
	if !acceptsText004(accept) {
		t.Errorf("Prometheus no longer takes the text format 0.0.4; it asks for %s", accept)
	}

	// Every dashboard query, with its variables as Grafana would fill them.
	var dash struct {
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(grafana.Dashboard, &dash); err != nil {
		t.Fatal(err)
	}
	// Variables as Grafana fills them, the exporter's and the clouds' jobs
	// and instances chosen: a regex in a PromQL string has its backslashes
	// doubled; several values are an alternation; All is ".*".
	quote := func(s string) string { return strings.ReplaceAll(regexp.QuoteMeta(s), `\`, `\\`) }
	vars := strings.NewReplacer("$job", "(ratelimit|yace|stackdriver)", "$instance", "("+quote(target)+"|"+quote(cloudTarget)+")",
		"$key", ".*", "$model", ".*", "$provider", ".*", "$__rate_interval", "1m")
	type query struct{ panel, expr string }
	var queries []query
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries = append(queries, query{p.Title, vars.Replace(tg.Expr)})
		}
	}
	withData := 0
	eventually(t, 30*time.Second, "every dashboard query returns data", func() error {
		withData = 0
		var problems []string
		for _, q := range queries {
			samples, err := prom.query(t, q.expr)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%q: %s: %v", q.panel, q.expr, err))
			case len(samples) == 0:
				problems = append(problems, fmt.Sprintf("%q: no data: %s", q.panel, q.expr))
			default:
				withData++
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("%d of %d:\n%s", len(problems), len(queries), strings.Join(problems, "\n"))
		}
		return nil
	})
	t.Logf("dashboard: ran %d queries, %d returned data", len(queries), withData)

	// What the clouds' exporters published, as the windows of the schema:
	// limit less the last minute's use. Their first scrapes, and the rules'
	// runs on them, may come after the exporter's target is up (each target
	// starts at its own offset in the interval), so they have time to arrive.
	eventually(t, 30*time.Second, "the clouds' windows", func() error {
		var problems []string
		for expr, want := range map[string]string{
			`ratelimit_remaining{provider="bedrock", resource="tokens", window="minute"}`:     "300000",
			`ratelimit_remaining{provider="bedrock", resource="requests", window="minute"}`:   "40",
			`ratelimit_remaining{provider="vertex_ai", resource="requests", window="minute"}`: "50",
			`ratelimit_remaining{provider="gemini", key="gemini-project", window="minute"}`:   "10",
			`ratelimit_limit{provider="gemini", key="gemini-project", window="day"}`:          "1500",
		} {
			samples, err := prom.query(t, expr)
			if err != nil || len(samples) != 1 || samples[0].Value[1] != want {
				problems = append(problems, fmt.Sprintf("%s = %v (%v), want one sample of %s", expr, samples, err, want))
			}
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "\n"))
		}
		return nil
	})

	// The dashboard's variables, queried as Grafana's label_values does
	// with the job variable's selector: the clouds' accounts, projects and
	// models are choices too.
	selector := ""
	for _, v := range dash.Templating.List {
		if m := regexp.MustCompile(`^label_values\((.*), job\)$`).FindStringSubmatch(v.Definition); v.Name == "job" && m != nil {
			selector = m[1]
		}
	}
	instances := []string{target, cloudTarget}
	slices.Sort(instances)
	for label, want := range map[string]string{
		"job":      "ratelimit,stackdriver,yace",
		"instance": strings.Join(instances, ","),
		"provider": "azure_openai,bedrock,cerebras,deepseek,gemini,openai,vertex_ai",
		"key":      "123456789012,exhausted,gemini-project,healthy,project,ptu,revoked,vertex-project,wallet",
		// o3: a model only the admin API lists, which no key probes.
		"model": "gemini-1.5-flash,gemini-2.0-flash,gpt-4o-mini,llama3.1-8b,o3,us.anthropic.claude-sonnet-4-20250514-v1:0",
	} {
		var values []string
		if err := prom.api(t, "/api/v1/label/"+label+"/values", url.Values{"match[]": {selector}}, &values); err != nil {
			t.Fatal(err)
		}
		if strings.Join(values, ",") != want {
			t.Errorf("variable %s = %v, want %s", label, values, want)
		}
	}

	eventually(t, 30*time.Second, "alerts for the exhausted and revoked keys", func() error {
		have := map[string]bool{}
		for _, a := range prom.alerts(t) {
			have[a.Labels["alertname"]+"/"+a.Labels["key"]] = true
		}
		for _, want := range []string{"RateLimitExhausted/exhausted", "RateLimitProbeFailing/revoked"} {
			if !have[want] {
				return fmt.Errorf("%s is not active; active: %v", want, have)
			}
		}
		return nil
	})
	var names []string
	for _, a := range prom.alerts(t) {
		names = append(names, a.Labels["alertname"]+"/"+a.Labels["key"]+"/"+a.State)
		if k := a.Labels["key"]; k == "healthy" || k == "ptu" || k == "wallet" {
			t.Errorf("the healthy key %s has an alert: %v", k, a.Labels)
		}
	}
	t.Logf("active alerts: %s", strings.Join(names, " "))
}
