package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// An admin source takes its defaults: the interval, the budget's currency,
// and no base_url, which leaves the documented host to the admin client.
func TestAdminDefaults(t *testing.T) {
	t.Setenv("RLE_TEST_ADMIN", "sk-admin-test-canary-defaults")
	cfg, err := Parse([]byte(`admin:
  - name: openai-org
    provider: openai
    admin_key: ${RLE_TEST_ADMIN}
    budgets:
      - {monthly: 500}
      - {project: proj_abc, monthly: 12.5, currency: EUR}
  - name: claude.org_1
    provider: anthropic
    admin_key_file: key.txt
    base_url: http://127.0.0.1:9/
    interval: 30m
keys:
  - {name: prod, provider: openai, api_key: sk-test-1, admin: openai-org, project: proj_abc}
  - {name: claude, provider: anthropic, api_key: sk-test-2, admin: claude.org_1, workspace: wrkspc_01}
  - {name: claude-org, provider: anthropic, api_key: sk-test-3, admin: claude.org_1}
`), "testdata/admin.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Admin{
		{Name: "openai-org", Provider: "openai", AdminKey: "sk-admin-test-canary-defaults", Interval: Duration(time.Hour),
			Budgets: []Budget{{Monthly: 500, Currency: "USD"}, {Project: "proj_abc", Monthly: 12.5, Currency: "EUR"}}},
		{Name: "claude.org_1", Provider: "anthropic", AdminKeyFile: "testdata/key.txt", BaseURL: "http://127.0.0.1:9", Interval: Duration(30 * time.Minute)},
	}
	if !reflect.DeepEqual(cfg.Admin, want) {
		t.Errorf("admin =\n%#v\nwant\n%#v", cfg.Admin, want)
	}
	for i, scope := range []string{"proj_abc", "wrkspc_01", ""} {
		if got := cfg.Keys[i].Scope(); got != scope {
			t.Errorf("key %s: scope %q, want %q", cfg.Keys[i].Name, got, scope)
		}
	}
	if a := cfg.AdminByName("claude.org_1"); a != &cfg.Admin[1] {
		t.Errorf("AdminByName = %p, want %p", a, &cfg.Admin[1])
	}
	if cfg.AdminByName("nope") != nil {
		t.Error("AdminByName found a source not configured")
	}
	if secret, err := cfg.Admin[1].Secret(); err != nil || secret.Reveal() != "sk-from-file-0001" {
		t.Errorf("admin_key_file secret = %q, %v", secret.Reveal(), err)
	}
	if out := fmt.Sprintf("%v %+v %#v", cfg, cfg.Admin[0], cfg.Admin); strings.Contains(out, "canary-defaults") {
		t.Errorf("the admin key prints: %s", out)
	}
}

// admin_key_file is read at each use, as api_key_file is.
func TestAdminKeyFileIsReadOnEveryCall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin")
	a := Admin{AdminKeyFile: path}
	for _, content := range []string{"sk-admin-one\n", "sk-admin-two\r\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := a.Secret(); err != nil || got.Reveal() != strings.TrimRight(content, "\r\n") {
			t.Errorf("after writing %q: %q, %v", content, got.Reveal(), err)
		}
	}
	if err := os.WriteFile(path, []byte("sk-admin test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Secret(); err == nil || err.Error() != "admin_key_file "+path+": the key contains whitespace or control characters" {
		t.Errorf("a key with a space: %v", err)
	}
}

