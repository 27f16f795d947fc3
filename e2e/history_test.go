package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// The landing page lists the recent probes and proxy readings, each
// linking to its log, and each target's last failure apart from them: the
// revoked key's failure stays listed when the proxy's traffic has pushed
// it out of the recent ones, and an entry gone answers 404. No page and no
// log line at debug level shows a key.
func TestHistoryOnLandingPage(t *testing.T) {
	sim := simulator.New("llama3.1-8b")
	sim.AddKey(goodKey, simulator.Limits{"requests": {"minute": 1000}, "tokens": {"minute": 1e6}})
	mux := http.NewServeMux()
	mux.Handle("/cerebras/", sim)
	upstream := httptest.NewServer(mux)
	t.Cleanup(upstream.Close)
	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: interval, interval: 1h}
keys:
  - {name: good, api_key: %[1]s, base_url: %[2]s/cerebras/v1, models: [llama3.1-8b]}
  - {name: revoked, api_key_file: %[3]s, base_url: %[2]s/cerebras/v1, models: [llama3.1-8b]}
proxy:
  listen_address: %[4]s
  routes: [{path_prefix: /cerebras/, upstream: %[2]s/cerebras, provider: cerebras}]
`, goodKey, upstream.URL, revokedKeyFile(t), proxyAddr))
	e := start(t, nil, "--config.file="+cfg, "--history.limit=4", "--log.level=debug")
	e.waitFor(t,
		`ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras"} 1`,
		`ratelimit_probe_success{key="revoked",model="llama3.1-8b",provider="cerebras"} 0`)
	chat := func() {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+proxyAddr+"/cerebras/v1/chat/completions",
			strings.NewReader(`{"model":"llama3.1-8b","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+goodKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("chat through the proxy: HTTP %d", resp.StatusCode)
		}
	}
	chat()
	e.waitFor(t, `ratelimit_observations_total{key="good",model="llama3.1-8b",provider="cerebras",source="proxy"} 1`)

	noKey := func(where, body string) {
		t.Helper()
		for _, key := range []string{goodKey, revokedKey} {
			if strings.Contains(body, key) {
				t.Fatalf("%s shows a key:\n%s", where, body)
			}
		}
	}
	links := regexp.MustCompile(`<tr><td>[^<]+</td><td>([^<]+)</td><td>([^<]+)</td><td>(probe|proxy)</td><td[^>]*>([a-z_]+)</td><td>([^<]*)</td><td><a href="/probe/log\?id=(\d+)">log</a>`)
	page := func() (failures, recent [][]string) {
		t.Helper()
		status, body := e.get(t, "/")
		if status != http.StatusOK {
			t.Fatalf("/: HTTP %d", status)
		}
		noKey("the landing page", body)
		before, after, ok := strings.Cut(body, "<h2>Recent probes</h2>")
		if !ok || !strings.Contains(before, "<h2>Last failure of each target</h2>") || !strings.Contains(body, `href="/metrics"`) {
			t.Fatalf("the landing page lacks its links or the probes:\n%s", body)
		}
		return links.FindAllStringSubmatch(before, -1), links.FindAllStringSubmatch(after, -1)
	}
	failures, recent := page()
	if len(failures) != 1 || failures[0][1] != "revoked" || failures[0][4] != "unauthorized" {
		t.Errorf("failures listed: %q, want revoked's", failures)
	}
	sources := map[string]bool{}
	for _, row := range recent {
		sources[row[1]+" "+row[3]+" "+row[4]] = true
		if row[2] != "llama3.1-8b" {
			t.Errorf("a row of model %q", row[2])
		}
		if row[3] == "probe" && !strings.HasSuffix(row[5], "s") {
			t.Errorf("a probe's duration %q", row[5])
		}
		status, log := e.get(t, "/probe/log?id="+row[6])
		if status != http.StatusOK {
			t.Fatalf("/probe/log?id=%s: HTTP %d: %s", row[6], status, log)
		}
		noKey("/probe/log?id="+row[6], log)
		want := map[string]string{"probe": `msg="Probe ended" result=` + row[4], "proxy": `msg="Reading of proxied traffic" key=` + row[1]}[row[3]]
		if !strings.Contains(log, want) || !strings.Contains(log, "\nTarget configuration:\n") {
			t.Errorf("/probe/log?id=%s lacks %q:\n%s", row[6], want, log)
		}
	}
	for _, want := range []string{"good probe success", "revoked probe unauthorized", "good proxy success"} {
		if !sources[want] {
			t.Errorf("the recent probes lack %q: %q", want, recent)
		}
	}

	// Four more readings push every earlier entry out of the recent ones.
	for range 4 {
		chat()
	}
	e.waitFor(t, `ratelimit_observations_total{key="good",model="llama3.1-8b",provider="cerebras",source="proxy"} 5`)
	failuresAfter, recentAfter := page()
	if len(recentAfter) != 4 {
		t.Errorf("%d recent entries with --history.limit=4: %q", len(recentAfter), recentAfter)
	}
	for _, row := range recentAfter {
		if row[3] != "proxy" {
			t.Errorf("a probe left in the recent entries after four readings: %q", row)
		}
	}
	if len(failuresAfter) != 1 || failuresAfter[0][6] != failures[0][6] {
		t.Errorf("revoked's failure is gone: %q, want %q", failuresAfter, failures)
	}
	if status, log := e.get(t, "/probe/log?id="+failures[0][6]); status != http.StatusOK || !strings.Contains(log, `msg="Received response" status="401 Unauthorized"`) {
		t.Errorf("revoked's failure's log: HTTP %d\n%s", status, log)
	}
	gone := recent[len(recent)-1][6]
	if gone == failures[0][6] {
		gone = recent[len(recent)-2][6]
	}
	status, body := e.get(t, "/probe/log?id="+gone)
	if status != http.StatusNotFound || !strings.Contains(body, "Probe "+gone+" is not kept: the history keeps the last --history.limit probes") {
		t.Errorf("/probe/log?id=%s of an entry gone: HTTP %d %q", gone, status, body)
	}
	if status, body := e.get(t, "/probe/log?id=x"); status != http.StatusBadRequest {
		t.Errorf("/probe/log?id=x: HTTP %d %q", status, body)
	}
	noKey("the exporter's log at debug level", e.Logs())
}

// --history.limit=0 lists no recent probe, yet keeps each target's last
// failure, which /probe?debug=true shows in interval mode.
func TestHistoryOff(t *testing.T) {
	_, url := startSimulator(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: interval, interval: 1h}
keys:
  - {name: good, api_key: %[1]s, base_url: %[2]s, models: [llama3.1-8b]}
  - {name: revoked, api_key_file: %[3]s, base_url: %[2]s, models: [llama3.1-8b]}
`, goodKey, url, revokedKeyFile(t)))
	e := start(t, nil, "--config.file="+cfg, "--history.limit=0")
	e.waitFor(t,
		`ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras"} 1`,
		`ratelimit_probe_success{key="revoked",model="llama3.1-8b",provider="cerebras"} 0`)
	_, body := e.get(t, "/")
	if !strings.Contains(body, "The history is off (<code>--history.limit=0</code>).") || !strings.Contains(body, "<td>revoked</td>") || strings.Contains(body, "<td>good</td>") {
		t.Errorf("the landing page with the history off:\n%s", body)
	}
	if _, body := e.get(t, "/probe?key=revoked&model=llama3.1-8b&debug=true"); !strings.Contains(body, `msg="Probe ended" result=unauthorized`) {
		t.Errorf("debug=true of the failing target:\n%s", body)
	}
	if _, body := e.get(t, "/probe?key=good&model=llama3.1-8b&debug=true"); !strings.Contains(body, "No probe of this target is kept:") {
		t.Errorf("debug=true of the target that succeeded, history off:\n%s", body)
	}
}
