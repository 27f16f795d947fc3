package adminpoll

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	sourceLabels = []string{"admin", "provider", "api"}
	budgetLabels = []string{"admin", "provider", "project", "currency"}

	successDesc = prometheus.NewDesc("ratelimit_admin_success",
		"Whether the last read of an admin API worked (rate_limits: every project or workspace the keys name).", sourceLabels, nil)
	lastSuccessDesc = prometheus.NewDesc("ratelimit_admin_last_success_timestamp_seconds",
		"When an admin API was last read without an error (Unix seconds); what it read then is what is shown.", sourceLabels, nil)
	requestsDesc = prometheus.NewDesc("ratelimit_admin_requests_total",
		"Requests to an admin API, one per page, by result; key_unavailable ones were never sent.", append(slices.Clone(sourceLabels), "result"), nil)
	spendDesc = prometheus.NewDesc("ratelimit_spend",
		"Spend of the current calendar month (UTC) so far, from the provider's cost API, for each budget the config declares; project \"\" is the whole organization.", budgetLabels, nil)
	budgetDesc = prometheus.NewDesc("ratelimit_budget",
		"The monthly budget the config declares; project \"\" is the whole organization.", budgetLabels, nil)
)

var _ prometheus.Collector = (*Poller)(nil)

// Describe implements prometheus.Collector.
func (p *Poller) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{successDesc, lastSuccessDesc, requestsDesc, spendDesc, budgetDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p *Poller) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	month := monthStart(p.clock.Now())
	for _, s := range p.sources {
		set := &s.settings
		for a := range numAPIs {
			if !set.used(a) {
				continue
			}
			st := &s.apis[a]
			labels := []string{set.name, set.provider, apiNames[a]}
			if st.polled {
				ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, boolToFloat(st.ok), labels...)
			}
			if !st.lastSuccess.IsZero() {
				ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, float64(st.lastSuccess.UnixNano())/1e9, labels...)
			}
			for _, result := range Results {
				ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, st.requests[result], append(labels, result)...)
			}
		}
		for _, b := range set.budgets {
			labels := []string{set.name, set.provider, b.Project, b.Currency}
			ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, b.Monthly, labels...)
			// Last month's spend is not this month's: it goes when the
			// month does, until a read of the new month.
			if s.spend != nil && s.spend.month.Equal(month) {
				ch <- prometheus.MustNewConstMetric(spendDesc, prometheus.GaugeValue, spendOf(b, s.spend.costs), labels...)
			}
		}
	}
}

func boolToFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
