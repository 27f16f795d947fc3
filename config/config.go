// Package config loads, validates and reloads the exporter's configuration.
package config

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
)

// Probe modes.
const (
	ModeInterval = "interval" // probe on a timer, serve the last results
	ModeScrape   = "scrape"   // probe during each scrape
)

// DefaultProbe holds the probe settings a config leaves out.
var (
	DefaultProbe = Probe{
		Mode:          ModeInterval,
		Interval:      Duration(time.Minute),
		Timeout:       Duration(10 * time.Second),
		MinInterval:   Duration(15 * time.Second),
		Concurrency:   16,
		MaxQuotaShare: 0.05,
	}
)

// Upper bounds of the probe durations. Longer ones make no sense for a
// rate limit, whose longest window is a day, and keep the arithmetic on
// them far from overflow.
const (
	MaxInterval = Duration(24 * time.Hour)  // probe.interval and probe.min_interval
	MaxTimeout  = Duration(5 * time.Minute) // probe.timeout
)

// The exporter's own label names, which the metrics use.
const (
	LabelKey      = "key"
	LabelProvider = "provider"
	LabelModel    = "model"
	LabelResource = "resource"
	LabelWindow   = "window"
	LabelResult   = "result"
	LabelReason   = "reason"
	LabelSource   = "source"
	LabelCause    = "cause"
	LabelStatus   = "status"
	LabelCurrency = "currency"
)

// ReservedLabels are the exporter's own label names; a key's labels may not use them.
var ReservedLabels = []string{LabelKey, LabelProvider, LabelModel, LabelResource, LabelWindow, LabelResult, LabelReason, LabelSource, LabelCause, LabelStatus, LabelCurrency}

// Config is a loaded and validated configuration. Only Load and Parse make one.
type Config struct {
	Probe Probe  `yaml:"probe"`
	Keys  []Key  `yaml:"keys"`
	Proxy *Proxy `yaml:"proxy"` // nil: no proxy
	// Admin are the admin API sources; see Admin.
	Admin []Admin `yaml:"admin"`
}

// Period is the shortest time between two probes of one of k's models that
// the config asks for in the current mode: the key's probe_interval, else
// probe.interval (probe.min_interval in scrape mode), but never below its
// provider's minimum.
func (p Probe) Period(k *Key) time.Duration {
	if k.ProbeInterval != nil {
		return time.Duration(*k.ProbeInterval)
	}
	period := time.Duration(p.Interval)
	if p.Mode == ModeScrape {
		period = time.Duration(p.MinInterval)
	}
	if prov, ok := provider.Lookup(k.Provider); ok {
		period = max(period, prov.MinInterval)
	}
	return period
}

// Probe says when and how the exporter probes.
type Probe struct {
	Mode        string   `yaml:"mode"`
	Interval    Duration `yaml:"interval"`
	Timeout     Duration `yaml:"timeout"`
	MinInterval Duration `yaml:"min_interval"`
	Concurrency int      `yaml:"concurrency"`
	// MaxQuotaShare is the largest share of any window's limit that the
	// probes of one key and model may spend; 1 turns the guard off.
	MaxQuotaShare float64 `yaml:"max_quota_share"`
}

// Key is one API key and the models to probe with it.
type Key struct {
	Name       string `yaml:"name"`
	Provider   string `yaml:"provider"`
	APIKey     Secret `yaml:"api_key"`
	APIKeyFile string `yaml:"api_key_file"`
	// BearerTokenFile holds a bearer token (a Microsoft Entra ID token for
	// azure_openai), sent instead of an API key and read at every use.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// APIVersion is the api-version of the provider's API that the probe
	// asks for (azure_openai); the provider's own when left out.
	APIVersion string            `yaml:"api_version"`
	BaseURL    string            `yaml:"base_url"`
	Models     []string          `yaml:"models"`
	Labels     map[string]string `yaml:"labels"`
	HTTPClient HTTPClient        `yaml:"http_client"`
	// ProbeInterval, when set, is the time between probes of this key's
	// models: probe.interval in interval mode, probe.min_interval in
	// scrape mode, and the provider's own minimum, for this key alone.
	ProbeInterval *Duration `yaml:"probe_interval"`
	// Admin names the admin source (Config.Admin) that reads this key's
	// configured limits: those of its Project (openai) or Workspace
	// (anthropic; "" for the organization's).
	Admin     string `yaml:"admin"`
	Project   string `yaml:"project"`
	Workspace string `yaml:"workspace"`
	// Limits are the key's declared limits, which the proxy counts its
	// traffic against.
	Limits []Limit `yaml:"limits"`
}

