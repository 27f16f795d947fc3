package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// runCheckCommand runs the built binary with args and returns its exit
// code, standard output and standard error apart.
func runCheckCommand(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	// A check that serves instead of ending fails here, not at the test's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testkit.Binary(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%v did not end within a minute:\n%s\n%s", args, stdout.String(), stderr.String())
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

type checkReport struct {
	OK      bool `json:"ok"`
	Targets []struct {
		Key, Provider, Model, Result, Error string
		OK                                  bool
		Windows                             []struct {
			Resource, Window string
			Remaining, Limit *float64
		}
	}
}

// `ratelimit_exporter check` probes each key and model once and prints what
// the provider's very response said; it exits 0 only when every probe read
// rate limits, and never prints a key.
func TestCheckCommand(t *testing.T) {
	const otherKey = "sk-test-check-other-2f71"
	sim, url := startSimulator(t)
	sim.AddKey(otherKey, simulator.FreeTrial())
	good := fmt.Sprintf(`keys:
  - {name: a, api_key: %[2]s, base_url: %[1]q, models: [llama3.1-8b]}
  - {name: b, api_key: %[3]s, base_url: %[1]q, models: [llama-3.3-70b]}
`, url, goodKey, otherKey)
	cfg := testkit.WriteConfig(t, good)

	code, stdout, stderr := runCheckCommand(t, "check", "--output=json", "--config.file="+cfg)
	if code != 0 {
		t.Fatalf("check of two good keys exited %d:\n%s\n%s", code, stdout, stderr)
	}
	var report checkReport
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("--output=json: %v\n%s", err, stdout)
	}
	if !report.OK || len(report.Targets) != 2 {
		t.Fatalf("ok %v with %d targets, want true with 2:\n%s", report.OK, len(report.Targets), stdout)
	}
	if got := sim.Requests(); got != 2 {
		t.Errorf("the check sent %d probes, want one per key and model, 2", got)
	}
	for i, apiKey := range []string{goodKey, otherKey} {
		target := report.Targets[i]
		exchange, ok := sim.LastExchange(apiKey)
		if !ok {
			t.Fatalf("the simulator saw no probe of %s", target.Key)
		}
		checked := 0
		for _, w := range target.Windows {
			for name, v := range map[string]*float64{"remaining": w.Remaining, "limit": w.Limit} {
				header := exchange.ResponseHeader.Get("x-ratelimit-" + name + "-" + w.Resource + "-" + w.Window)
				want, err := strconv.ParseFloat(header, 64)
				if err != nil || v == nil || *v != want {
					t.Errorf("%s %s %s/%s: %v, the simulator sent %q", target.Key, name, w.Resource, w.Window, v, header)
				}
				checked++
			}
		}
		if checked < 6 {
			t.Errorf("%s: %d figures read, want every window's remaining and limit: %+v", target.Key, checked, target.Windows)
		}
	}

	code, stdout, _ = runCheckCommand(t, "--config.file="+cfg, "check")
	if code != 0 || !strings.Contains(stdout, "\nAll 2 key and model pairs read their rate limits.\n") ||
		!strings.Contains(stdout, "a    cerebras  llama3.1-8b    requests  minute") {
		t.Errorf("the table, flags before the command: exit %d\n%s", code, stdout)
	}

	// A key the provider refuses: exit 1, the reason shown, no key anywhere.
	broken := testkit.WriteConfig(t, good+fmt.Sprintf("  - {name: revoked, api_key_file: %s, base_url: %q}\n", revokedKeyFile(t), url))
	code, stdout, stderr = runCheckCommand(t, "check", "--config.file="+broken, "--log.level=debug")
	if code != 1 || !strings.Contains(stdout, "1 of 3 key and model pairs read no rate limits:\n  revoked llama3.1-8b (cerebras): unauthorized: HTTP 401") {
		t.Errorf("with a revoked key: exit %d, want 1 with the reason:\n%s", code, stdout)
	}
	for _, key := range []string{goodKey, otherKey, revokedKey} {
		if strings.Contains(stdout+stderr, key) {
			t.Errorf("the check's output shows the key %s:\n%s\n%s", key, stdout, stderr)
		}
	}

	code, _, stderr = runCheckCommand(t, "check", "--output=yaml", "--config.file="+cfg)
	if code != 1 || !strings.Contains(stderr, `--output="yaml": want one of table, json`) {
		t.Errorf("--output=yaml: exit %d\n%s", code, stderr)
	}
}

// `check --demo` probes the demo's simulated providers; the demo's revoked
// OpenAI key makes it exit 1, and says so.
func TestCheckDemo(t *testing.T) {
	code, stdout, stderr := runCheckCommand(t, "check", "--demo", "--output=json")
	var report checkReport
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("%v\n%s\n%s", err, stdout, stderr)
	}
	providers := map[string]bool{}
	for _, target := range report.Targets {
		providers[target.Provider] = true
		if target.OK != (target.Key != "revoked") {
			t.Errorf("%s/%s: ok %v (%s %s)", target.Key, target.Model, target.OK, target.Result, target.Error)
		}
	}
	if code != 1 || report.OK || len(providers) != 7 {
		t.Errorf("check --demo: exit %d, ok %v, providers %v; want 1, false and the demo's 7", code, report.OK, providers)
	}
}

// Ctrl-C ends a check at once: the probes are cancelled, nothing is
// reported as read or failed, and the exit status says interrupted.
func TestCheckInterrupted(t *testing.T) {
	arrived := make(chan struct{}, 100)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body to its end lets the server notice the client
		// hanging up, which ends the request's context.
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer slow.Close()
	var cfg strings.Builder
	cfg.WriteString("probe: {timeout: 60s, concurrency: 4}\nkeys:\n")
	for i := range 50 {
		fmt.Fprintf(&cfg, "  - {name: k%d, api_key: sk-test-check-slow-%04d, base_url: %q}\n", i, i, slow.URL+"/v1")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(testkit.Binary(t), "check", "--config.file="+testkit.WriteConfig(t, cfg.String()))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("no probe arrived within 30s")
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 130 {
			t.Errorf("after SIGINT: %v, want exit status 130", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the check did not end within 30s of SIGINT, with probes of a 60s timeout in flight")
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "Interrupted") {
		t.Errorf("after SIGINT, stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}
