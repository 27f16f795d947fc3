package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Prometheus3Version is the Go module version of the Prometheus 3 that
// .ci/prometheus3 builds (as its PROMETHEUS3_VERSION): Prometheus 3.x.y is
// the module's v0.3xx.y.
const Prometheus3Version = "v0.316.0"

// Prometheus3Release returns the version Prometheus3Version reports, such as
// 3.16.0.
func Prometheus3Release() string {
	minor, patch, _ := strings.Cut(strings.TrimPrefix(Prometheus3Version, "v0."), ".")
	return minor[:1] + "." + minor[1:] + "." + patch
}

// Prometheus3Path returns where the tests look for Prometheus 3: the path in
// RLE_PROMETHEUS3 if set, else where .ci/prometheus3 puts it, under the
// user's cache folder.
func Prometheus3Path() string {
	if path := os.Getenv("RLE_PROMETHEUS3"); path != "" {
		return path
	}
	return filepath.Join(prometheus3Cache(), "prometheus")
}

// prometheus3Cache returns the folder .ci/prometheus3 builds into:
// ${XDG_CACHE_HOME:-$HOME/.cache}/rle-prometheus/<version>.
func prometheus3Cache() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "rle-prometheus", Prometheus3Version)
}

var reportedVersion = regexp.MustCompile(`^prometheus, version (\S+) `)

// PrometheusVersion returns the version a prometheus binary reports, such
// as 2.42.0+ds.
func PrometheusVersion(binary string) (string, error) {
	out, err := exec.Command(binary, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", binary, err)
	}
	m := reportedVersion.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s --version reports no version: %q", binary, firstLine(out))
	}
	return string(m[1]), nil
}

func firstLine(out []byte) string {
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}

// RequirePrometheus3 returns the path of Prometheus 3 (Prometheus3Path),
// checked to report Prometheus3Release. When it is missing or another
// version, the test fails in CI (CI set) and is skipped elsewhere, with
// how to build it.
func RequirePrometheus3(t testing.TB) string {
	t.Helper()
	path := Prometheus3Path()
	version, err := PrometheusVersion(path)
	if err == nil && version == Prometheus3Release() {
		return path
	}
	if err == nil {
		err = fmt.Errorf("%s is Prometheus %s", path, version)
	}
	msg := fmt.Sprintf("Prometheus %s is not built (%v): run .ci/prometheus3 (or make prometheus3), which builds it from the Go module proxy "+
		"into %s, about 10 minutes; or set RLE_PROMETHEUS3 to its path", Prometheus3Release(), err, prometheus3Cache())
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}
