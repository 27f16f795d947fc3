package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// BuildArgs are the Dockerfile's build arguments of the exporter Binary
// builds: what its --version says (the Makefile sets the build date).
var BuildArgs = map[string]string{"VERSION": "9.8.7", "REVISION": "abc123", "BRANCH": "release-9.8"}

// Build builds the exporter into dir as the Dockerfile builds it: its
// `RUN make build ...` line, run in the repository's root, with the
// Dockerfile's build arguments set from args or else to their defaults, and
// BIN set to dir/ratelimit_exporter. It returns the binary's path.
func Build(dir string, args map[string]string) (string, error) {
	root, err := FindRepoRoot()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return "", err
	}
	argv, err := dockerMake(string(data), args)
	if err != nil {
		return "", fmt.Errorf("Dockerfile: %w", err)
	}
	bin := filepath.Join(dir, "ratelimit_exporter")
	for i, a := range argv {
		if strings.HasPrefix(a, "BIN=") {
			argv[i] = "BIN=" + bin
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the exporter (%s): %w\n%s", strings.Join(argv, " "), err, out)
	}
	return bin, nil
}

var dockerArg = regexp.MustCompile(`\$\{(\w+)\}`)

// dockerMake returns the words of the Dockerfile's `RUN make build` line,
// its build arguments replaced by args or their ARG defaults, and quotes
// taken off.
func dockerMake(dockerfile string, args map[string]string) ([]string, error) {
	defaults := map[string]string{}
	var run string
	for _, line := range strings.Split(strings.ReplaceAll(dockerfile, "\\\n", " "), "\n") {
		line = strings.TrimSpace(line)
		if arg, ok := strings.CutPrefix(line, "ARG "); ok {
			name, value, _ := strings.Cut(arg, "=")
			defaults[name] = value
		}
		if cmd, ok := strings.CutPrefix(line, "RUN make build"); ok && run == "" {
			run = "make build" + cmd
		}
	}
	if run == "" {
		return nil, errors.New("no RUN make build")
	}
	if !strings.Contains(run, " BIN=") {
		return nil, errors.New("RUN make build sets no BIN=")
	}
	var unknown error
	run = dockerArg.ReplaceAllStringFunc(run, func(ref string) string {
		name := dockerArg.FindStringSubmatch(ref)[1]
		if v, ok := args[name]; ok {
			return v
		}
		v, ok := defaults[name]
		if !ok {
			unknown = fmt.Errorf("RUN make build uses ${%s}, which no ARG declares", name)
		}
		return v
	})
	return strings.Fields(strings.ReplaceAll(run, `"`, "")), unknown
}

var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Binary returns the exporter built for this test process, with BuildArgs,
// building it the first time. Building needs make, a tool as RequireTool
// has it. A package whose tests call Binary runs them with Main, which
// removes the binary at the end.
func Binary(t testing.TB) string {
	t.Helper()
	RequireTool(t, "make")
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "ratelimit_exporter-test")
		if built.err == nil {
			built.bin, built.err = Build(built.dir, BuildArgs)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// Main runs a package's tests, then removes the exporter Binary built for
// them: func TestMain(m *testing.M) { testkit.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}
