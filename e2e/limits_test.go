package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// decodeReport decodes a JSON view strictly: a field the schema does not
// have fails, so /api/v1/limits and check --output=json cannot drift from
// package snapshot, nor from each other.
func decodeReport(t *testing.T, name, text string) snapshot.Report {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	var r snapshot.Report
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("%s is not a snapshot.Report: %v\n%s", name, err, text)
	}
	if dec.More() {
		t.Fatalf("%s holds more than one report:\n%s", name, text)
	}
	if r.SchemaVersion != snapshot.Version {
		t.Errorf("%s: schema_version %d, want %d", name, r.SchemaVersion, snapshot.Version)
	}
	return r
}

// /api/v1/limits of the real binary says what /metrics says, window by
// window: remaining, limit and reset time; check --output=json of the
// same config writes the same schema; and neither holds a key, nor the
// admin key.
func TestLimitsJSONAgreesWithMetrics(t *testing.T) {
	_, url := startSimulator(t)
	_, adminURL := startAdminSimulator(t)
	text, env := twoKeyConfig(t, url, "interval")
	// One probe each: the values then hold still while the test reads them.
	text = strings.Replace(text, "interval: 200ms", "interval: 1h", 1)
	text = strings.Replace(text, "keys:\n", fmt.Sprintf(`admin:
  - {name: openai-org, provider: openai, admin_key_file: %[2]s, base_url: '%[1]s/v1'}
keys:
  - {name: prod, provider: openai, api_key: %[3]s, base_url: '%[1]s/v1', models: [gpt-4o-mini], admin: openai-org, project: proj_abc}
`, adminURL, writeAdminKey(t, adminKey), adminProbeKey), 1)
	cfg := testkit.WriteConfig(t, text)
	e := start(t, env, "--config.file="+cfg)
	e.waitFor(t,
		`ratelimit_probe_success{key="good",model="llama-3.3-70b",provider="cerebras",team="search"} 1`,
		`ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras",team="search"} 1`,
		`ratelimit_probe_status_code{key="revoked",model="llama3.1-8b",provider="cerebras"} 401`,
		`ratelimit_probe_success{key="prod",model="gpt-4o-mini",provider="openai"} 1`,
		`ratelimit_admin_success{admin="openai-org",api="rate_limits",provider="openai"} 1`,
	)
	// The revoked key is probed again after a backoff; its failure
	// changes no window. Read /metrics on both sides of the JSON view, and
	// again until nothing changed in between.
	var metrics map[string]float64
	var report snapshot.Report
	var apiText string
	for attempt := 0; ; attempt++ {
		_, before := e.get(t, "/metrics")
		var status int
		status, apiText = e.get(t, "/api/v1/limits")
		_, after := e.get(t, "/metrics")
		if status != 200 {
			t.Fatalf("/api/v1/limits: %d %s", status, apiText)
		}
		metrics = metricsOf(t, after)
		if same := windowSamples(metricsOf(t, before)); fmt.Sprint(same) == fmt.Sprint(windowSamples(metrics)) || attempt == 10 {
			break
		}
	}
	report = decodeReport(t, "/api/v1/limits", apiText)

	if report.OK {
		t.Error("ok with a revoked key")
	}
	compared := 0
	for _, target := range report.Targets {
		labels := []string{"key", target.Key, "model", target.Model, "provider", target.Provider}
		for name, value := range target.Labels {
			labels = append(labels, name, value)
		}
		for _, w := range target.Windows {
			at := append([]string{"resource", w.Resource, "window", w.Window}, labels...)
			for _, figure := range []struct {
				metric string
				value  *float64
			}{
				{"ratelimit_remaining", w.Remaining},
				{"ratelimit_limit", w.Limit},
				{"ratelimit_reset_timestamp_seconds", unixSecondsOf(w.ResetsAt)},
			} {
				got, shown := metrics[series(figure.metric, at...)]
				switch {
				case figure.value == nil && shown:
					t.Errorf("%s %s/%s: /metrics has %s %v, the JSON view nothing", target.Key, target.Model, w.Resource+"/"+w.Window, figure.metric, got)
				case figure.value != nil && !shown:
					t.Errorf("%s %s/%s: the JSON view has %s %v, /metrics nothing", target.Key, target.Model, w.Resource+"/"+w.Window, figure.metric, *figure.value)
				case figure.value != nil && math.Abs(got-*figure.value) > 1e-6:
					t.Errorf("%s %s/%s: %s is %v in /metrics, %v in the JSON view", target.Key, target.Model, w.Resource+"/"+w.Window, figure.metric, got, *figure.value)
				case figure.value != nil:
					compared++
				}
			}
			if w.Source == "" || w.ReadAt == nil {
				t.Errorf("%s %s %s/%s: no source or read_at", target.Key, target.Model, w.Resource, w.Window)
			}
		}
	}
	// Every window series of /metrics is in the JSON view.
	if n := len(windowSamples(metrics)); n != compared {
		t.Errorf("/metrics has %d remaining, limit and reset samples; the JSON view gave %d of them", n, compared)
	}
	if compared < 30 {
		t.Errorf("only %d figures compared", compared)
	}
	byName := map[string]snapshot.Target{}
	for _, target := range report.Targets {
		byName[target.Key+"/"+target.Model] = target
	}
	if r := byName["revoked/llama3.1-8b"]; r.OK || r.Result != "unauthorized" || r.StatusCode != 401 || r.Error == "" {
		t.Errorf("revoked: %+v", r)
	}
	if r := byName["prod/o3"]; r.Result != snapshot.ResultNotProbed || len(r.Windows) != 2 || r.Windows[0].Source != snapshot.SourceAdminAPI {
		t.Errorf("prod/o3, which only the admin API names: %+v", r)
	}
	if len(report.Admin) != 1 || !report.Admin[0].OK || report.Admin[0].Name != "openai-org" || fmt.Sprint(report.Admin[0].Read) != "[proj_abc]" {
		t.Errorf("admin sources: %+v", report.Admin)
	}

	// check --output=json of the same config: the same schema, the same
	// targets and windows.
	cmd := exec.Command(testkit.Binary(t), "check", "--output=json", "--config.file="+cfg)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		<-ctx.Done()
		if cmd.Process != nil && ctx.Err() == context.DeadlineExceeded {
			_ = cmd.Process.Kill()
		}
	}()
	if err := cmd.Run(); err == nil {
		t.Error("check of a config with a revoked key exited 0")
	}
	checked := decodeReport(t, "check --output=json", stdout.String())
	// check does not name OpenAI's unnamed header windows after the admin
	// API's, as the exporter does: it lists them apart, under window "".
	if got, want := windowList(checked, true), windowList(report, false); got != want {
		t.Errorf("check --output=json lists\n%s\n/api/v1/limits lists\n%s", got, want)
	}

	outputs := map[string]string{"/api/v1/limits": apiText, "check --output=json": stdout.String(), "check's stderr": stderr.String()}
	for _, path := range []string{"/api/v1/limits?key=good", "/api/v1/limits?model=llama3.1-8b", "/api/v1/limits?key=" + goodKey,
		"/api/v1/limits?" + goodKey, "/api/v1/limits?key=revoked&" + revokedKey + "=1"} {
		_, outputs[path] = e.get(t, path)
	}
	for name, out := range outputs {
		for _, key := range []string{goodKey, revokedKey, adminProbeKey, adminKey} {
			if strings.Contains(out, key) {
				t.Errorf("%s holds the key %s:\n%s", name, key, out)
			}
		}
	}
}

