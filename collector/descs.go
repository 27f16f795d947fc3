package collector

import "github.com/prometheus/client_golang/prometheus"

// descs are the descriptors for targets that share one set of extra label names.
type descs struct {
	limit, remaining, reset, resetTimestamp    *prometheus.Desc
	success, duration, statusCode, lastSuccess *prometheus.Desc
	probes, tokens, headerErrors               *prometheus.Desc
}

func newDescs(extraLabels []string) *descs {
	target := append([]string{"key", "provider", "model"}, extraLabels...)
	window := append([]string{"key", "provider", "model", "resource", "window"}, extraLabels...)
	result := append(append([]string(nil), target...), "result")
	desc := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &descs{
		limit:          desc("limit", "Rate limit of a window, from the provider's x-ratelimit-limit-* header.", window),
		remaining:      desc("remaining", "What is left of a window's rate limit, from the x-ratelimit-remaining-* header.", window),
		reset:          desc("reset_seconds", "Seconds until the window is full again, from the x-ratelimit-reset-* header as received.", window),
		resetTimestamp: desc("reset_timestamp_seconds", "When the window is full again: probe time plus reset_seconds (Unix seconds).", window),

		success:     desc("probe_success", "Whether the last probe read rate-limit headers.", target),
		duration:    desc("probe_duration_seconds", "Duration of the last probe.", target),
		statusCode:  desc("probe_status_code", "HTTP status of the last probe's response; 0 without a response.", target),
		lastSuccess: desc("probe_last_success_timestamp_seconds", "When rate-limit headers were last read (Unix seconds).", target),

		probes:       desc("probes_total", "Probes sent, by result.", result),
		tokens:       desc("probe_tokens_total", "Tokens billed to the exporter's own probes (usage.total_tokens).", target),
		headerErrors: desc("header_errors_total", "Rate-limit header values dropped as invalid.", []string{"key", "provider", "model"}),
	}
}