// Target is one key and one model: what a probe asks about.
type Target struct {
	Key   *Key
	Model string
}

// Targets lists every key and model, in config order.
func (c *Config) Targets() []Target {
	n := 0
	for i := range c.Keys {
		n += len(c.Keys[i].Models)
	}
	targets := make([]Target, 0, n)
	for i := range c.Keys {
		for _, m := range c.Keys[i].Models {
			targets = append(targets, Target{Key: &c.Keys[i], Model: m})
		}
	}
	return targets
}

// LabelNames returns the key's extra label names, sorted.
func (k *Key) LabelNames() []string {
	names := make([]string, 0, len(k.Labels))
	for n := range k.Labels {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Secret returns the key's secret: the API key as configured, or the
// content of its api_key_file or bearer_token_file read now, so that a
// rotated file needs no restart.
func (k *Key) Secret() (Secret, error) {
	field, path := k.SecretFile()
	if path == "" {
		return k.APIKey, nil
	}
	return readSecretFile(field, path)
}

// SecretFile returns the file the key's secret is read from at each use,
// and the field that names it: api_key_file or bearer_token_file. The path
// is "" when the secret is the config's api_key.
func (k *Key) SecretFile() (field, path string) {
	if k.BearerTokenFile != "" {
		return "bearer_token_file", k.BearerTokenFile
	}
	return "api_key_file", k.APIKeyFile
}

// ProbeOptions returns what the key says about its probe besides the base
// URL and the model.
func (k *Key) ProbeOptions() provider.Options {
	return provider.Options{APIVersion: k.APIVersion, BearerToken: k.BearerTokenFile != ""}
}

func readSecretFile(field, path string) (Secret, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The *PathError names the file and the cause, never the content.
		return "", fmt.Errorf("reading %s: %w", field, err)
	}
	s := Secret(strings.TrimRight(string(data), "\r\n"))
	if err := checkSecret(s, secretNoun(field)); err != nil {
		return "", fmt.Errorf("%s %s: %w", field, path, err)
	}
	return s, nil
}

// secretNoun is what the messages call the secret of field.
func secretNoun(field string) string {
	if field == "bearer_token_file" {
		return "token"
	}
	return "key"
}

func checkSecret(s Secret, noun string) error {
	if s == "" {
		return fmt.Errorf("the %s is empty", noun)
	}
	for _, r := range s.Reveal() {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("the %s contains whitespace or control characters", noun)
		}
	}
	return nil
}

// UnmarshalYAML applies the probe defaults.
func (p *Probe) UnmarshalYAML(unmarshal func(any) error) error {
	*p = DefaultProbe
	type plain Probe
	return unmarshal((*plain)(p))
}

// UnmarshalYAML applies the key defaults that do not depend on other fields.
func (k *Key) UnmarshalYAML(unmarshal func(any) error) error {
	*k = Key{Provider: provider.Default}
	type plain Key
	return unmarshal((*plain)(k))
}

// Duration is a time.Duration written as "30s", "1m", "1h30m" or "1d".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind == yaml.ScalarNode {
		if v, err := model.ParseDuration(node.Value); err == nil {
			*d = Duration(v)
			return nil
		}
		if v, err := time.ParseDuration(node.Value); err == nil {
			*d = Duration(v)
			return nil
		}
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf(
		"line %d: invalid duration %q: use a number and a unit, such as 500ms, 30s, 1m or 1h", node.Line, node.Value)}}
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// String implements fmt.Stringer.
func (d Duration) String() string { return time.Duration(d).String() }