// windowSamples are the remaining, limit and reset timestamp samples of
// metrics.
func windowSamples(metrics map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for name, v := range metrics {
		for _, family := range []string{"ratelimit_remaining{", "ratelimit_limit{", "ratelimit_reset_timestamp_seconds{"} {
			if strings.HasPrefix(name, family) {
				out[name] = v
			}
		}
	}
	return out
}

// windowList lists a report's targets and windows, each name once (check
// lists an admin API's window apart from the probe's of the same name),
// leaving out unnamed windows if named.
func windowList(r snapshot.Report, named bool) string {
	var lines []string
	for _, target := range r.Targets {
		line := target.Key + " " + target.Model + ":"
		last := ""
		for _, w := range target.Windows {
			if name := w.Resource + "/" + w.Window; name != last && (!named || w.Window != "") {
				line += " " + name
				last = name
			}
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

func unixSecondsOf(t *time.Time) *float64 {
	if t == nil {
		return nil
	}
	v := float64(t.UnixNano()) / 1e9
	return &v
}

// The README's example of the JSON view is the schema: it decodes strictly.
func TestLimitsJSONReadmeExample(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## JSON view: /api/v1/limits\n")
	if !ok {
		t.Fatal("README.md has no JSON view section")
	}
	_, example, ok := strings.Cut(section, "\n```json\n")
	if example, _, ok = strings.Cut(example, "\n```\n"); !ok {
		t.Fatal("the JSON view section has no ```json example")
	}
	r := decodeReport(t, "the README's example", example)
	if len(r.Targets) == 0 || len(r.Targets[0].Windows) == 0 {
		t.Errorf("the README's example shows no window: %+v", r)
	}
}
