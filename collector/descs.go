package collector

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// family is one metric family the collector exposes.
type family int

// The families, in the order they are written.
const (
	famLimit family = iota
	famRemaining
	famReset
	famResetTimestamp
	famReadingTimestamp
	famUtilization
	famWindowStatus
	famBalance
	famConfiguredLimit
	famRemainingEstimate
	famSuccess
	famDuration
	famStatusCode
	famLastSuccess
	famInterval
	famProbes
	famObservations
	famTokens
	famHeaderErrors
	famProxyRateLimited
	famRetryAfter
	famRetryAfterTimestamp
	numFamilies
)

// labelSet says which labels a family carries besides the key's own.
type labelSet int

const (
	targetLabels     labelSet = iota // key, provider, model + the key's labels
	windowLabels                     // + resource, window
	resultLabels                     // + result, reason, cause
	identityLabels                   // key, provider, model only
	sourceLabels                     // key, provider, model, source
	statusLabels                     // + resource, window, status
	currencyLabels                   // + currency
	causeLabels                      // key, provider, model, cause
	configuredLabels                 // + resource, window, source
)

var families = [numFamilies]struct {
	name   string
	help   string
	typ    dto.MetricType
	labels labelSet
}{
	famLimit:               {"ratelimit_limit", "Rate limit of a window, as the provider's rate-limit headers (or OpenRouter's key endpoint) give it; where they give none, as the admin API or the config does (ratelimit_configured_limit).", dto.MetricType_GAUGE, windowLabels},
	famRemaining:           {"ratelimit_remaining", "What is left of a window's rate limit, as the provider gives it.", dto.MetricType_GAUGE, windowLabels},
	famReset:               {"ratelimit_reset_seconds", "Seconds from the probe until the window is full again, as the provider gives it; absolute resets are counted from the response's Date.", dto.MetricType_GAUGE, windowLabels},
	famResetTimestamp:      {"ratelimit_reset_timestamp_seconds", "When the window is full again: probe time plus reset_seconds (Unix seconds).", dto.MetricType_GAUGE, windowLabels},
	famReadingTimestamp:    {"ratelimit_reading_timestamp_seconds", "When the window's figures were read (Unix seconds): by a probe, from the proxy's traffic, or, for a window only the config or an admin API gives, when that source last gave it. Replicas each serve their own: take the freshest.", dto.MetricType_GAUGE, windowLabels},
	famUtilization:         {"ratelimit_utilization", "Share of a window's limit used, from 0 to 1, for windows that give a share rather than a remaining (Anthropic's unified windows, Azure's provisioned deployments).", dto.MetricType_GAUGE, windowLabels},
	famWindowStatus:        {"ratelimit_window_status", "A window's status as the provider gives it: 1 for the current status (allowed, allowed_warning or rejected), 0 for the others.", dto.MetricType_GAUGE, statusLabels},
	famBalance:             {"ratelimit_balance", "Money left on the account, by currency, as the provider gives it (DeepSeek's balance).", dto.MetricType_GAUGE, currencyLabels},
	famConfiguredLimit:     {"ratelimit_configured_limit", "Rate limit of a window as a source other than the responses' headers gives it: admin_api (the provider's admin API) or config (a limit the config declares). ratelimit_limit shows the headers' value where they give one.", dto.MetricType_GAUGE, configuredLabels},
	famRemainingEstimate:   {"ratelimit_remaining_estimate", "An estimate of what is left of a window the config declares: its limit minus what the proxy counted in the current window. Absent until a whole window has been counted.", dto.MetricType_GAUGE, windowLabels},
	famSuccess:             {"ratelimit_probe_success", "Whether the last probe read rate-limit headers.", dto.MetricType_GAUGE, targetLabels},
	famDuration:            {"ratelimit_probe_duration_seconds", "Duration of the last probe.", dto.MetricType_GAUGE, targetLabels},
	famStatusCode:          {"ratelimit_probe_status_code", "HTTP status of the last probe's response; 0 without a response.", dto.MetricType_GAUGE, targetLabels},
	famLastSuccess:         {"ratelimit_probe_last_success_timestamp_seconds", "When rate-limit headers were last read (Unix seconds).", dto.MetricType_GAUGE, targetLabels},
	famInterval:            {"ratelimit_probe_interval_seconds", "Time between probes of the key and model: the configured interval (min_interval in scrape mode), stretched to keep within max_quota_share.", dto.MetricType_GAUGE, identityLabels},
	famProbes:              {"ratelimit_probes_total", "Probes, by result; key_unavailable ones were never sent. reason is the provider's error code of a refused probe (16 codes at most per key and model); cause says why a 402, 429, 503 or 529 happened (rate_limit, quota_exhausted, spend_limit, overloaded, concurrency).", dto.MetricType_COUNTER, resultLabels},
	famObservations:        {"ratelimit_observations_total", "Responses whose rate-limit values were read, by source: probe (the exporter's own probes) or proxy (the applications' traffic through the proxy, at no cost).", dto.MetricType_COUNTER, sourceLabels},
	famTokens:              {"ratelimit_probe_tokens_total", "Tokens billed to the exporter's own probes, from the usage in their responses.", dto.MetricType_COUNTER, targetLabels},
	famHeaderErrors:        {"ratelimit_header_errors_total", "Rate-limit header values dropped: invalid, beyond the 64 taken from one response, or the less cautious of two values of one figure.", dto.MetricType_COUNTER, identityLabels},
	famProxyRateLimited:    {"ratelimit_proxy_rate_limited_total", "Refusals the applications got through the proxy, by cause: 429s, 402s (spend_limit), 503s and 529s (overloaded); the series with no cause counts none.", dto.MetricType_COUNTER, causeLabels},
	famRetryAfter:          {"ratelimit_retry_after_seconds", "The wait the provider last asked for, in a refusal to a probe or to the applications' traffic (retry-after-ms, Retry-After, or Gemini's retryDelay).", dto.MetricType_GAUGE, identityLabels},
	famRetryAfterTimestamp: {"ratelimit_retry_after_timestamp_seconds", "When the wait the provider last asked for ends (Unix seconds).", dto.MetricType_GAUGE, identityLabels},
}