// Every mistake in an admin source or in a key's admin, project and
// workspace is reported at its line and field.
func TestAdminErrors(t *testing.T) {
	t.Setenv("RLE_TEST_EMPTY", "")
	unsetenv(t, "RLE_TEST_TYPO")
	const (
		okKey    = "  - {name: k, provider: openai, api_key: sk-test-k, admin: a, project: proj_abc}\n"
		okAdmin  = "  - {name: a, provider: openai, admin_key: sk-admin-test-a}\n"
		anthKey  = "  - {name: c, provider: anthropic, api_key: sk-test-c, admin: a}\n"
		anthAdm  = "  - {name: a, provider: anthropic, admin_key: sk-admin-test-a}\n"
		openaiAt = "f.yml:2: admin[0]"
	)
	for _, tc := range []struct{ admin, keys, want string }{
		{"  - {provider: openai, admin_key: sk-admin-x}\n", "  - {name: k, provider: openai, api_key: sk-test-k}\n",
			openaiAt + ": name is required"},
		{"  - {name: 'a b', provider: openai, admin_key: sk-admin-x, budgets: [{monthly: 1}]}\n", "  - {name: k, api_key: sk-test-k}\n",
			openaiAt + `.name: "a b" may only contain letters, digits and _ . -`},
		{okAdmin + "  - {name: a, provider: openai, admin_key: sk-admin-y}\n", okKey,
			`f.yml:3: admin[1].name: duplicate admin name "a" (first used at line 2)`},
		{"  - {name: a, admin_key: sk-admin-x}\n", "  - {name: k, provider: openai, api_key: sk-test-k, admin: a, project: p}\n",
			"f.yml:4: keys[0].admin: admin source \"a\" reads 's admin API, and this key is provider openai: name an admin source of provider openai\n" +
				openaiAt + ": provider is required: openai or anthropic"},
		{"  - {name: a, provider: gemini, admin_key: sk-admin-x, budgets: [{monthly: 1}]}\n", "  - {name: k, api_key: sk-test-k}\n",
			openaiAt + `.provider: unknown admin provider "gemini": the admin APIs read are openai and anthropic`},
		{okAdmin, "  - {name: c, provider: anthropic, api_key: sk-test-c, admin: a}\n",
			`f.yml:4: keys[0].admin: admin source "a" reads openai's admin API, and this key is provider anthropic: name an admin source of provider anthropic`},
		{"", "  - {name: k, provider: openai, api_key: sk-test-k, admin: a, project: p}\n",
			`f.yml:2: keys[0].admin: unknown admin source "a": the config has no admin section`},
		{okAdmin, "  - {name: k, provider: openai, api_key: sk-test-k, admin: a, project: p, workspace: w}\n",
			"f.yml:4: keys[0].workspace: is an Anthropic workspace: an openai key names its project"},
		{okAdmin, "  - {name: k, provider: openai, api_key: sk-test-k, admin: a, project: ../x}\n",
			"f.yml:4: keys[0].project: is not a project id: letters, digits, _ and - only"},
		// A key pasted as an id has only letters, digits, _ and -: refused
		// all the same, and not quoted.
		{okAdmin, "  - {name: k, provider: openai, api_key: sk-test-k, admin: a, project: sk-admin-canary-pasted-1}\n",
			"f.yml:4: keys[0].project: is a key (sk-...), not a project id (proj_...)"},
		{anthAdm, "  - {name: c, provider: anthropic, api_key: sk-test-c, admin: a, workspace: sk-ant-admin01-canary-pasted-2}\n",
			"f.yml:4: keys[0].workspace: is a key (sk-...), not a workspace id (wrkspc_...)"},
		{"  - {name: a, provider: openai, admin_key: sk-admin-x, budgets: [{project: sk-proj-canary-pasted-3, monthly: 1}]}\n", okKey,
			openaiAt + ".budgets[0].project: is a key (sk-...), not a project or workspace id"},
		{anthAdm, "  - {name: c, provider: anthropic, api_key: sk-test-c, admin: a, project: p}\n",
			"f.yml:4: keys[0].project: is an OpenAI project: an anthropic key names its workspace, or nothing for the organization's limits"},
		{anthAdm, "  - {name: c, provider: anthropic, api_key: sk-test-c, admin: a, workspace: 'w/1'}\n",
			"f.yml:4: keys[0].workspace: is not a workspace id: letters, digits, _ and - only"},
		{"", "  - {name: k, provider: openai, api_key: sk-test-k, project: p}\n",
			"f.yml:2: keys[0].project: is read by an admin source only: name one with admin, or leave project out"},
		{"", "  - {name: c, provider: anthropic, api_key: sk-test-c, workspace: w}\n",
			"f.yml:2: keys[0].workspace: is read by an admin source only: name one with admin, or leave workspace out"},
		{"  - {name: a, provider: openai}\n", okKey, openaiAt + ": set exactly one of admin_key and admin_key_file"},
		{"  - {name: a, provider: openai, admin_key: '${RLE_TEST_TYPO}'}\n", okKey, openaiAt + ".admin_key: environment variable RLE_TEST_TYPO is not set"},
		{"  - {name: a, provider: openai, admin_key: '${RLE_TEST_EMPTY}'}\n", okKey,
			openaiAt + ".admin_key: the key is empty after expanding ${RLE_TEST_EMPTY} (is the variable set?)"},
		{"  - {name: a, provider: openai, admin_key_file: no-such-file}\n", okKey,
			openaiAt + ".admin_key_file: reading admin_key_file: open no-such-file: no such file or directory"},
		{"  - {name: a, provider: openai, admin_key: sk-admin-x, base_url: api.openai.com}\n", okKey,
			openaiAt + ".base_url: is not an absolute http(s) URL: write http:// or https:// and a host, such as https://api.example.com/v1"},
		{"  - {name: a, provider: anthropic, admin_key: sk-admin-x, base_url: 'https://api.anthropic.com/v1/'}\n", anthKey,
			openaiAt + `.base_url: "https://api.anthropic.com/v1" ends in /v1, which the admin client adds itself (it asks for https://api.anthropic.com/v1/v1/organizations/rate_limits): leave it out`},
		{"  - {name: a, provider: openai, admin_key: sk-admin-x, base_url: 'https://gw.example/v1/organization/projects'}\n", okKey,
			openaiAt + `.base_url: "https://gw.example/v1/organization/projects" names an admin API's path, which the admin client adds itself: give the API's root, such as https://gw.example/v1`},
		{"  - {name: a, provider: openai, admin_key: sk-admin-x, interval: 25h}\n", okKey, openaiAt + ".interval: must be at most 24h0m0s, got 25h0m0s"},
		{"  - {name: a, provider: openai, admin_key: sk-admin-x, http_client: {follow_redirects: true}}\n", okKey,
			openaiAt + ".http_client.follow_redirects: an admin key never follows a redirect: leave follow_redirects out"},
		{"  - {name: a, provider: openai, admin_key: sk-admin-x, budgets: [{project: 'p q', monthly: .inf}, {monthly: .nan, currency: EURO}]}\n", okKey,
			openaiAt + ".budgets[0].project: is not a project or workspace id: letters, digits, _ and - only\n" +
				openaiAt + ".budgets[0].monthly: must be a number greater than zero, got +Inf\n" +
				openaiAt + ".budgets[1].monthly: must be a number greater than zero, got NaN\n" +
				openaiAt + `.budgets[1].currency: "EURO" is not an ISO 4217 currency code: three upper-case letters, such as USD`},
		{"  - {name: a, provider: openai, admin_key: sk-admin-x, budgets: [{monthly: 1}, {monthly: 2, currency: USD}]}\n", okKey,
			openaiAt + ".budgets[1]: a second budget for the whole organization in USD: give each project and currency one budget"},
	} {
		doc := "keys:\n" + tc.keys
		if tc.admin != "" {
			doc = "admin:\n" + tc.admin + doc
		}
		_, err := Parse([]byte(doc), "f.yml")
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s\n got  %v\n want %s", doc, err, tc.want)
		}
	}
}

