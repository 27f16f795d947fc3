package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// The tools the chart's tests run are at the versions .ci/run installs
// (testkit.HelmVersion, testkit.KubectlValidateVersion).
const (
	prometheusOperatorVersion = "v0.85.0" // its CRDs validate ServiceMonitor and PrometheusRule
	chartDir                  = "../charts/ratelimit-exporter"
	fullValues                = chartDir + "/ci/full-values.yaml"
)

// .ci/run installs the tools at the versions the tests name.
func TestCIInstallsPinnedTools(t *testing.T) {
	script, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"go install helm.sh/helm/v3/cmd/helm@" + testkit.HelmVersion,
		"go install sigs.k8s.io/kubectl-validate@" + testkit.KubectlValidateVersion,
	} {
		if !strings.Contains(string(script), want) {
			t.Errorf(".ci/run does not %s", want)
		}
	}
	prometheus3, err := os.ReadFile("../.ci/prometheus3")
	if err != nil {
		t.Fatal(err)
	}
	if want := "\nPROMETHEUS3_VERSION=" + testkit.Prometheus3Version + "\n"; !strings.Contains(string(prometheus3), want) {
		t.Errorf(".ci/prometheus3 does not build Prometheus %s", testkit.Prometheus3Version)
	}
	if !strings.Contains(string(script), `RLE_PROMETHEUS3="$(.ci/prometheus3)/prometheus"`) {
		t.Error(".ci/run does not build Prometheus 3 with .ci/prometheus3 and export RLE_PROMETHEUS3")
	}
}

// prometheusOperatorCRDs returns the folder of prometheus-operator's CRDs,
// from its Go module, downloaded through the module proxy if need be.
func prometheusOperatorCRDs(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/prometheus-operator/prometheus-operator@"+prometheusOperatorVersion).Output()
	if err != nil {
		t.Fatalf("downloading prometheus-operator %s for its CRDs: %v\n%s", prometheusOperatorVersion, err, out)
	}
	var module struct{ Dir string }
	if err := json.Unmarshal(out, &module); err != nil || module.Dir == "" {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	return filepath.Join(module.Dir, "example", "prometheus-operator-crd")
}

// rendered is one `helm template` output: its text and its objects by kind.
type rendered struct {
	text    []byte
	objects map[string]map[string]any
}

func helmTemplate(t *testing.T, helm string, args ...string) (rendered, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm, append([]string{"template", "rle", chartDir}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return rendered{}, &helmError{err: err, output: stderr.String()}
	}
	r := rendered{text: stdout.Bytes(), objects: map[string]map[string]any{}}
	dec := yaml.NewDecoder(bytes.NewReader(r.text))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc == nil {
			continue
		}
		kind, _ := doc["kind"].(string)
		if r.objects[kind] != nil {
			t.Fatalf("two %s objects rendered", kind)
		}
		r.objects[kind] = doc
	}
	return r, nil
}

type helmError struct {
	err    error
	output string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.output }

// at walks a YAML object by map keys and list indexes.
func at(v any, path ...any) any {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[p]
		case int:
			l, _ := v.([]any)
			if p >= len(l) {
				return nil
			}
			v = l[p]
		}
	}
	return v
}