//go:embed default.yml
var defaultConfig []byte

// DefaultKeyEnv is the environment variable the embedded default config reads.
const DefaultKeyEnv = "CEREBRAS_API_KEY"

// Source says where the config comes from.
type Source struct {
	Path string
	// Explicit is true when the user named Path; otherwise a missing file
	// falls back to the embedded default, which reads DefaultKeyEnv.
	Explicit bool
}

// Load reads and validates the config from the source.
func (s Source) Load() (*Config, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) && !s.Explicit {
		if os.Getenv(DefaultKeyEnv) == "" {
			return nil, fmt.Errorf("no configuration: %s does not exist and %s is not set; "+
				"either write a config file (and pass --config.file if it lives elsewhere) "+
				"or set %s to use the built-in default (model %s)",
				s.Path, DefaultKeyEnv, DefaultKeyEnv, defaultProvider().Model)
		}
		return Parse(defaultConfig, "<built-in default>")
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, s.Path)
}

// Parse decodes and validates a config. name labels error messages.
func Parse(data []byte, name string) (*Config, error) {
	root, err := singleDocument(data, name)
	if err != nil {
		return nil, err
	}
	doc := newDocument(name, root)

	cfg := &Config{Probe: DefaultProbe}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err, doc)
	}
	facts := cfg.resolve(filepath.Dir(name))
	adminFacts := cfg.resolveAdmins(filepath.Dir(name))
	if err := cfg.validate(doc, facts, adminFacts); err != nil {
		return nil, err
	}
	return cfg, nil
}

var (
	keyNamePattern   = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
	labelNamePattern = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	envRefPattern    = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// keyFacts is what resolve learned about a key that its validators need.
type keyFacts struct {
	prov          provider.Provider
	known         bool
	baseURL       string   // untrimmed, as the messages quote it
	apiKeyWritten bool     // api_key was written; it may expand to ""
	modelsWritten bool     // false: models is the provider's default, or nil
	refs, unset   []string // api_key's ${VAR} references, and the variables among them not set
}

// resolve applies the defaults that depend on other fields, expands
// variables, trims, and makes file paths relative to dir, the config file's
// folder, as Prometheus does, so that the validators check what will be used.
func (c *Config) resolve(dir string) []keyFacts {
	if c.Proxy != nil && c.Proxy.TLSServerConfig != nil {
		c.Proxy.TLSServerConfig.SetDirectory(dir)
	}
	facts := make([]keyFacts, len(c.Keys))
	for i := range c.Keys {
		k, f := &c.Keys[i], &facts[i]
		k.APIKeyFile = commoncfg.JoinDir(dir, k.APIKeyFile)
		k.BearerTokenFile = commoncfg.JoinDir(dir, k.BearerTokenFile)
		k.HTTPClient.TLSConfig.SetDirectory(dir)
		f.prov, f.known = provider.Lookup(k.Provider)
		if f.apiKeyWritten = k.APIKey != ""; f.apiKeyWritten {
			var expanded string
			expanded, f.refs, f.unset = expandEnv(k.APIKey.Reveal())
			k.APIKey = Secret(expanded)
		}
		if k.BaseURL == "" && f.known {
			k.BaseURL = f.prov.BaseURL
		}
		if k.APIVersion == "" && f.known {
			k.APIVersion = f.prov.APIVersion
		}
		f.baseURL = k.BaseURL
		k.BaseURL = strings.TrimRight(k.BaseURL, "/")
		f.modelsWritten = k.Models != nil
		for j := range k.Limits {
			k.Limits[j].Window = canonicalWindow(k.Limits[j].Window)
		}
		switch {
		case !f.known || k.Models != nil:
		case !f.prov.NeedsModel():
			// OpenRouter's probe asks about the key, whatever the model: its
			// key has one target, with the model label empty.
			k.Models = []string{""}
		case f.prov.Model != "":
			k.Models = []string{f.prov.Model}
		}
	}
	return facts
}

// validate reports every problem, each with its file, line and field.
func (c *Config) validate(doc *document, facts []keyFacts, adminFacts []adminFacts) error {
	v := &validator{doc: doc, nameLine: map[string]int{}, secrets: map[[sha256.Size]byte]firstUse{}}
	v.probe(&c.Probe)
	if len(c.Keys) == 0 {
		v.fail("keys", "no keys configured: add at least one entry under keys")
	}
	if c.Proxy != nil {
		c.Proxy.validate(v.fail)
	}
	for i := range c.Keys {
		k, f, at := &c.Keys[i], &facts[i], fmt.Sprintf("keys[%d]", i)
		v.keyName(at, k.Name)
		if !f.known {
			v.fail(at+".provider", "unknown provider %q: supported: %s", k.Provider, strings.Join(provider.Names(), ", "))
		}
		v.secret(at, k, f)
		v.apiVersion(at, k, f)
		v.baseURL(at, k, f)
		v.models(at, k, f)
		v.probeInterval(at, k, c.Probe.Mode)
		k.HTTPClient.validate(at+".http_client", v.fail)
		v.labels(at, k)
		v.keyAdmin(at, k, c)
		v.limits(at, k, f, c.Proxy)
	}
	v.admins(c, adminFacts)
	return errors.Join(v.errs...)
}

// validator collects every problem of a config, each at its place.
type validator struct {
	doc      *document
	errs     []error
	nameLine map[string]int                 // each key name's line
	secrets  map[[sha256.Size]byte]firstUse // by the secret's digest: no secret is kept
}

type firstUse struct {
	noun, name string // "key" or "admin", and its name
	line       int
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, v.doc.errorf(path, format, args...))
}