// An admin key is compared with every API key and every other admin key,
// whichever way each is written, and never shown.
func TestAdminKeySameSecret(t *testing.T) {
	const canary = "sk-admin-test-canary-same-4e1b"
	file := filepath.Join(t.TempDir(), "admin")
	if err := os.WriteFile(file, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RLE_TEST_ADMIN_SAME", canary)
	const key = "  - {name: k, provider: openai, api_key: %s, admin: a, project: p}\n"
	for doc, want := range map[string]string{
		"keys:\n" + fmt.Sprintf(key, canary) + "admin:\n  - {name: a, provider: openai, admin_key: '${RLE_TEST_ADMIN_SAME}'}\n": `f.yml:4: admin[0].admin_key: admin "a" has the same secret as key "k" (line 2): ` +
			"an admin key must be a credential of its own, as an API key is sent with every probe",
		"keys:\n" + fmt.Sprintf(key, "'${RLE_TEST_ADMIN_SAME}'") + "admin:\n  - {name: a, provider: openai, admin_key_file: " + file + "}\n": `f.yml:4: admin[0].admin_key_file: admin "a" has the same secret as key "k" (line 2): ` +
			"an admin key must be a credential of its own, as an API key is sent with every probe",
		"keys:\n" + fmt.Sprintf(key, "sk-test-k") + "admin:\n  - {name: a, provider: openai, admin_key: " + canary + "}\n  - {name: b, provider: openai, admin_key_file: " + file + ", budgets: [{monthly: 1}]}\n": `f.yml:5: admin[1].admin_key_file: admin "b" has the same secret as admin "a" (line 4): ` +
			"a secret is one credential, so configure it once",
	} {
		_, err := Parse([]byte(doc), "f.yml")
		if err == nil || err.Error() != want {
			t.Errorf("%s\n got  %v\n want %s", doc, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "canary-same") {
			t.Errorf("the error shows the admin key: %v", err)
		}
	}
}

// An admin key in the wrong shape or the wrong field never reaches an error.
func TestAdminKeyStaysOutOfErrors(t *testing.T) {
	const canary = "sk-admin-test-canary-shape-77d0"
	const key = "keys:\n  - {name: k, provider: openai, api_key: sk-test-k, admin: a, project: p}\n"
	for _, admin := range []string{
		"{name: a, provider: openai, admin_key: {" + canary + ": 1}}",
		"{name: a, provider: openai, admin_key: [" + canary + "]}",
		"{name: a, provider: openai, admin_key: '" + canary + " x'}",
		"{name: a, provider: openai, admin_key: x, base_url: " + canary + "}",
		"{name: a, provider: openai, admin_key: x, base_url: 'https://u:" + canary + "@api.openai.com/v1'}",
		"{name: a, provider: openai, admin_key: x, base_url: 'https://api.openai.com/v1?key=" + canary + "'}",
		"{name: a, provider: openai, admin_key: '" + canary + "${RLE_TEST_NOT_SET_EVER}'}",
		"{name: a, provider: openai, admin_key: *" + canary + "}",
		"{name: a, provider: openai, admin_key: x, budgets: [{project: '" + canary + "/x', monthly: 1}]}",
	} {
		_, err := Parse([]byte(key+"admin:\n  - "+admin+"\n"), "f.yml")
		if err == nil || strings.Contains(err.Error(), "canary-shape") {
			t.Errorf("%s: got %v", admin, err)
		}
	}
	for _, k := range []string{
		"{name: k, provider: openai, api_key: sk-test-k, admin: a, project: '" + canary + "/x'}",
		"{name: k, provider: anthropic, api_key: sk-test-k, admin: b, workspace: '" + canary + "/x'}",
		"{name: k, provider: openai, api_key: sk-test-k, project: '" + canary + "'}",
	} {
		_, err := Parse([]byte("admin:\n  - {name: a, provider: openai, admin_key: x}\n  - {name: b, provider: anthropic, admin_key: y}\nkeys:\n  - "+k+"\n"), "f.yml")
		if err == nil || strings.Contains(err.Error(), "canary-shape") {
			t.Errorf("%s: got %v", k, err)
		}
	}
}