// descs are the descriptors of every family for targets that share one set
// of extra label names, with the label names in descriptor order and that
// order sorted, as the text format writes them.
type descs struct {
	desc   [numFamilies]*prometheus.Desc
	names  [numFamilies][]string
	sorted [numFamilies][]int // indexes into names, by name
}

func newDescs(extraLabels []string) *descs {
	identity := []string{config.LabelKey, config.LabelProvider, config.LabelModel}
	byLabels := map[labelSet][]string{
		identityLabels:   identity,
		sourceLabels:     append(append([]string(nil), identity...), config.LabelSource),
		targetLabels:     append(append([]string(nil), identity...), extraLabels...),
		windowLabels:     append(append(append([]string(nil), identity...), config.LabelResource, config.LabelWindow), extraLabels...),
		resultLabels:     append(append(append([]string(nil), identity...), config.LabelResult, config.LabelReason, config.LabelCause), extraLabels...),
		statusLabels:     append(append(append([]string(nil), identity...), config.LabelResource, config.LabelWindow, config.LabelStatus), extraLabels...),
		currencyLabels:   append(append(append([]string(nil), identity...), config.LabelCurrency), extraLabels...),
		causeLabels:      append(append([]string(nil), identity...), config.LabelCause),
		configuredLabels: append(append(append([]string(nil), identity...), config.LabelResource, config.LabelWindow, config.LabelSource), extraLabels...),
	}
	d := &descs{}
	for f, fam := range families {
		names := byLabels[fam.labels]
		d.desc[f] = prometheus.NewDesc(fam.name, fam.help, names, nil)
		d.names[f] = names
		d.sorted[f] = make([]int, len(names))
		for i := range names {
			d.sorted[f][i] = i
		}
		sort.Slice(d.sorted[f], func(i, j int) bool { return names[d.sorted[f][i]] < names[d.sorted[f][j]] })
	}
	return d
}

func (f family) valueType() prometheus.ValueType {
	if families[f].typ == dto.MetricType_COUNTER {
		return prometheus.CounterValue
	}
	return prometheus.GaugeValue
}
