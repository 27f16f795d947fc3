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
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// The tools the chart's tests run are at the versions .ci/run installs
// (testkit.HelmVersion, testkit.KubectlValidateVersion).
const (
	prometheusOperatorVersion = "v0.85.0" // its CRDs validate ServiceMonitor, ScrapeConfig and PrometheusRule
	chartDir                  = "../charts/ratelimit-exporter"
	fullValues                = chartDir + "/ci/full-values.yaml"
	proxyValues               = chartDir + "/ci/proxy-values.yaml"
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

	for _, values := range [][]string{nil, {"-f", fullValues}, {"-f", proxyValues}} {
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
		{"full values", "llm-keys", []string{"-f", fullValues}, []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "PrometheusRule", "ScrapeConfig", "Service", "ServiceMonitor"}},
		{"proxy values", "ratelimit-exporter-keys", []string{"-f", proxyValues}, []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service"}},
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
		// With the container's own flags (--probe.on-request-only, the
		// shutdown delay and grace period, extraArgs): the exporter knows
		// each and accepts its value.
		args := []string{"--config.file=" + testkit.WriteConfig(t, config), "--config.check"}
		for _, a := range containerArgs(r) {
			if !strings.HasPrefix(a, "--config.file=") {
				args = append(args, a)
			}
		}
		code, out := runOnce(t, nil, args...)
		if code != 0 {
			t.Errorf("%s: the rendered config and args %v fail --config.check:\n%s\n%s", c.name, args[2:], out, config)
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
	} {
		if got := at(want.path[0], want.path[1:]...); got != want.value {
			t.Errorf("full values: %v is %v, want %v", want.path[1:], got, want.value)
		}
	}
	if args := containerArgs(r); !slices.Contains(args, "--log.level=debug") {
		t.Errorf("full values: the container's args %v lack extraArgs' --log.level=debug", args)
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

// containerArgs returns the exporter container's command-line arguments.
func containerArgs(r rendered) []string {
	var args []string
	for _, a := range at(r.objects["Deployment"], "spec", "template", "spec", "containers", 0, "args").([]any) {
		args = append(args, a.(string))
	}
	return args
}

// flagValue returns the value of --name=value in args, and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// With more than one replica (by default with the proxy) the chart runs
// every replica with --probe.on-request-only and the config in scrape
// mode, with a PodDisruptionBudget, a spread across nodes, a rolling update
// that never lowers the serving replicas, and a drain that takes the pod
// out of the Service before its listeners close and gives requests in
// flight the grace period before Kubernetes kills it.
func TestHelmChartReplicas(t *testing.T) {
	helm := testkit.RequireTool(t, "helm")
	for _, c := range []struct {
		name     string
		values   []string
		replicas int
		mode     any // config.probe.mode as rendered
	}{
		{"default values", nil, 1, nil},
		{"proxy values", []string{"-f", proxyValues}, 2, "scrape"},
		{"full values", []string{"-f", fullValues}, 2, "scrape"},
		{"proxy, replicas 1", []string{"-f", proxyValues, "--set", "replicas=1"}, 1, nil},
		{"proxy, replicas 1, interval mode", []string{"-f", proxyValues, "--set", "replicas=1", "--set", "config.probe.mode=interval"}, 1, "interval"},
		{"no proxy, replicas 3", []string{"--set", "replicas=3"}, 3, "scrape"},
	} {
		r, err := helmTemplate(t, helm, c.values...)
		if err != nil {
			t.Fatalf("%s: helm template: %v", c.name, err)
		}
		deployment := r.objects["Deployment"]
		pod := at(deployment, "spec", "template", "spec")
		container := at(pod, "containers", 0)
		selector := asJSON(t, at(deployment, "spec", "selector", "matchLabels"))
		args := containerArgs(r)

		if got := at(deployment, "spec", "replicas"); got != c.replicas {
			t.Errorf("%s: replicas %v, want %d", c.name, got, c.replicas)
		}
		// A rolling update starts a new pod before it stops an old one.
		for _, want := range []struct {
			value any
			path  []any
		}{
			{"RollingUpdate", []any{deployment, "spec", "strategy", "type"}},
			{0, []any{deployment, "spec", "strategy", "rollingUpdate", "maxUnavailable"}},
			{1, []any{deployment, "spec", "strategy", "rollingUpdate", "maxSurge"}},
		} {
			if got := at(want.path[0], want.path[1:]...); got != want.value {
				t.Errorf("%s: %v is %v, want %v", c.name, want.path[1:], got, want.value)
			}
		}
		if got := slices.Contains(args, "--probe.on-request-only"); got != (c.replicas > 1) {
			t.Errorf("%s: --probe.on-request-only in %v is %v, want %v", c.name, args, got, c.replicas > 1)
		}
		var config struct{ Probe map[string]any }
		if err := yaml.Unmarshal([]byte(at(r.objects["ConfigMap"], "data", "ratelimit_exporter.yml").(string)), &config); err != nil {
			t.Fatal(err)
		}
		if got := config.Probe["mode"]; got != c.mode {
			t.Errorf("%s: config probe.mode %v, want %v", c.name, got, c.mode)
		}

		pdb := r.objects["PodDisruptionBudget"]
		switch {
		case c.replicas > 1 && pdb == nil:
			t.Errorf("%s: no PodDisruptionBudget", c.name)
		case c.replicas > 1:
			if got := at(pdb, "spec", "maxUnavailable"); got != 1 {
				t.Errorf("%s: the PodDisruptionBudget's maxUnavailable is %v, want 1", c.name, got)
			}
			if got := asJSON(t, at(pdb, "spec", "selector", "matchLabels")); !reflect.DeepEqual(got, selector) {
				t.Errorf("%s: the PodDisruptionBudget selects %v, the Deployment %v", c.name, got, selector)
			}
		case pdb != nil:
			t.Errorf("%s: a PodDisruptionBudget with one replica: a node drain would be blocked", c.name)
		}

		spread := at(pod, "topologySpreadConstraints")
		if c.replicas > 1 {
			for _, want := range []struct {
				value any
				path  []any
			}{
				{"kubernetes.io/hostname", []any{"topologyKey"}},
				{"ScheduleAnyway", []any{"whenUnsatisfiable"}},
				{1, []any{"maxSkew"}},
				{"pod-template-hash", []any{"matchLabelKeys", 0}},
			} {
				if got := at(at(spread, 0), want.path...); got != want.value {
					t.Errorf("%s: topologySpreadConstraints[0] %v is %v, want %v", c.name, want.path, got, want.value)
				}
			}
			if got := asJSON(t, at(spread, 0, "labelSelector", "matchLabels")); !reflect.DeepEqual(got, selector) {
				t.Errorf("%s: the spread counts %v, the Deployment's pods are %v", c.name, got, selector)
			}
		} else if spread != nil {
			t.Errorf("%s: topologySpreadConstraints with one replica: %v", c.name, spread)
		}

		// The drain: not ready (readiness failing) before the shutdown
		// delay ends and the listeners close; killed only after the delay
		// and the grace period.
		period, _ := at(container, "readinessProbe", "periodSeconds").(int)
		threshold, _ := at(container, "readinessProbe", "failureThreshold").(int)
		termination, _ := at(pod, "terminationGracePeriodSeconds").(int)
		durations := map[string]time.Duration{}
		for _, flag := range []string{"web.shutdown-delay", "web.shutdown-grace-period"} {
			v, ok := flagValue(args, flag)
			if d, err := time.ParseDuration(v); !ok || err != nil {
				t.Errorf("%s: --%s in %v: %q, %v", c.name, flag, args, v, err)
			} else {
				durations[flag] = d
			}
		}
		delay, grace := durations["web.shutdown-delay"], durations["web.shutdown-grace-period"]
		if delay != 10*time.Second || grace != 60*time.Second {
			t.Errorf("%s: --web.shutdown-delay=%s --web.shutdown-grace-period=%s, want the defaults 10s and 60s", c.name, delay, grace)
		}
		if period < 1 || threshold < 1 || delay <= time.Duration(period*threshold)*time.Second {
			t.Errorf("%s: readiness periodSeconds %d × failureThreshold %d is not shorter than --web.shutdown-delay=%s: the listeners would close while the Service still sends", c.name, period, threshold, delay)
		}
		if time.Duration(termination)*time.Second <= delay+grace {
			t.Errorf("%s: terminationGracePeriodSeconds %d is not longer than the shutdown delay %s and grace period %s", c.name, termination, delay, grace)
		}
	}

	// Values that change the above.
	r, err := helmTemplate(t, helm, "-f", proxyValues, "--set", "podDisruptionBudget.minAvailable=1",
		"--set", "topologySpread.whenUnsatisfiable=DoNotSchedule", "--set", "terminationGracePeriodSeconds=71", "--set", "shutdown.delay=7s")
	if err != nil {
		t.Fatal(err)
	}
	pod := at(r.objects["Deployment"], "spec", "template", "spec")
	for _, want := range []struct {
		value any
		path  []any
	}{
		{1, []any{r.objects["PodDisruptionBudget"], "spec", "minAvailable"}},
		{nil, []any{r.objects["PodDisruptionBudget"], "spec", "maxUnavailable"}},
		{"DoNotSchedule", []any{pod, "topologySpreadConstraints", 0, "whenUnsatisfiable"}},
		{71, []any{pod, "terminationGracePeriodSeconds"}},
	} {
		if got := at(want.path[0], want.path[1:]...); got != want.value {
			t.Errorf("changed values: %v is %v, want %v", want.path[1:], got, want.value)
		}
	}
	if v, _ := flagValue(containerArgs(r), "web.shutdown-delay"); v != "7s" {
		t.Errorf("shutdown.delay=7s: --web.shutdown-delay=%s", v)
	}
	// Constraints of one's own replace the chart's.
	own := filepath.Join(t.TempDir(), "spread.yaml")
	if err := os.WriteFile(own, []byte("topologySpreadConstraints:\n  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app.kubernetes.io/name: ratelimit-exporter}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, err = helmTemplate(t, helm, "-f", proxyValues, "-f", own); err != nil {
		t.Fatal(err)
	}
	if spread := at(r.objects["Deployment"], "spec", "template", "spec", "topologySpreadConstraints").([]any); len(spread) != 1 || at(spread, 0, "topologyKey") != "topology.kubernetes.io/zone" {
		t.Errorf("topologySpreadConstraints of one's own: %v", spread)
	}

	// What cannot work is refused, saying what, which value and what to do.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", proxyValues, "--set", "config.probe.mode=interval"},
			`config.probe.mode: "interval" probes on a timer on every replica, and replicas is 2: with more than one replica Prometheus drives the probes through /probe on the Service (scrape mode). Leave probe.mode out (the chart sets scrape) or set it to scrape, or set replicas: 1`},
		{[]string{"--set", "replicas=3", "--set", "config.probe.mode=interval"},
			`config.probe.mode: "interval" probes on a timer on every replica, and replicas is 3`},
		{[]string{"--set", "terminationGracePeriodSeconds=70"},
			`terminationGracePeriodSeconds: 70 is not longer than shutdown.delay + shutdown.gracePeriod (10s + 60s): Kubernetes would kill the exporter while requests drain. Raise it, or leave it out to have 85`},
		{[]string{"--set", "shutdown.delay=6s"},
			`shutdown.delay: 6s is not longer than readinessProbe.periodSeconds × failureThreshold (6s): the listeners would close before the pod is seen not ready. Raise shutdown.delay or lower the readiness probe's period or threshold`},
		{[]string{"--set", "extraArgs={--web.shutdown-grace-period=5s}"},
			`extraArgs: --web.shutdown-grace-period is the chart's to set: use shutdown.delay, shutdown.gracePeriod or replicas`},
		{[]string{"--set", "extraArgs={--probe.on-request-only}"},
			`extraArgs: --probe.on-request-only is the chart's to set`},
		// kingpin's negation of a bool flag, which beside the chart's own
		// stops the exporter at its start (a flag "cannot be repeated").
		{[]string{"--set", "extraArgs={--no-probe.on-request-only}"},
			`extraArgs: --no-probe.on-request-only is the chart's to set`},
		// Durations the schema lets through but Go's time.Duration, so the
		// exporter's flag, cannot hold: the pod would crash at its start.
		{[]string{"--set", "shutdown.gracePeriod=9999999h"},
			`shutdown.gracePeriod: 9999999h is longer than the exporter's flags take (a Go duration, at most 2562047h): the pod would not start. Lower it`},
		{[]string{"--set", "shutdown.delay=2562048h"}, `shutdown.delay: 2562048h is longer than the exporter's flags take`},
		// values.schema.json
		{[]string{"--set", "replicas=-1"}, `at '/replicas': minimum: got -1, want 0`},
		{[]string{"--set", "shutdown.gracePeriod=1d"}, `at '/shutdown/gracePeriod': '1d' does not match pattern`},
		{[]string{"--set", "topologySpread.whenUnsatisfiable=Never"}, `at '/topologySpread/whenUnsatisfiable'`},
		{[]string{"--set", "readinessProbe.failureThreshold=0"}, `at '/readinessProbe/failureThreshold'`},
	} {
		if _, err := helmTemplate(t, helm, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("helm template %v: %v, want a refusal with\n%s", c.args, err, c.want)
		}
	}
}

// With the ServiceMonitor and more than one replica, a ScrapeConfig
// scrapes /probe through the Service, its targets from the Service's /sd,
// under the job the ServiceMonitor gives (prometheus-operator: the
// Service's name, or the value of its label jobLabel names), every
// serviceMonitor.probeInterval (else 1m), longer than min_interval.
func TestHelmChartScrapeConfig(t *testing.T) {
	helm := testkit.RequireTool(t, "helm")
	withMonitor := []string{"-f", proxyValues, "--set", "serviceMonitor.enabled=true"}
	for _, c := range []struct {
		name              string
		values            []string
		url, job          string
		interval, timeout string
	}{
		{"full values", []string{"-f", fullValues}, "http://rle-ratelimit-exporter.default.svc:10429/sd", "rle-ratelimit-exporter", "1m", "25s"},
		{"proxy values", withMonitor, "http://rle-ratelimit-exporter.default.svc:10429/sd", "rle-ratelimit-exporter", "1m", "30s"},
		{"namespace, service port", append([]string{"--namespace", "monitoring", "--set", "service.port=8080"}, withMonitor...),
			"http://rle-ratelimit-exporter.monitoring.svc:8080/sd", "rle-ratelimit-exporter", "1m", "30s"},
		{"min_interval 30s", append([]string{"--set", "config.probe.min_interval=30s"}, withMonitor...),
			"http://rle-ratelimit-exporter.default.svc:10429/sd", "rle-ratelimit-exporter", "1m", "30s"},
		{"probeInterval 20s", append([]string{"--set", "serviceMonitor.probeInterval=20s"}, withMonitor...),
			"http://rle-ratelimit-exporter.default.svc:10429/sd", "rle-ratelimit-exporter", "20s", "20s"},
		{"probeInterval 2m", append([]string{"--set", "serviceMonitor.probeInterval=2m", "--set", "serviceMonitor.probeScrapeTimeout=40s"}, withMonitor...),
			"http://rle-ratelimit-exporter.default.svc:10429/sd", "rle-ratelimit-exporter", "2m", "40s"},
		{"jobLabel", append([]string{"--set", "serviceMonitor.jobLabel=app.kubernetes.io/name"}, withMonitor...),
			"http://rle-ratelimit-exporter.default.svc:10429/sd", "ratelimit-exporter", "1m", "30s"},
		{"jobLabel the Service lacks", append([]string{"--set", "serviceMonitor.jobLabel=example.com/team"}, withMonitor...),
			"http://rle-ratelimit-exporter.default.svc:10429/sd", "rle-ratelimit-exporter", "1m", "30s"},
	} {
		r, err := helmTemplate(t, helm, c.values...)
		if err != nil {
			t.Fatalf("%s: helm template: %v", c.name, err)
		}
		sc := r.objects["ScrapeConfig"]
		if sc == nil {
			t.Errorf("%s: no ScrapeConfig", c.name)
			continue
		}
		for _, want := range []struct {
			value any
			path  []any
		}{
			{c.url, []any{"spec", "httpSDConfigs", 0, "url"}},
			{"/probe", []any{"spec", "metricsPath"}},
			{true, []any{"spec", "honorLabels"}},
			{c.job, []any{"spec", "jobName"}},
			{c.interval, []any{"spec", "scrapeInterval"}},
			{c.timeout, []any{"spec", "scrapeTimeout"}},
		} {
			if got := at(sc, want.path...); got != want.value {
				t.Errorf("%s: the ScrapeConfig's %v is %v, want %v", c.name, want.path, got, want.value)
			}
		}
		// The URL is the Service's: its name and port.
		service := r.objects["Service"]
		if want := fmt.Sprintf("http://%s.", at(service, "metadata", "name")); !strings.HasPrefix(c.url, want) || !strings.HasSuffix(c.url, fmt.Sprintf(":%v/sd", at(service, "spec", "ports", 0, "port"))) {
			t.Errorf("%s: %s is not the Service %v's /sd", c.name, c.url, at(service, "metadata", "name"))
		}
		if got, want := at(r.objects["ServiceMonitor"], "spec", "jobLabel"), at(r.objects["ScrapeConfig"], "spec", "jobName"); c.name == "jobLabel" && (got != "app.kubernetes.io/name" || at(service, "metadata", "labels", got) != want) {
			t.Errorf("%s: the ServiceMonitor's jobLabel %v gives the job %v, the ScrapeConfig's is %v", c.name, got, at(service, "metadata", "labels", got), want)
		}
	}
	// A timeout longer than the interval, which Prometheus would refuse.
	tooLong := append([]string{"--set", "serviceMonitor.probeScrapeTimeout=2m"}, withMonitor...)
	if _, err := helmTemplate(t, helm, tooLong...); err == nil || !strings.Contains(err.Error(),
		"serviceMonitor.probeScrapeTimeout: 2m is longer than the /probe interval 1m (serviceMonitor.probeInterval, else 1m), which Prometheus refuses. Lower it, or leave it out to have at most the interval") {
		t.Errorf("helm template %v: %v, want a refusal of the timeout", tooLong, err)
	}
	// Scraped no less often than min_interval, /probe would probe at every
	// other scrape.
	for _, tooOften := range [][]string{
		{"--set", "serviceMonitor.probeInterval=15s"},
		{"--set", "serviceMonitor.probeInterval=1m", "--set", "config.probe.min_interval=1m"},
		{"--set", "config.probe.min_interval=2m"},
	} {
		values := append(tooOften, withMonitor...)
		if _, err := helmTemplate(t, helm, values...); err == nil || !strings.Contains(err.Error(), "is not longer than config.probe.min_interval") {
			t.Errorf("helm template %v: %v, want a refusal of the /probe interval", values, err)
		}
	}
	// One replica probes on its own: no ScrapeConfig.
	r, err := helmTemplate(t, helm, "--set", "serviceMonitor.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	if sc := r.objects["ScrapeConfig"]; sc != nil {
		t.Errorf("a ScrapeConfig with one replica: %v", sc)
	}
}

// The README's scrape_configs for Prometheus without prometheus-operator
// load in Prometheus 3 (promtool check config) and do what the chart's
// ServiceMonitor and ScrapeConfig do: each pod's /metrics, and /probe with
// its targets from the /sd of the Service the README's install makes,
// under the same job.
func TestHelmChartReadmePrometheusExample(t *testing.T) {
	helm := testkit.RequireTool(t, "helm")
	promtool := filepath.Join(filepath.Dir(testkit.RequirePrometheus3(t)), "promtool")
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n### Replicas\n")
	if !ok {
		t.Fatal(`README.md has no "### Replicas" heading`)
	}
	_, block, ok := strings.Cut(section, "\n```yaml\nscrape_configs:\n")
	if !ok {
		t.Fatal("the Replicas section of README.md has no ```yaml block of scrape_configs")
	}
	block, _, _ = strings.Cut(block, "\n```\n")
	block = "scrape_configs:\n" + block + "\n"
	file := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(file, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check config on the README's scrape_configs: %v\n%s", err, out)
	}

	var config struct {
		ScrapeConfigs []struct {
			JobName        string                 `yaml:"job_name"`
			MetricsPath    string                 `yaml:"metrics_path"`
			HonorLabels    bool                   `yaml:"honor_labels"`
			HTTPSDConfigs  []struct{ URL string } `yaml:"http_sd_configs"`
			RelabelConfigs []struct {
				TargetLabel string `yaml:"target_label"`
				Replacement string
			} `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(block), &config); err != nil || len(config.ScrapeConfigs) != 2 {
		t.Fatalf("the README's scrape_configs: %v, %d jobs, want 2", err, len(config.ScrapeConfigs))
	}
	metrics, probe := config.ScrapeConfigs[0], config.ScrapeConfigs[1]
	job := probe.JobName
	for _, r := range probe.RelabelConfigs {
		if r.TargetLabel == "job" {
			job = r.Replacement
		}
	}
	if job != metrics.JobName {
		t.Errorf("the README's /probe job has the job label %q, its /metrics job %q: one job, two scrape configs", job, metrics.JobName)
	}
	// The README installs the release ratelimit; the scrape configs name
	// the namespace monitoring.
	out, err := exec.Command(helm, "template", "ratelimit", chartDir, "--namespace", "monitoring", "-f", proxyValues, "--set", "serviceMonitor.enabled=true").Output()
	if err != nil {
		t.Fatal(err)
	}
	var url string
	for dec := yaml.NewDecoder(bytes.NewReader(out)); ; {
		var doc map[string]any
		if dec.Decode(&doc) != nil {
			break
		}
		if doc["kind"] == "ScrapeConfig" {
			url, _ = at(doc, "spec", "httpSDConfigs", 0, "url").(string)
		}
	}
	if probe.MetricsPath != "/probe" || !probe.HonorLabels || len(probe.HTTPSDConfigs) != 1 || probe.HTTPSDConfigs[0].URL != url {
		t.Errorf("the README's /probe job: metrics_path %q, honor_labels %v, http_sd_configs %v; want /probe, true, the chart's %s",
			probe.MetricsPath, probe.HonorLabels, probe.HTTPSDConfigs, url)
	}
}
