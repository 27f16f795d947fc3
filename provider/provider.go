// Package provider declares the APIs whose rate limits the exporter reads:
// for each, where it lives, the cheapest request it accepts, how a key is
// sent, and what its documentation says that its headers do not.
//
// Adding a provider is one entry in the list below; the scheduler, the
// collector and the server do not know providers by name.
package provider

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Provider is one API whose rate limits can be probed.
type Provider struct {
	Name string
	// BaseURL is where the API lives; "" when there is no default and a key
	// must give its base_url.
	BaseURL string
	// Model is the model a key probes when it lists none; "" when the probe
	// names no model (OpenRouter's key endpoint is per key).
	Model string
	// Windows gives, by resource, the window the provider documents for
	// rate-limit headers whose names carry none.
	Windows map[string]string
	// Probe is the request that asks the API about a key's limits, and how
	// its answer is read.
	Probe Probe
	// ModelInPath reads the model from the path of a request through the
	// proxy, for an API that names it there; nil, or false, and the proxy
	// reads the body's top-level "model". true: the path names the model
	// the upstream serves, whatever the body says; the model is "" when
	// the name is not one a label should show. The model must be
	// printable and short, as config.Printable and the proxy's bound on a
	// body's model.
	ModelInPath func(path string) (model string, named bool)
	// APIVersion is the api_version a key probes with when it gives none;
	// "" for an API that takes none, whose keys may not give one.
	APIVersion string
	// BearerToken reports whether a key may give a bearer token
	// (bearer_token_file) instead of an API key.
	BearerToken bool
	// MinInterval is the shortest time between probes of one key and model
	// that does not set its own probe_interval, whatever probe.interval or
	// probe.min_interval say: for an API that sends no rate-limit values
	// until one runs out, a probe tells little and spends a request of a
	// daily quota. 0: the probe settings alone decide.
	MinInterval time.Duration
	// LimitsInRefusalsOnly: the API sends no rate-limit values but in the
	// body of a refusal, naming the windows that ran out (Gemini). A 2xx
	// it answers for a model then says that none of that model's windows
	// is empty: the proxy records it as a ratelimit.Reading that is
	// Served. false for an API that sends values with its answers, or
	// has no windows at all (DeepSeek, whose limit is its balance).
	LimitsInRefusalsOnly bool
}

