package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "module github.com/ratelimit-exporter/ratelimit_exporter\n"

// FindRepoRoot returns the repository's root: the nearest folder at or
// above the working directory whose go.mod is this module's.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(data), module) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of " + strings.TrimSpace(module) + " at or above the working directory")
		}
		dir = parent
	}
}

// RepoRoot returns the repository's root, as FindRepoRoot does.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// The versions of the tools .ci/run installs with go install, which the
// Helm chart's tests run.
const (
	HelmVersion            = "v3.22.0"
	KubectlValidateVersion = "v0.0.4"
)

// toolInstalls says how to install each tool the tests run; .ci/run does it.
var toolInstalls = map[string]string{
	"make":             "install make (Debian/Ubuntu: apt-get install make); the exporter is built with make build, as the Dockerfile builds it",
	"prometheus":       "install Prometheus (Debian/Ubuntu: apt-get install prometheus; elsewhere: the release tarball from prometheus.io)",
	"promtool":         "install Prometheus (Debian/Ubuntu: apt-get install prometheus; elsewhere: the release tarball from prometheus.io)",
	"chromium":         "install Chromium (Debian/Ubuntu: apt-get install chromium); the status page's test drives it with chromedp",
	"helm":             "go install helm.sh/helm/v3/cmd/helm@" + HelmVersion,
	"kubectl-validate": "go install sigs.k8s.io/kubectl-validate@" + KubectlValidateVersion,
}

// RequireTool returns the path of a program the test needs. When it is
// not installed, the test fails in CI (CI set, as .ci/run's callers set
// it) and is skipped elsewhere, with how to install it.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	install, ok := toolInstalls[name]
	if !ok {
		install = ".ci/run installs it"
	}
	msg := fmt.Sprintf("%s is not installed: %s; and put it on PATH", name, install)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

// LoopbackAddr returns a loopback address whose port was free a moment
// ago: for a server to listen on, or for one that nothing listens on.
func LoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// FreeAddr returns a loopback address, as LoopbackAddr does.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := LoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// WriteFile writes text to dir/name, readable by its owner only (a config
// may hold a key), and returns its path.
func WriteFile(dir, name, text string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(text), 0o600)
}

// WriteConfig writes text to ratelimit_exporter.yml in a new temporary
// folder of t's and returns its path.
func WriteConfig(t testing.TB, text string) string {
	t.Helper()
	path, err := WriteFile(t.TempDir(), "ratelimit_exporter.yml", text)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// GNUGunzip returns what GNU gzip inflates gz to: a decoder other than
// Go's. gzip is on every Debian, so its absence fails the test.
func GNUGunzip(t testing.TB, gz []byte) string {
	t.Helper()
	path, err := exec.LookPath("gzip")
	if err != nil {
		t.Fatal("gzip is not installed: every Debian has it")
	}
	cmd := exec.Command(path, "-dc")
	cmd.Stdin = bytes.NewReader(gz)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip -dc: %v", err)
	}
	return string(out)
}
