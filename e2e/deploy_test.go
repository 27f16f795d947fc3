package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// No Docker engine runs where the tests run, so these tests hold the
// Dockerfile and the compose example to the repository: every path, flag,
// port and version they name.

// dockerfile returns the Dockerfile with continuation lines joined.
func dockerfile(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(data), "\\\n", " ")
}

func instruction(t *testing.T, df, name string) []string {
	t.Helper()
	var args []string
	for _, line := range strings.Split(df, "\n") {
		if after, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			args = append(args, strings.TrimSpace(after))
		}
	}
	return args
}

func TestDockerfile(t *testing.T) {
	df := dockerfile(t)

	// go.mod names the minor version users need; the image pins a patch release of it.
	goMod, _ := os.ReadFile("../go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(string(goMod))[1]
	if !regexp.MustCompile(`^1\.\d+(\.0)?$`).MatchString(goVersion) {
		t.Errorf("go.mod says go %s: name the minor version (go 1.N.0), so that any 1.N.x builds without a toolchain download", goVersion)
	}
	goVersion = strings.TrimSuffix(goVersion, ".0")
	if args := instruction(t, df, "ARG"); len(args) == 0 || !regexp.MustCompile(`^GO_VERSION=`+regexp.QuoteMeta(goVersion)+`\.\d+$`).MatchString(args[0]) {
		t.Errorf("first ARG = %v, want GO_VERSION=%s.N, a pinned patch release of go.mod's go %s", args, goVersion, goVersion)
	}
	from := instruction(t, df, "FROM")
	if len(from) != 2 || from[0] != "golang:${GO_VERSION}-bookworm AS build" || !strings.HasPrefix(from[1], "gcr.io/distroless/static") {
		t.Errorf("FROM = %v: want a pinned Go build stage and a distroless static final stage", from)
	}
	if users := instruction(t, df, "USER"); len(users) != 1 || strings.HasPrefix(users[0], "0") || strings.HasPrefix(users[0], "root") {
		t.Errorf("USER = %v, want one non-root user", users)
	}
	if expose := instruction(t, df, "EXPOSE"); len(expose) != 1 || expose[0] != "10429" {
		t.Errorf("EXPOSE = %v, want the default --web.listen-address port 10429", expose)
	}
	// The build is the Makefile's, flags and all: written once.
	if strings.Contains(df, "go build") || strings.Contains(df, "-ldflags") {
		t.Error("the Dockerfile builds with go build and flags of its own: RUN make build instead")
	}
	out := regexp.MustCompile(`RUN make build BIN=(\S+) `).FindStringSubmatch(df)
	copyFinal := instruction(t, df, "COPY --from=build")
	entry := instruction(t, df, "ENTRYPOINT")
	if out == nil || len(copyFinal) != 1 || len(entry) != 1 ||
		copyFinal[0] != out[1]+" /bin/ratelimit_exporter" || entry[0] != `["/bin/ratelimit_exporter"]` {
		t.Errorf("build output %v, COPY --from=build %v, ENTRYPOINT %v do not line up", out, copyFinal, entry)
	}
	if wd := instruction(t, df, "WORKDIR"); len(wd) != 2 || wd[1] != "/etc/ratelimit_exporter" {
		t.Errorf("final WORKDIR = %v: the default config path is relative to it, as the README says", wd)
	}
}

// The Dockerfile's make build sets what --version prints: the binary under
// test is built with its line and testkit.BuildArgs; the Makefile sets the date.
func TestDockerfileVersionFlags(t *testing.T) {
	out, err := exec.Command(testkit.Binary(t), "--version").CombinedOutput()
	want := regexp.MustCompile(`^ratelimit_exporter, version 9\.8\.7 \(branch: release-9\.8, revision: abc123\)\n  build user:       docker\n  build date:       \d{8}-\d\d:\d\d:\d\d\n`)
	if err != nil || !want.Match(out) {
		t.Errorf("--version:\n%s\nwant it to match\n%s", out, want)
	}
}

// .dockerignore keeps out nothing the build needs.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lsFiles := exec.Command("git", "ls-files")
	lsFiles.Dir = ".."
	files, err := lsFiles.Output()
	if err != nil {
		t.Skip("not a git checkout")
	}
	for _, pattern := range strings.Fields(string(data)) {
		pattern = strings.TrimPrefix(pattern, "/")
		for _, f := range strings.Fields(string(files)) {
			needed := strings.HasSuffix(f, ".go") || f == "go.mod" || f == "go.sum" || f == "Makefile" ||
				f == "grafana/dashboard.json" || f == "config/default.yml"
			ignored, _ := filepath.Match(pattern, f)
			if needed && (ignored || strings.HasPrefix(f, pattern+"/")) {
				t.Errorf(".dockerignore pattern %q keeps out %s, which the build needs", pattern, f)
			}
		}
	}
}