func (v *validator) probe(p *Probe) {
	switch p.Mode {
	case ModeInterval, ModeScrape:
	default:
		v.fail("probe.mode", "unknown mode %q: use %q or %q", p.Mode, ModeInterval, ModeScrape)
	}
	switch {
	case p.Interval <= 0:
		v.fail("probe.interval", "must be greater than zero, got %s", p.Interval)
	case p.Interval > MaxInterval:
		v.fail("probe.interval", "must be at most %s, got %s", MaxInterval, p.Interval)
	}
	switch {
	case p.Timeout <= 0:
		v.fail("probe.timeout", "must be greater than zero, got %s", p.Timeout)
	case p.Timeout > MaxTimeout:
		v.fail("probe.timeout", "must be at most %s, got %s", MaxTimeout, p.Timeout)
	}
	switch {
	case p.MinInterval < 0:
		v.fail("probe.min_interval", "must not be negative, got %s", p.MinInterval)
	case p.MinInterval > MaxInterval:
		v.fail("probe.min_interval", "must be at most %s, got %s", MaxInterval, p.MinInterval)
	}
	if p.Concurrency < 1 {
		v.fail("probe.concurrency", "must be at least 1, got %d", p.Concurrency)
	}
	if !(p.MaxQuotaShare > 0 && p.MaxQuotaShare <= 1) {
		v.fail("probe.max_quota_share", "must be greater than 0 and at most 1 (1 turns the guard off), got %g", p.MaxQuotaShare)
	}
}

func (v *validator) keyName(at, name string) {
	switch {
	case name == "":
		v.fail(at, "name is required")
	case !keyNamePattern.MatchString(name):
		v.fail(at+".name", "%q may only contain letters, digits and _ . : -", name)
	case strings.HasPrefix(name, FingerprintPrefix):
		v.fail(at+".name", "%q must not start with %q, which names the keys the proxy does not know", name, FingerprintPrefix)
	case v.nameLine[name] != 0:
		v.fail(at+".name", "duplicate key name %q (first used at line %d)", name, v.nameLine[name])
	default:
		v.nameLine[name] = v.doc.line(at + ".name")
	}
}

