package config

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// The providers whose admin APIs an admin source reads.
const (
	AdminOpenAI    = "openai"
	AdminAnthropic = "anthropic"
)

// Bounds and default of admin[].interval. The admin APIs are read on their
// own slow clock: the limits they list change when an operator changes
// them, not with traffic.
const (
	DefaultAdminInterval = Duration(time.Hour)
	MinAdminInterval     = Duration(5 * time.Minute)
)

// DefaultCurrency is a budget's currency when it names none.
const DefaultCurrency = "USD"

// Admin is an admin API source: a provider's admin key, with which the
// exporter reads the rate limits configured for the keys' projects or
// workspaces, and month-to-date costs, without spending any quota.
type Admin struct {
	Name     string `yaml:"name"`
	Provider string `yaml:"provider"`
	// AdminKey and AdminKeyFile give the admin key, as api_key and
	// api_key_file give an API key: exactly one of them.
	AdminKey     Secret `yaml:"admin_key"`
	AdminKeyFile string `yaml:"admin_key_file"`
	// BaseURL is where the admin key is sent; "" for the provider's
	// documented host (the admin package's default), so that the key goes
	// elsewhere only when the operator writes another.
	BaseURL    string     `yaml:"base_url"`
	Interval   Duration   `yaml:"interval"`
	HTTPClient HTTPClient `yaml:"http_client"`
	Budgets    []Budget   `yaml:"budgets"`
}

// Budget is a monthly budget: the spend of a calendar month (UTC) is
// compared with it.
type Budget struct {
	// Project is the OpenAI project id or the Anthropic workspace id; ""
	// for the whole organization.
	Project  string  `yaml:"project"`
	Monthly  float64 `yaml:"monthly"`
	Currency string  `yaml:"currency"`
}

// UnmarshalYAML applies the admin defaults.
func (a *Admin) UnmarshalYAML(unmarshal func(any) error) error {
	*a = Admin{Interval: DefaultAdminInterval}
	type plain Admin
	return unmarshal((*plain)(a))
}

// UnmarshalYAML applies the budget defaults.
func (b *Budget) UnmarshalYAML(unmarshal func(any) error) error {
	*b = Budget{Currency: DefaultCurrency}
	type plain Budget
	return unmarshal((*plain)(b))
}

// Secret returns the admin key: admin_key as configured, or the content of
// admin_key_file read now, so that a rotated file needs no restart.
func (a *Admin) Secret() (Secret, error) {
	if a.AdminKeyFile == "" {
		return a.AdminKey, nil
	}
	return readSecretFile("admin_key_file", a.AdminKeyFile)
}

// Scope returns the project (openai) or workspace (anthropic) whose
// limits apply to k, as its admin source reads them; "" for an Anthropic
// organization's.
func (k *Key) Scope() string {
	if k.Provider == AdminAnthropic {
		return k.Workspace
	}
	return k.Project
}

// AdminByName returns the admin source named name, or nil.
func (c *Config) AdminByName(name string) *Admin {
	for i := range c.Admin {
		if c.Admin[i].Name == name {
			return &c.Admin[i]
		}
	}
	return nil
}