// asJSON makes YAML values comparable with reflect.DeepEqual.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The chart passes helm lint, renders with its default and its full values,
// and what it renders is valid for Kubernetes (kubectl-validate, with the
// prometheus-operator CRDs), locked down, wired to the exporter's health
// endpoints, keyed from an existing Secret, configured with a config the
// exporter accepts, and alerting with prometheus/*.yml as they are.
func TestHelmChart(t *testing.T) {
	helm := testkit.RequireTool(t, "helm")
	validate := testkit.RequireTool(t, "kubectl-validate")
	crds := prometheusOperatorCRDs(t)

	for _, values := range [][]string{nil, {"-f", fullValues}} {
		out, err := exec.Command(helm, append([]string{"lint", "--strict", chartDir}, values...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "1 chart(s) linted, 0 chart(s) failed") {
			t.Errorf("helm lint --strict %v: %v\n%s", values, err, out)
		}
	}

	for _, c := range []struct {
		name, secret string
		values       []string
		kinds        []string
	}{
		{"default values", "ratelimit-exporter-keys", nil, []string{"ConfigMap", "Deployment", "Service"}},
		{"full values", "llm-keys", []string{"-f", fullValues}, []string{"ConfigMap", "Deployment", "PrometheusRule", "Service", "ServiceMonitor"}},
	} {
		r, err := helmTemplate(t, helm, c.values...)
		if err != nil {
			t.Fatalf("%s: helm template: %v", c.name, err)
		}
		if kinds := slices.Sorted(func(yield func(string) bool) {
			for k := range r.objects {
				if !yield(k) {
					return
				}
			}
		}); !slices.Equal(kinds, c.kinds) {
			t.Errorf("%s: rendered %v, want %v (never a Secret: the keys' Secret exists already)", c.name, kinds, c.kinds)
		}
		manifest := filepath.Join(t.TempDir(), "manifest.yaml")
		if err := os.WriteFile(manifest, r.text, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(validate, "--local-crds", crds, "--version", "1.30", manifest).CombinedOutput(); err != nil {
			t.Errorf("%s: kubectl-validate: %v\n%s", c.name, err, out)
		}

		pod := at(r.objects["Deployment"], "spec", "template", "spec")
		container := at(pod, "containers", 0)
		for _, want := range []struct {
			value any
			path  []any
		}{
			{true, []any{pod, "securityContext", "runAsNonRoot"}},
			{"RuntimeDefault", []any{pod, "securityContext", "seccompProfile", "type"}},
			{false, []any{pod, "automountServiceAccountToken"}},
			{true, []any{container, "securityContext", "readOnlyRootFilesystem"}},
			{false, []any{container, "securityContext", "allowPrivilegeEscalation"}},
			{true, []any{container, "securityContext", "runAsNonRoot"}},
			{"RuntimeDefault", []any{container, "securityContext", "seccompProfile", "type"}},
			{"ALL", []any{container, "securityContext", "capabilities", "drop", 0}},
			{"/-/healthy", []any{container, "livenessProbe", "httpGet", "path"}},
			{"http", []any{container, "livenessProbe", "httpGet", "port"}},
			{"/-/ready", []any{container, "readinessProbe", "httpGet", "path"}},
			{"http", []any{container, "readinessProbe", "httpGet", "port"}},
			{c.secret, []any{pod, "volumes", 1, "secret", "secretName"}},
			{"api-keys", []any{container, "volumeMounts", 1, "name"}},
			{"/etc/ratelimit_exporter/keys", []any{container, "volumeMounts", 1, "mountPath"}},
			{true, []any{container, "volumeMounts", 1, "readOnly"}},
		} {
			if got := at(want.path[0], want.path[1:]...); got != want.value {
				t.Errorf("%s: %v is %v, want %v", c.name, want.path[1:], got, want.value)
			}
		}
		if got := at(container, "securityContext", "capabilities", "drop"); len(got.([]any)) != 1 {
			t.Errorf("%s: capabilities dropped: %v, want [ALL]", c.name, got)
		}

		// The config: no key in it, and the exporter accepts it with the
		// Secret's entries as files.
		config, _ := at(r.objects["ConfigMap"], "data", "ratelimit_exporter.yml").(string)
		if strings.Contains(config, "api_key:") {
			t.Errorf("%s: the ConfigMap holds an api_key:\n%s", c.name, config)
		}
		keys := t.TempDir()
		config = strings.ReplaceAll(config, "/etc/ratelimit_exporter/keys/", keys+"/")
		var parsed struct {
			Keys []struct {
				APIKeyFile string `yaml:"api_key_file"`
			}
		}
		if err := yaml.Unmarshal([]byte(config), &parsed); err != nil {
			t.Fatal(err)
		}
		for i, k := range parsed.Keys {
			// Each key its own secret: one secret under two names is refused.
			if err := os.WriteFile(k.APIKeyFile, []byte(fmt.Sprintf("sk-test-helm-key-%d\n", i)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		code, out := runOnce(t, nil, "--config.file="+testkit.WriteConfig(t, config), "--config.check")
		if code != 0 {
			t.Errorf("%s: the rendered config fails --config.check:\n%s\n%s", c.name, out, config)
		}
	}

	// With every part on: the rules are prometheus/*.yml, the ServiceMonitor
	// scrapes /metrics on the http port, the proxy's port is open.
	r, err := helmTemplate(t, helm, "-f", fullValues)
	if err != nil {
		t.Fatal(err)
	}
	var want []any
	for _, file := range []string{"../prometheus/rules.yml", "../prometheus/alerts.yml", "../prometheus/cloud.rules.yml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var rules map[string]any
		if err := yaml.Unmarshal(data, &rules); err != nil {
			t.Fatal(err)
		}
		want = append(want, rules["groups"].([]any)...)
	}
	if got := at(r.objects["PrometheusRule"], "spec", "groups"); !reflect.DeepEqual(asJSON(t, got), asJSON(t, want)) {
		t.Errorf("the PrometheusRule's groups are not prometheus/rules.yml, alerts.yml and cloud.rules.yml:\n%v", got)
	}
	for _, want := range []struct {
		value any
		path  []any
	}{
		{"http", []any{r.objects["ServiceMonitor"], "spec", "endpoints", 0, "port"}},
		{"/metrics", []any{r.objects["ServiceMonitor"], "spec", "endpoints", 0, "path"}},
		{"kube-prometheus-stack", []any{r.objects["ServiceMonitor"], "metadata", "labels", "release"}},
		{"proxy", []any{r.objects["Service"], "spec", "ports", 1, "name"}},
		{10430, []any{r.objects["Deployment"], "spec", "template", "spec", "containers", 0, "ports", 1, "containerPort"}},
		{"--log.level=debug", []any{r.objects["Deployment"], "spec", "template", "spec", "containers", 0, "args", 2}},
	} {
		if got := at(want.path[0], want.path[1:]...); got != want.value {
			t.Errorf("full values: %v is %v, want %v", want.path[1:], got, want.value)
		}
	}

	// A key in the values is refused, by the schema and, without it, by the
	// template, and the refusal does not repeat it.
	const canary = "sk-test-helm-canary-5a1e"
	for _, args := range [][]string{
		{"--set", "config.keys[0].api_key=" + canary},
		{"--skip-schema-validation", "--set", "config.keys[0].api_key=" + canary},
		{"--set", "apiKeys.existingSecret="},
		{"--set", "serviceMonitr.enabled=true"},
	} {
		_, err := helmTemplate(t, helm, args...)
		if err == nil {
			t.Errorf("helm template %v succeeded, want a refusal", args)
			continue
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("helm template %v: the refusal shows the key: %v", args, err)
		}
	}
	// An Azure key may read a Microsoft Entra ID token instead, from the
	// same Secret; a key with neither file, or both, is refused.
	keysValues := func(key string) []string {
		path := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(path, []byte("config:\n  keys:\n    - "+key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"-f", path}
	}
	const (
		entra  = "{name: azure, provider: azure_openai, base_url: https://r.openai.azure.com, models: [gpt-4o-mini], bearer_token_file: /etc/ratelimit_exporter/keys/AZURE_TOKEN}"
		both   = "{name: azure, provider: azure_openai, base_url: https://r.openai.azure.com, models: [gpt-4o-mini], bearer_token_file: /etc/ratelimit_exporter/keys/AZURE_TOKEN, api_key_file: /etc/ratelimit_exporter/keys/AZURE_KEY}"
		noFile = "{name: azure, provider: azure_openai, base_url: https://r.openai.azure.com, models: [gpt-4o-mini]}"
	)
	if _, err := helmTemplate(t, helm, keysValues(entra)...); err != nil {
		t.Errorf("a key with bearer_token_file: %v", err)
	}
	for _, key := range []string{both, noFile} {
		if _, err := helmTemplate(t, helm, keysValues(key)...); err == nil {
			t.Errorf("helm template with the key %s succeeded, want a refusal", key)
		}
	}
	if _, err := helmTemplate(t, helm, "--skip-schema-validation", "--set", "config.keys[0].api_key="+canary); err == nil ||
		!strings.Contains(err.Error(), "config.keys[0]: api_key would put the key in a ConfigMap") {
		t.Errorf("the template's own refusal: %v", err)
	}

	// An admin source reads its admin key from the same Secret: the
	// rendered config passes --config.check; an admin_key in the values is
	// refused by the schema and by the template, without showing it.
	adminValues := filepath.Join(t.TempDir(), "admin.yaml")
	if err := os.WriteFile(adminValues, []byte(`config:
  admin:
    - {name: openai-org, provider: openai, admin_key_file: /etc/ratelimit_exporter/keys/OPENAI_ADMIN_KEY, budgets: [{monthly: 500}]}
  keys:
    - {name: prod, provider: openai, api_key_file: /etc/ratelimit_exporter/keys/OPENAI_API_KEY, admin: openai-org, project: proj_abc}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = helmTemplate(t, helm, "-f", adminValues)
	if err != nil {
		t.Fatalf("an admin source with admin_key_file: %v", err)
	}
	config, _ := at(r.objects["ConfigMap"], "data", "ratelimit_exporter.yml").(string)
	keys := t.TempDir()
	for name, key := range map[string]string{"OPENAI_ADMIN_KEY": "sk-admin-test-helm-1", "OPENAI_API_KEY": "sk-test-helm-2"} {
		if err := os.WriteFile(filepath.Join(keys, name), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config = strings.ReplaceAll(config, "/etc/ratelimit_exporter/keys/", keys+"/")
	if code, out := runOnce(t, nil, "--config.file="+testkit.WriteConfig(t, config), "--config.check"); code != 0 {
		t.Errorf("the rendered config with an admin source fails --config.check:\n%s\n%s", out, config)
	}
	const adminCanary = "sk-admin-test-helm-canary-6b2f"
	for _, args := range [][]string{
		{"-f", adminValues, "--set", "config.admin[0].admin_key=" + adminCanary},
		{"-f", adminValues, "--skip-schema-validation", "--set", "config.admin[0].admin_key=" + adminCanary},
	} {
		_, err := helmTemplate(t, helm, args...)
		if err == nil {
			t.Errorf("helm template %v succeeded, want a refusal", args)
			continue
		}
		if strings.Contains(err.Error(), adminCanary) {
			t.Errorf("helm template %v: the refusal shows the admin key: %v", args, err)
		}
	}
	if _, err := helmTemplate(t, helm, "-f", adminValues, "--skip-schema-validation", "--set", "config.admin[0].admin_key="+adminCanary); err == nil ||
		!strings.Contains(err.Error(), "config.admin[0]: admin_key would put the admin key in a ConfigMap") {
		t.Errorf("the template's own refusal of an admin_key: %v", err)
	}
}