func (v *validator) secret(at string, k *Key, f *keyFacts) {
	if k.BearerTokenFile != "" {
		v.bearerToken(at, k, f)
		return
	}
	switch {
	case f.apiKeyWritten && k.APIKeyFile != "":
		v.fail(at, "set exactly one of api_key and api_key_file, not both")
	case !f.apiKeyWritten && k.APIKeyFile == "" && f.known && f.prov.BearerToken:
		v.fail(at, "set exactly one of api_key, api_key_file and bearer_token_file")
	case !f.apiKeyWritten && k.APIKeyFile == "":
		v.fail(at, "set exactly one of api_key and api_key_file")
	default:
		v.secretOrFile(at, "api_key", "key", k.Name, k.APIKey, k.APIKeyFile, f.refs, f.unset)
	}
}

// secretOrFile checks a secret written in the config as field (value,
// after expanding refs, of which unset were not set) or read from
// field_file (file), and that no other key or admin source has it; kind
// and name say whose it is in that error.
func (v *validator) secretOrFile(at, field, kind, name string, value Secret, file string, refs, unset []string) {
	switch {
	case len(unset) > 0:
		// Name the variables, never the key around them.
		v.fail(at+"."+field, "%s", unsetMessage(unset))
	case file == "":
		if err := checkSecret(value, "key"); err != nil && len(refs) > 0 {
			v.fail(at+"."+field, "%v after expanding %s (is the variable set?)", err, strings.Join(refs, ", "))
		} else if err != nil {
			v.fail(at+"."+field, "%v", err)
		} else {
			v.sameSecret(at+"."+field, kind, name, value)
		}
	default:
		if secret, err := readSecretFile(field+"_file", file); err != nil {
			v.fail(at+"."+field+"_file", "%v", err)
		} else {
			v.sameSecret(at+"."+field+"_file", kind, name, secret)
		}
	}
}

// bearerToken checks a key that gives a bearer_token_file: a provider that
// takes one, no API key beside it, and a token the file holds now.
func (v *validator) bearerToken(at string, k *Key, f *keyFacts) {
	switch {
	case f.known && !f.prov.BearerToken:
		v.fail(at+".bearer_token_file", "provider %s takes an API key, not a bearer token: use api_key or api_key_file (bearer_token_file is for %s)",
			k.Provider, strings.Join(providersWith(func(p provider.Provider) bool { return p.BearerToken }), ", "))
	case f.apiKeyWritten || k.APIKeyFile != "":
		v.fail(at, "set exactly one of api_key, api_key_file and bearer_token_file, not several")
	default:
		if token, err := readSecretFile("bearer_token_file", k.BearerTokenFile); err != nil {
			v.fail(at+".bearer_token_file", "%v", err)
		} else {
			v.sameSecret(at+".bearer_token_file", "key", k.Name, token)
		}
	}
}