type composeFile struct {
	Services map[string]struct {
		Build struct {
			Context string `yaml:"context"`
		} `yaml:"build"`
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
	} `yaml:"services"`
}

func TestDockerCompose(t *testing.T) {
	data, err := os.ReadFile("../examples/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose composeFile
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	exporter := compose.Services["ratelimit_exporter"]
	if _, err := os.Stat(filepath.Join("../examples", exporter.Build.Context, "Dockerfile")); err != nil {
		t.Errorf("build context %q has no Dockerfile: %v", exporter.Build.Context, err)
	}
	help, _ := exec.Command(testkit.Binary(t), "--help").CombinedOutput()
	for _, arg := range exporter.Command {
		flag, _, _ := strings.Cut(arg, "=")
		name := strings.TrimPrefix(flag, "--")
		if !regexp.MustCompile(`--(\[no-\])?` + regexp.QuoteMeta(name) + `[ =]`).Match(help) {
			t.Errorf("the exporter has no flag %s", flag)
		}
	}
	if strings.Join(exporter.Ports, ",") != "10429:10429" {
		t.Errorf("exporter ports %v", exporter.Ports)
	}

	// Lay out every mounted file where its container sees it.
	root := t.TempDir()
	for name, svc := range compose.Services {
		if svc.Image != "" && !regexp.MustCompile(`:v?\d+\.\d+\.\d+$`).MatchString(svc.Image) {
			t.Errorf("%s: image %q is not pinned to a version", name, svc.Image)
		}
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			src, dst := filepath.Join("../examples", parts[0]), filepath.Join(root, name, parts[1])
			if err := exec.Command("cp", "-r", src, dst).Run(); err != nil {
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
					t.Errorf("%s: volume %s: %s", name, v, out)
				}
			}
		}
	}

	// Prometheus, as mounted, loads its config and rules and scrapes the exporter's service.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := exec.Command(promtool, "check", "config", filepath.Join(root, "prometheus/etc/prometheus/prometheus.yml")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS: 2 rule files found") {
			t.Errorf("promtool check config of the mounted prometheus.yml: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Error("promtool is not installed (apt-get install prometheus)")
	}
	promCfg, _ := os.ReadFile(filepath.Join(root, "prometheus/etc/prometheus/prometheus.yml"))
	if !strings.Contains(string(promCfg), `"ratelimit_exporter:10429"`) {
		t.Error("examples/prometheus.yml does not scrape the ratelimit_exporter service on 10429")
	}

	// Grafana, as mounted, finds its data source and the dashboard.
	grafanaRoot := filepath.Join(root, "grafana")
	ds, _ := os.ReadFile(filepath.Join(grafanaRoot, "etc/grafana/provisioning/datasources/prometheus.yml"))
	if !strings.Contains(string(ds), "url: http://prometheus:9090") {
		t.Error("the provisioned data source does not point at the prometheus service")
	}
	provider, _ := os.ReadFile(filepath.Join(grafanaRoot, "etc/grafana/provisioning/dashboards/ratelimit_exporter.yml"))
	path := regexp.MustCompile(`path: (\S+)`).FindStringSubmatch(string(provider))
	if path == nil {
		t.Fatal("the dashboard provider has no path")
	}
	if _, err := os.Stat(filepath.Join(grafanaRoot, path[1], "dashboard.json")); err != nil {
		t.Errorf("the dashboard provider's folder %s holds no dashboard.json: %v", path[1], err)
	}
	home := compose.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if _, err := os.Stat(filepath.Join(grafanaRoot, home)); err != nil {
		t.Errorf("Grafana's home dashboard %s is not mounted: %v", home, err)
	}
}
