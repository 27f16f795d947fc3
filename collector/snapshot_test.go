package collector

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// The JSON view of every kind of target, field by field, as a router
// reads it 20 seconds after the probes (probeTime is 11:06:40).
func TestSnapshot(t *testing.T) {
	c, _, _ := newTestCollector(t,
		config.Key{Name: "live", Provider: "cerebras", Models: []string{"m"}, Labels: map[string]string{"team": "search"}},
		config.Key{Name: "failing", Provider: "cerebras", Models: []string{"m"}},
		config.Key{Name: "mixed", Provider: "azure_openai", Models: []string{"m"}},
		config.Key{Name: "pending", Provider: "cerebras", Models: []string{"m"}},
		config.Key{Name: "served", Provider: "anthropic", Models: []string{"m"}},
		config.Key{Name: "wallet", Provider: "deepseek", Models: []string{""}},
	)
	obs := func(kind ratelimit.Kind, resource, window string, v float64) ratelimit.Observation {
		return ratelimit.Observation{Kind: kind, Resource: resource, Window: window, Value: v}
	}
	record := func(key, model string, at time.Time, status int, outcome prober.Outcome, err error, o ...ratelimit.Observation) {
		c.Record(config.TargetID{Key: key, Model: model}, &prober.Result{Reading: ratelimit.Reading{Time: at, StatusCode: status, Observations: o},
			Outcome: outcome, Err: err, Duration: 80 * time.Millisecond})
	}
	read := []ratelimit.Observation{
		obs(ratelimit.Limit, "requests", "minute", 30), obs(ratelimit.Remaining, "requests", "minute", 29), obs(ratelimit.Reset, "requests", "minute", 10),
		obs(ratelimit.Limit, "tokens", "minute", 1000), obs(ratelimit.Remaining, "tokens", "minute", 900), obs(ratelimit.Reset, "tokens", "minute", 100),
	}
	record("live", "m", probeTime, 200, prober.Success, nil, read...)
	// The last probe failed after the reading: the figures may no longer hold.
	record("failing", "m", probeTime, 200, prober.Success, nil, read...)
	record("failing", "m", probeTime.Add(time.Second), 401, prober.Unauthorized, errors401{})
	// Azure's headers give what is left, no limit, no reset; the config
	// declares the limit, and its count says when the window ends.
	record("mixed", "m", probeTime, 200, prober.Success, nil, obs(ratelimit.Remaining, "requests", "minute", 599))
	// A provider that sends values only when a window runs out, and none did.
	c.Record(config.TargetID{Key: "served", Model: "m"}, &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 200, Served: true}, Outcome: prober.Success})
	record("wallet", "", probeTime, 200, prober.Success, nil,
		obs(ratelimit.Status, "balance", "", ratelimit.StatusAllowed), obs(ratelimit.Balance, "CNY", "", 110.5),
		obs(ratelimit.Balance, "USD", "", 15.25), obs(ratelimit.Balance, "USD", "month", 99))

	// An admin API read an hour ago: a window the headers do not give, and
	// a model no key probes.
	c.SetConfigured(SourceAdminAPI, "live", map[string][]ratelimit.Window{
		"m":  {limitWindow("requests", "day", 14400), limitWindow("tokens", "day", 2e6)},
		"o3": {limitWindow("tokens", "minute", 30000)},
	}, probeTime.Add(-time.Hour))
	c.SetConfigured(SourceAdminAPI, "failing", map[string][]ratelimit.Window{"m": {limitWindow("requests", "day", 14400)}}, probeTime.Add(-time.Hour))
	// The config's declared limits, counted 5 seconds after the probe.
	declared := limitWindow("tokens", "day", 1e6)
	setValue(&declared, ratelimit.Remaining, 5e5)
	setValue(&declared, ratelimit.Reset, 3600)
	c.SetConfigured(SourceConfig, "live", map[string][]ratelimit.Window{"m": {declared}}, probeTime.Add(5*time.Second))
	azure := limitWindow("requests", "minute", 600)
	setValue(&azure, ratelimit.Remaining, 590)
	setValue(&azure, ratelimit.Reset, 30)
	c.SetConfigured(SourceConfig, "mixed", map[string][]ratelimit.Window{"m": {azure}}, probeTime.Add(5*time.Second))

	// The proxy: an unlisted model of a configured key, and a key known
	// by its fingerprint alone.
	proxied := &ratelimit.Reading{Time: probeTime.Add(10 * time.Second), StatusCode: 200, Observations: []ratelimit.Observation{
		obs(ratelimit.Limit, "requests", "minute", 30), obs(ratelimit.Remaining, "requests", "minute", 12), obs(ratelimit.Reset, "requests", "minute", 30),
	}}
	c.Observe(config.TargetID{Key: "live", Model: "other"}, "cerebras", proxied)
	c.Observe(config.TargetID{Key: "sha256:0123456789ab", Model: "m"}, "cerebras", proxied)

	got := c.Snapshot(probeTime.Add(20 * time.Second))
	want := []string{
		`{"key":"failing","provider":"cerebras","model":"m","ok":false,"result":"unauthorized","status_code":401,"error":"HTTP 401 (invalid_api_key)","read_at":"2026-11-18T11:06:40Z","source":"probe","windows":[` +
			`{"resource":"requests","window":"day","limit":14400,"source":"admin_api","read_at":"2026-11-18T10:06:40Z","current":true},` +
			`{"resource":"requests","window":"minute","remaining":29,"limit":30,"reset_seconds":10,"resets_at":"2026-11-18T11:06:50Z","source":"probe","read_at":"2026-11-18T11:06:40Z","current":false},` +
			`{"resource":"tokens","window":"minute","remaining":900,"limit":1000,"reset_seconds":100,"resets_at":"2026-11-18T11:08:20Z","source":"probe","read_at":"2026-11-18T11:06:40Z","current":false}]}`,
		`{"key":"live","provider":"cerebras","model":"m","labels":{"team":"search"},"ok":true,"result":"success","status_code":200,"read_at":"2026-11-18T11:06:40Z","source":"probe","windows":[` +
			`{"resource":"requests","window":"day","limit":14400,"source":"admin_api","read_at":"2026-11-18T10:06:40Z","current":true},` +
			// Its reset passed 10 seconds ago: it has refilled since.
			`{"resource":"requests","window":"minute","remaining":29,"limit":30,"reset_seconds":10,"resets_at":"2026-11-18T11:06:50Z","source":"probe","read_at":"2026-11-18T11:06:40Z","current":false},` +
			// The admin API's limit, the config's count: read_at is the count's.
			`{"resource":"tokens","window":"day","limit":2000000,"reset_seconds":3600,"resets_at":"2026-11-18T12:06:45Z","remaining_estimate":500000,"source":"config","read_at":"2026-11-18T11:06:45Z","current":true},` +
			`{"resource":"tokens","window":"minute","remaining":900,"limit":1000,"reset_seconds":100,"resets_at":"2026-11-18T11:08:20Z","source":"probe","read_at":"2026-11-18T11:06:40Z","current":true}]}`,
		`{"key":"live","provider":"cerebras","model":"o3","labels":{"team":"search"},"ok":true,"result":"not_probed","status_code":0,"windows":[` +
			`{"resource":"tokens","window":"minute","limit":30000,"source":"admin_api","read_at":"2026-11-18T10:06:40Z","current":true}]}`,
		`{"key":"live","provider":"cerebras","model":"other","labels":{"team":"search"},"ok":true,"result":"not_probed","status_code":0,"read_at":"2026-11-18T11:06:50Z","source":"proxy","windows":[` +
			`{"resource":"requests","window":"minute","remaining":12,"limit":30,"reset_seconds":30,"resets_at":"2026-11-18T11:07:20Z","source":"proxy","read_at":"2026-11-18T11:06:50Z","current":true}]}`,
		// The limit and the reset are the config's; the reset counts from
		// the headers' read_at, 5 seconds before the count's.
		`{"key":"mixed","provider":"azure_openai","model":"m","ok":true,"result":"success","status_code":200,"read_at":"2026-11-18T11:06:40Z","source":"probe","windows":[` +
			`{"resource":"requests","window":"minute","remaining":599,"limit":600,"reset_seconds":35,"resets_at":"2026-11-18T11:07:15Z","remaining_estimate":590,"source":"probe","read_at":"2026-11-18T11:06:40Z","current":true}]}`,
		`{"key":"pending","provider":"cerebras","model":"m","ok":false,"result":"pending","status_code":0,"windows":[]}`,
		`{"key":"served","provider":"anthropic","model":"m","ok":true,"result":"success","status_code":200,"read_at":"2026-11-18T11:06:40Z","source":"probe","served":true,"windows":[]}`,
		`{"key":"sha256:0123456789ab","provider":"cerebras","model":"m","ok":true,"result":"not_probed","status_code":0,"read_at":"2026-11-18T11:06:50Z","source":"proxy","windows":[` +
			`{"resource":"requests","window":"minute","remaining":12,"limit":30,"reset_seconds":30,"resets_at":"2026-11-18T11:07:20Z","source":"proxy","read_at":"2026-11-18T11:06:50Z","current":true}]}`,
		// One amount per currency, the first, as ratelimit_balance.
		`{"key":"wallet","provider":"deepseek","model":"","ok":true,"result":"success","status_code":200,"read_at":"2026-11-18T11:06:40Z","source":"probe","windows":[` +
			`{"resource":"balance","window":"","status":"allowed","source":"probe","read_at":"2026-11-18T11:06:40Z","current":true}],"balances":[{"currency":"CNY","amount":110.5},{"currency":"USD","amount":15.25}]}`,
	}
	if len(got) != len(want) {
		t.Errorf("%d targets, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		b, err := json.Marshal(got[i])
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want[i] {
			t.Errorf("target %d:\n%s\nwant\n%s", i, b, want[i])
		}
	}
}

// A proxy reading after a failed probe is current again; the probe's
// failure stays the target's result.
func TestSnapshotReadAfterAFailedProbe(t *testing.T) {
	c, _, targets := newTestCollector(t, config.Key{Name: "k", Provider: "cerebras", Models: []string{"m"}})
	id := targets[0].ID()
	c.Record(id, &prober.Result{Reading: ratelimit.Reading{Time: probeTime, StatusCode: 503}, Outcome: prober.HTTPError})
	c.Observe(id, "cerebras", &ratelimit.Reading{Time: probeTime.Add(time.Second), StatusCode: 200, Observations: []ratelimit.Observation{
		{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 3},
	}})
	got := c.Snapshot(probeTime.Add(2 * time.Second))
	if len(got) != 1 || got[0].OK || got[0].Result != string(prober.HTTPError) || got[0].Source != "proxy" ||
		len(got[0].Windows) != 1 || !got[0].Windows[0].Current {
		b, _ := json.Marshal(got)
		t.Errorf("got %s", b)
	}
}

// errors401 is a probe's error as the prober words a refused key.
type errors401 struct{}

func (errors401) Error() string { return "HTTP 401 (invalid_api_key)" }