// apiVersionPattern is the shape of Azure OpenAI's api-versions: a date,
// the release's, and -preview for a preview release.
var apiVersionPattern = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})(-preview)?$`)

// apiVersion checks api_version: only for a provider whose API takes one,
// and "v1" or a release date.
func (v *validator) apiVersion(at string, k *Key, f *keyFacts) {
	if !f.known || k.APIVersion == f.prov.APIVersion {
		return
	}
	if f.prov.APIVersion == "" {
		v.fail(at+".api_version", "provider %s takes no api_version (api_version is for %s): leave it out",
			k.Provider, strings.Join(providersWith(func(p provider.Provider) bool { return p.APIVersion != "" }), ", "))
		return
	}
	if k.APIVersion == provider.AzureV1 {
		return
	}
	m := apiVersionPattern.FindStringSubmatch(k.APIVersion)
	if m != nil {
		if _, err := time.Parse(time.DateOnly, m[1]); err == nil {
			return
		}
	}
	// Not quoted: a key pasted in the wrong field must not reach a log.
	v.fail(at+".api_version", "is not an api-version: use %q for the v1 API, or a release date such as %s or 2025-04-01-preview",
		provider.AzureV1, f.prov.APIVersion)
}

// providersWith names the providers for which has is true.
func providersWith(has func(provider.Provider) bool) []string {
	var names []string
	for _, name := range provider.Names() {
		if p, _ := provider.Lookup(name); has(p) {
			names = append(names, name)
		}
	}
	return names
}

// sameSecret refuses a secret that an earlier key or admin source has; noun
// says which name is: "key" or "admin". A secret is one credential: at one
// provider its quota would be probed, and spent, twice, and the proxy would
// put both names' traffic under the first; at two, one of them did not
// issue it and would be sent it. An admin key that is also an API key would
// be sent with every probe and every proxied request.
func (v *validator) sameSecret(path, noun, name string, secret Secret) {
	digest := sha256.Sum256([]byte(secret.Reveal()))
	if first, seen := v.secrets[digest]; seen {
		why := "a secret is one credential, so configure it once"
		if noun != first.noun {
			why = "an admin key must be a credential of its own, as an API key is sent with every probe"
		}
		v.fail(path, "%s %q has the same secret as %s %q (line %d): %s", noun, name, first.noun, first.name, first.line, why)
		return
	}
	v.secrets[digest] = firstUse{noun: noun, name: name, line: v.doc.line(path)}
}

func (v *validator) baseURL(at string, k *Key, f *keyFacts) {
	switch {
	case !f.known && f.baseURL == "":
		// The provider error says it all.
	case f.baseURL == "":
		v.fail(at, "base_url is required with provider %s: it has no default", k.Provider)
	default:
		checkURL(v.fail, at+".base_url", f.baseURL)
	}
	// Only a URL that passed its check is quoted: one with user info
	// would show the password.
	if _, err := CheckHTTPURL(k.BaseURL); err == nil && f.known {
		if doubled, probe := doubledPath(k, f.prov); doubled != "" {
			v.fail(at+".base_url", "%q ends in %s, which the probe adds itself (it would send %s): leave it out",
				k.BaseURL, doubled, probe.URL)
		}
	}
}

func (v *validator) models(at string, k *Key, f *keyFacts) {
	perKey := f.known && !f.prov.NeedsModel()
	switch {
	case perKey && f.modelsWritten:
		v.fail(at+".models", "provider %s's probe is one per key, whatever the model: leave models out", k.Provider)
		return
	case perKey:
		return
	case k.Models == nil && f.known:
		v.fail(at, "models is required with provider %s: it has no default model", k.Provider)
	case k.Models != nil && len(k.Models) == 0:
		v.fail(at+".models", "is empty: list at least one model, or leave it out for the provider's default")
	}
	seen := map[string]bool{}
	for j, m := range k.Models {
		path := fmt.Sprintf("%s.models[%d]", at, j)
		switch {
		case strings.TrimSpace(m) == "":
			v.fail(path, "model name is empty")
		case !Printable(m):
			// %q, so that a newline in the name cannot forge a log line.
			v.fail(path, "model name %q contains whitespace or control characters", m)
		case seen[m]:
			v.fail(path, "duplicate model %q", m)
		case f.known && !inPathAsIs(k, f.prov, m) && strings.Contains(m, "/"):
			v.fail(path, "model name %q cannot be read back from the probe's path: give the model's name alone, without \"/\"", m)
		case f.known && !inPathAsIs(k, f.prov, m):
			v.fail(path, "model name %q cannot be read back from the probe's path: %s takes no such name there", m, k.Provider)
		}
		seen[m] = true
	}
}

// inPathAsIs reports whether model, for a provider that names it in the
// probe's path (ModelInPath), comes back from that path as it is, so that
// the probe asks about the model named and the proxy records the same
// model's traffic under the same name. A Gemini model written as its
// resource name, models/gemini-2.5-flash, would not.
func inPathAsIs(k *Key, p provider.Provider, model string) bool {
	if p.ModelInPath == nil {
		return true
	}
	probe := p.Probe.Request("", model, k.ProbeOptions()).URL
	if probe == p.Probe.Request("", "another-"+model, k.ProbeOptions()).URL {
		return true // the path names no model: Azure's v1 API names it in the body
	}
	u, err := url.Parse(probe)
	if err != nil {
		return false
	}
	got, ok := p.ModelInPath(u.Path)
	return ok && got == model
}

func (v *validator) probeInterval(at string, k *Key, mode string) {
	switch d := k.ProbeInterval; {
	case d == nil:
	case *d <= 0 && mode != ModeScrape:
		v.fail(at+".probe_interval", "must be greater than zero in interval mode, got %s", *d)
	case *d < 0:
		v.fail(at+".probe_interval", "must not be negative, got %s", *d)
	case *d > MaxInterval:
		v.fail(at+".probe_interval", "must be at most %s, got %s", MaxInterval, *d)
	}
}

func (v *validator) labels(at string, k *Key) {
	for _, name := range k.LabelNames() {
		path := at + ".labels." + name
		switch {
		case !labelNamePattern.MatchString(name) || strings.HasPrefix(name, "__"):
			v.fail(path, "%q is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", name)
		case isReserved(name):
			v.fail(path, "%q clashes with the exporter's own labels (%s)", name, strings.Join(ReservedLabels, ", "))
		}
	}
}

// expandEnv replaces each ${VAR} with the variable's value. It returns the
// references it replaced and the names of the variables that are not set;
// a variable set to the empty string is set.
func expandEnv(s string) (out string, refs, unset []string) {
	out = envRefPattern.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		refs = append(refs, ref)
		value, ok := os.LookupEnv(name)
		if !ok && !slices.Contains(unset, name) {
			unset = append(unset, name)
		}
		return value
	})
	return out, refs, unset
}

func unsetMessage(names []string) string {
	if len(names) == 1 {
		return "environment variable " + names[0] + " is not set"
	}
	return "environment variables " + strings.Join(names, ", ") + " are not set"
}

// checkURL reports at path what CheckHTTPURL finds wrong with raw. raw
// is not quoted: a key pasted into the wrong field, or a password in a
// URL's user info, must not reach a log; the file, line and field say
// where it is.
func checkURL(fail func(path, format string, args ...any), path, raw string) {
	switch _, err := CheckHTTPURL(raw); {
	case errors.Is(err, ErrNotHTTPURL):
		fail(path, "%v: write http:// or https:// and a host, such as https://api.example.com/v1", err)
	case err != nil:
		fail(path, "%v", err)
	}
}

func isReserved(name string) bool {
	for _, r := range ReservedLabels {
		if name == r {
			return true
		}
	}
	return false
}

// doubledPath returns the start of the key's probe path that its base URL
// already ends in, such as /v1 for Anthropic's /v1/messages, or "", and
// the probe the key would send.
func doubledPath(k *Key, p provider.Provider) (string, provider.Request) {
	model := ""
	if len(k.Models) > 0 {
		model = k.Models[0] // a path that names the model (Azure's deployments) ends in it
	}
	probe := p.Probe.Request(k.BaseURL, model, k.ProbeOptions())
	path := p.Probe.Request("", model, k.ProbeOptions()).URL
	for cut := len(path); cut > 0; cut = strings.LastIndexByte(path[:cut], '/') {
		if strings.HasSuffix(k.BaseURL, path[:cut]) {
			return path[:cut], probe
		}
	}
	return "", probe
}

// defaultProvider is the provider of keys that name none.
func defaultProvider() provider.Provider {
	p, _ := provider.Lookup(provider.Default)
	return p
}
