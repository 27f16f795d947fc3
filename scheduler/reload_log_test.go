package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/jonboulle/clockwork"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/history"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// A probe that ends after a reload removed its target, or changed its
// key's settings, says so in its log and schedules nothing: its entry
// names no next probe.
func TestProbeOutAcrossAReloadSaysSoInItsLog(t *testing.T) {
	key := config.Key{Name: "k", Provider: "openai", APIKey: keyA, BaseURL: "http://127.0.0.1:1", Models: []string{"m"}}
	other := config.Key{Name: "other", Provider: "openai", APIKey: keyB, BaseURL: "http://127.0.0.1:1", Models: []string{"m"}}
	moved := key
	moved.BaseURL = "http://127.0.0.1:2"
	for _, tc := range []struct {
		name  string
		after []config.Key
		want  string
	}{
		{"removed", []config.Key{other}, `msg="A reload removed the target while the probe was out: nothing more is scheduled"`},
		{"settings changed", []config.Key{moved}, `msg="The key's settings changed while the probe was out: its result moves no timing, and the key is probed again as if new"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC))
			started, release := make(chan struct{}, 1), make(chan struct{})
			p := proberFunc(func(ctx context.Context, tg config.Target) prober.Result {
				if tg.Key.Name == "k" && tg.Key.BaseURL == key.BaseURL {
					started <- struct{}{}
					<-release
				}
				if tg.Key.Name == "k" && tg.Key.BaseURL == moved.BaseURL {
					// The moved key's probe, due at once on the same fake
					// clock: left out until Stop cancels it, so that its
					// entry cannot pass for the first probe's.
					<-ctx.Done()
					return prober.Result{Err: ctx.Err()}
				}
				return prober.Result{Reading: ratelimit.Reading{Time: clock.Now(), StatusCode: 200,
					Observations: []ratelimit.Observation{{Kind: ratelimit.Remaining, Resource: "requests", Value: 1}}}, Outcome: prober.Success}
			})
			before := &config.Config{Probe: intervalProbe(time.Minute, 4, 1), Keys: []config.Key{key}}
			after := &config.Config{Probe: intervalProbe(time.Minute, 4, 1), Keys: tc.after}
			c := collector.New()
			c.Apply(before)
			s := newScheduler(p, c, log.NewNopLogger(), clock, noJitter)
			h := history.New(10)
			s.KeepHistory(h)
			s.Apply(before)
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("no probe was sent")
			}
			c.Apply(after)
			s.Apply(after)
			close(release)
			s.Stop() // waits for the probe to be recorded
			var entry *history.Entry
			for _, e := range h.Recent() {
				if e.Target.Key == "k" && e.Started.Equal(clock.Now()) && e.Source == history.Probe && entry == nil {
					entry = e
				}
			}
			if entry == nil {
				t.Fatalf("no entry of the first probe in %d entries", len(h.Recent()))
			}
			var out strings.Builder
			entry.WriteLog(&out)
			if !strings.Contains(out.String(), tc.want) || strings.Contains(out.String(), "Next probe due") {
				t.Errorf("log:\n%s\nwant %s and no next probe", out.String(), tc.want)
			}
		})
	}
}