// all lists every provider, in the order the docs show them.
var all = []Provider{
	{
		Name:    "cerebras",
		BaseURL: "https://api.cerebras.ai/v1",
		Model:   "llama3.1-8b",
		Probe:   chatCompletions{capField: "max_completion_tokens"},
	},
	{
		// OpenAI documents no window for either pair: requests are per
		// minute or per day by the account's tier, and tokens have been seen
		// resetting in 24h6m34s (a daily limit) as well as in seconds.
		Name:    "openai",
		BaseURL: "https://api.openai.com/v1",
		Model:   "gpt-4o-mini",
		Probe:   chatCompletions{capField: "max_completion_tokens"},
	},
	{
		Name:    "groq",
		BaseURL: "https://api.groq.com/openai/v1",
		Model:   "llama-3.1-8b-instant",
		Windows: map[string]string{"requests": "day", "tokens": "minute"},
		Probe:   chatCompletions{capField: "max_tokens"},
	},
	{
		// Windows are in the header names (-req-minute, -tokens-month).
		Name:    "mistral",
		BaseURL: "https://api.mistral.ai/v1",
		Model:   "mistral-small-latest",
		Probe:   chatCompletions{capField: "max_tokens"},
	},
	{
		// Its documentation gives no window for x-ratelimit-* or x-tokenlimit-*.
		Name:    "together",
		BaseURL: "https://api.together.xyz/v1",
		Model:   "meta-llama/Llama-3.2-3B-Instruct-Turbo",
		Probe:   chatCompletions{capField: "max_tokens"},
	},
	{
		// Fireworks documents its token limits as tokens per second; its
		// requests pair has no documented window.
		Name:    "fireworks",
		BaseURL: "https://api.fireworks.ai/inference/v1",
		Model:   "accounts/fireworks/models/llama-v3p1-8b-instruct",
		Windows: map[string]string{"tokens_prompt": "second", "tokens_cache_adjusted_prompt": "second", "tokens_generated": "second"},
		Probe:   chatCompletions{capField: "max_tokens"},
	},
	{
		// "The default rate limit header is in RPM"; the day pair is named.
		Name:    "sambanova",
		BaseURL: "https://api.sambanova.ai/v1",
		Model:   "Meta-Llama-3.1-8B-Instruct",
		Windows: map[string]string{"requests": "minute"},
		Probe:   chatCompletions{capField: "max_tokens"},
	},
	{
		// Any other API that speaks OpenAI's chat completions.
		Name:  "openai_compatible",
		Probe: chatCompletions{capField: "max_tokens"},
	},
	{
		// anthropic-ratelimit-* headers are per minute; the parser knows.
		Name:    "anthropic",
		BaseURL: "https://api.anthropic.com",
		Model:   "claude-haiku-4-5",
		Probe:   messages{},
	},
	{
		Name:    "openrouter",
		BaseURL: "https://openrouter.ai/api/v1",
		Probe:   keyInfo{accountGet{"/key"}},
	},
	{
		// xAI enforces requests per second (its per-minute budget / 60) and
		// tokens per minute, but documents neither its x-ratelimit-* headers
		// nor their windows: a requests limit of 30 could be the second's or
		// the minute's. So no window. grok-4.20-0309-non-reasoning is the
		// cheapest text model in its rate-limit table that spends no
		// reasoning tokens, which a one-token answer cannot afford.
		Name:    "xai",
		BaseURL: "https://api.x.ai/v1",
		Model:   "grok-4.20-0309-non-reasoning",
		Probe:   chatCompletions{capField: "max_completion_tokens"},
	},
	{
		// No rate-limit headers and no fixed limits: what runs out is the
		// account's money, which GET /user/balance tells for free.
		Name:    "deepseek",
		BaseURL: "https://api.deepseek.com",
		Probe:   balance{accountGet{"/user/balance"}},
	},
	{
		// base_url is the resource's endpoint, https://{resource}.openai.azure.com;
		// models are deployments. A deployment's quota is in tokens and
		// requests per minute; a provisioned (PTU) deployment's utilization
		// has no documented window.
		Name:        "azure_openai",
		Windows:     map[string]string{"requests": "minute", "tokens": "minute"},
		Probe:       azureChatCompletions{},
		ModelInPath: azureDeployment,
		APIVersion:  AzureAPIVersion,
		BearerToken: true,
	},
	{
		// No rate-limit headers: what ran out is in a 429's body only.
		Name:                 "gemini",
		BaseURL:              "https://generativelanguage.googleapis.com/v1beta",
		Model:                "gemini-3.5-flash-lite",
		Probe:                generateContent{now: time.Now},
		ModelInPath:          modelInGeminiPath,
		MinInterval:          time.Hour,
		LimitsInRefusalsOnly: true,
	},
}

// Default is the provider of a key that names none.
const Default = "cerebras"

// Lookup returns the provider called name.
func Lookup(name string) (Provider, bool) {
	i := slices.IndexFunc(all, func(p Provider) bool { return p.Name == name })
	if i < 0 {
		return Provider{}, false
	}
	return all[i], true
}

// Names lists the providers' names, sorted.
func Names() []string {
	names := make([]string, len(all))
	for i, p := range all {
		names[i] = p.Name
	}
	slices.Sort(names)
	return names
}

// All returns every provider, in declaration order.
func All() []Provider { return slices.Clone(all) }

// Parser returns the header parser that knows the provider's windows.
func (p Provider) Parser() ratelimit.Parser { return ratelimit.Parser{Windows: p.Windows} }

// Authorize puts a key's secret where the API reads it: a bearer token in
// Authorization, an API key where the probe says.
func (p Provider) Authorize(h http.Header, secret string, o Options) {
	if o.BearerToken {
		setKey(h, "Authorization", secret)
		return
	}
	p.Probe.Authorize(h, secret)
}

// NeedsModel reports whether the probe names a model, so that a key must
// have at least one.
func (p Provider) NeedsModel() bool { return p.Probe.NamesModel() }

// String implements fmt.Stringer.
func (p Provider) String() string { return p.Name }

// plainCode matches a provider's error code that can be a label value: a
// short identifier, never free text that might echo a request.
func plainCode(s string) string {
	if len(s) == 0 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return ""
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}) >= 0 {
		return ""
	}
	return s
}