var (
	adminNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
	// scopePattern is an id that goes into an admin API's path as one
	// segment: proj_abc, wrkspc_01...; no "/", "." or escapes.
	scopePattern    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// isKey reports whether an id is an OpenAI or Anthropic key (sk-proj-...,
// sk-admin-..., sk-ant-...), which has an id's characters: pasted as a
// project or workspace, it would go into logs and check's output.
func isKey(id string) bool { return strings.HasPrefix(id, "sk-") }

// adminFacts is what resolveAdmins learned of an admin source that its
// validators need.
type adminFacts struct {
	keyWritten  bool     // admin_key was written; it may expand to ""
	refs, unset []string // admin_key's ${VAR} references, and the variables among them not set
	baseURL     string   // untrimmed, as the messages quote it
}

// resolveAdmins expands admin_key's variables, makes file paths relative to
// dir, and trims base_url, as resolve does for keys.
func (c *Config) resolveAdmins(dir string) []adminFacts {
	facts := make([]adminFacts, len(c.Admin))
	for i := range c.Admin {
		a, f := &c.Admin[i], &facts[i]
		a.AdminKeyFile = commoncfg.JoinDir(dir, a.AdminKeyFile)
		a.HTTPClient.TLSConfig.SetDirectory(dir)
		if f.keyWritten = a.AdminKey != ""; f.keyWritten {
			var expanded string
			expanded, f.refs, f.unset = expandEnv(a.AdminKey.Reveal())
			a.AdminKey = Secret(expanded)
		}
		f.baseURL = a.BaseURL
		a.BaseURL = strings.TrimRight(a.BaseURL, "/")
	}
	return facts
}

// admins checks the admin sections, after the keys, so that an admin key
// that is an API key is reported at the admin key.
func (v *validator) admins(c *Config, facts []adminFacts) {
	names := map[string]int{}
	for i := range c.Admin {
		a, f, at := &c.Admin[i], &facts[i], fmt.Sprintf("admin[%d]", i)
		switch {
		case a.Name == "":
			v.fail(at, "name is required")
		case !adminNamePattern.MatchString(a.Name):
			v.fail(at+".name", "%q may only contain letters, digits and _ . -", a.Name)
		case names[a.Name] != 0:
			v.fail(at+".name", "duplicate admin name %q (first used at line %d)", a.Name, names[a.Name])
		default:
			names[a.Name] = v.doc.line(at + ".name")
		}
		switch a.Provider {
		case AdminOpenAI, AdminAnthropic:
		case "":
			v.fail(at, "provider is required: %s or %s", AdminOpenAI, AdminAnthropic)
		default:
			v.fail(at+".provider", "unknown admin provider %q: the admin APIs read are %s and %s", a.Provider, AdminOpenAI, AdminAnthropic)
		}
		v.adminKey(at, a, f)
		v.adminBaseURL(at, a, f)
		switch {
		case a.Interval < MinAdminInterval:
			v.fail(at+".interval", "must be at least %s, got %s: the limits an admin API lists change only when someone changes them", MinAdminInterval, a.Interval)
		case a.Interval > MaxInterval:
			v.fail(at+".interval", "must be at most %s, got %s", MaxInterval, a.Interval)
		}
		a.HTTPClient.validate(at+".http_client", v.fail)
		if a.HTTPClient.FollowRedirects {
			v.fail(at+".http_client.follow_redirects", "an admin key never follows a redirect: leave follow_redirects out")
		}
		v.budgets(at, a)
		if a.Name != "" && len(a.Budgets) == 0 && !slices.ContainsFunc(c.Keys, func(k Key) bool { return k.Admin == a.Name }) {
			v.fail(at, "admin source %q reads nothing: no key names it (keys[].admin) and it has no budgets", a.Name)
		}
	}
}

func (v *validator) adminKey(at string, a *Admin, f *adminFacts) {
	switch {
	case f.keyWritten && a.AdminKeyFile != "":
		v.fail(at, "set exactly one of admin_key and admin_key_file, not both")
	case !f.keyWritten && a.AdminKeyFile == "":
		v.fail(at, "set exactly one of admin_key and admin_key_file")
	default:
		v.secretOrFile(at, "admin_key", "admin", a.Name, a.AdminKey, a.AdminKeyFile, f.refs, f.unset)
	}
}

// adminBaseURL checks an explicit base_url: an http(s) URL, and not one
// that ends in the path the admin client adds itself.
func (v *validator) adminBaseURL(at string, a *Admin, f *adminFacts) {
	if f.baseURL == "" {
		return
	}
	checkURL(v.fail, at+".base_url", f.baseURL)
	u, err := CheckHTTPURL(a.BaseURL)
	if err != nil {
		return
	}
	switch path := strings.TrimRight(u.Path, "/"); {
	case a.Provider == AdminAnthropic && strings.HasSuffix(path, "/v1"):
		v.fail(at+".base_url", "%q ends in /v1, which the admin client adds itself (it asks for %s/v1/organizations/rate_limits): leave it out",
			a.BaseURL, a.BaseURL)
	case strings.Contains(path, "/organization"):
		v.fail(at+".base_url", "%q names an admin API's path, which the admin client adds itself: give the API's root, such as %s",
			a.BaseURL, adminRootExample(a.Provider, u))
	}
}

// adminRootExample is the root of the API at u's host, as base_url takes it.
func adminRootExample(provider string, u *url.URL) string {
	root := u.Scheme + "://" + u.Host
	if provider == AdminOpenAI {
		return root + "/v1"
	}
	return root
}

func (v *validator) budgets(at string, a *Admin) {
	seen := map[[2]string]bool{}
	for j, b := range a.Budgets {
		path := fmt.Sprintf("%s.budgets[%d]", at, j)
		switch {
		case isKey(b.Project):
			v.fail(path+".project", "is a key (sk-...), not a project or workspace id")
		case b.Project != "" && !scopePattern.MatchString(b.Project):
			// Not quoted: a key pasted in the wrong field must not reach a log.
			v.fail(path+".project", "is not a project or workspace id: letters, digits, _ and - only")
		case seen[[2]string{b.Project, b.Currency}]:
			v.fail(path, "a second budget for %s in %s: give each project and currency one budget", projectName(b.Project), b.Currency)
		}
		seen[[2]string{b.Project, b.Currency}] = true
		if !(b.Monthly > 0) || math.IsInf(b.Monthly, 0) {
			v.fail(path+".monthly", "must be a number greater than zero, got %g", b.Monthly)
		}
		if !currencyPattern.MatchString(b.Currency) {
			v.fail(path+".currency", "%q is not an ISO 4217 currency code: three upper-case letters, such as USD", b.Currency)
		}
	}
}

// projectName names a budget's project in messages.
func projectName(project string) string {
	if project == "" {
		return "the whole organization"
	}
	return "project " + project
}

// keyAdmin checks a key's admin, project and workspace: an admin source of
// the key's provider, the project an openai key's limits come from, and
// neither project nor workspace without an admin source.
func (v *validator) keyAdmin(at string, k *Key, c *Config) {
	if k.Admin == "" {
		switch {
		case k.Project != "":
			v.fail(at+".project", "is read by an admin source only: name one with admin, or leave project out")
		case k.Workspace != "":
			v.fail(at+".workspace", "is read by an admin source only: name one with admin, or leave workspace out")
		}
		return
	}
	a := c.AdminByName(k.Admin)
	switch {
	case a == nil && len(c.Admin) == 0:
		v.fail(at+".admin", "unknown admin source %q: the config has no admin section", k.Admin)
		return
	case a == nil:
		names := make([]string, len(c.Admin))
		for i := range c.Admin {
			names[i] = c.Admin[i].Name
		}
		v.fail(at+".admin", "unknown admin source %q: the admin section names %s", k.Admin, strings.Join(names, ", "))
		return
	case a.Provider != k.Provider:
		v.fail(at+".admin", "admin source %q reads %s's admin API, and this key is provider %s: name an admin source of provider %s",
			k.Admin, a.Provider, k.Provider, k.Provider)
		return
	}
	switch k.Provider {
	case AdminOpenAI:
		switch {
		case k.Workspace != "":
			v.fail(at+".workspace", "is an Anthropic workspace: an openai key names its project")
		case k.Project == "":
			v.fail(at, "project is required with admin for an openai key: the project id (proj_...) whose rate limits apply to the key")
		case isKey(k.Project):
			v.fail(at+".project", "is a key (sk-...), not a project id (proj_...)")
		case !scopePattern.MatchString(k.Project):
			v.fail(at+".project", "is not a project id: letters, digits, _ and - only")
		}
	case AdminAnthropic:
		switch {
		case k.Project != "":
			v.fail(at+".project", "is an OpenAI project: an anthropic key names its workspace, or nothing for the organization's limits")
		case isKey(k.Workspace):
			v.fail(at+".workspace", "is a key (sk-...), not a workspace id (wrkspc_...)")
		case k.Workspace != "" && !scopePattern.MatchString(k.Workspace):
			v.fail(at+".workspace", "is not a workspace id: letters, digits, _ and - only")
		}
	}
}
