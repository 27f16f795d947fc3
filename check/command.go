package check

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/admin"
	"github.com/ratelimit-exporter/ratelimit_exporter/adminpoll"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
)

// Command runs the check command: it probes every key and model of the
// config that load returns once, reads every admin source's rate limits
// once, writes the report to stdout in format and returns the exit code: 0
// if every probe and every admin source read rate limits, 1 otherwise, 130
// when ctx ended first.
func Command(ctx context.Context, load func() (*config.Config, error), format, userAgent string, stdout, stderr io.Writer) int {
	if !slices.Contains(Formats, format) {
		fmt.Fprintf(stderr, "--output=%q: want one of %s\n", format, strings.Join(Formats, ", "))
		return 1
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "Config is invalid:\n%v\n", err)
		return 1
	}
	p := prober.New(userAgent)
	if err := p.Apply(cfg); err != nil {
		fmt.Fprintf(stderr, "Config is invalid:\n%v\n", err)
		return 1
	}
	type adminReads struct {
		reads []adminpoll.Read
		err   error
	}
	admin := make(chan adminReads, 1)
	go func() {
		reads, err := adminpoll.ReadOnce(ctx, cfg)
		admin <- adminReads{reads, err}
	}()
	report := Run(ctx, cfg, p, time.Now)
	read := <-admin
	if read.err != nil {
		fmt.Fprintf(stderr, "Config is invalid:\n%v\n", read.err)
		return 1
	}
	addAdmin(&report, cfg, read.reads)
	if ctx.Err() != nil {
		// What the cancelled probes would have read is unknown: a table of
		// them would only say so a thousand times.
		fmt.Fprintln(stderr, "Interrupted: the probes were cancelled; nothing to report.")
		return 130
	}
	if err := Write(stdout, format, report); err != nil {
		fmt.Fprintln(stderr, "Error writing the report:", err)
		return 1
	}
	if !report.OK {
		return 1
	}
	return 0
}

// ConfigCommand implements --config.check: it loads the config, prints
// what it would probe, and returns the exit code.
func ConfigCommand(load func() (*config.Config, error), stdout, stderr io.Writer) int {
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "Config is invalid:\n%v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Config is valid: %d keys, %d key and model pairs to probe, %s mode",
		len(cfg.Keys), len(cfg.Targets()), cfg.Probe.Mode)
	if cfg.Probe.Mode == config.ModeInterval {
		fmt.Fprintf(stdout, ", every %s", cfg.Probe.Interval)
	}
	fmt.Fprintln(stdout)
	for i := range cfg.Keys {
		k := &cfg.Keys[i]
		// A key probed apart from the others says so: its own
		// probe_interval, or its provider's minimum (Gemini's hour).
		every := ""
		if period := cfg.Probe.Period(k); k.ProbeInterval != nil || cfg.Probe.Mode == config.ModeInterval && period != time.Duration(cfg.Probe.Interval) {
			every = fmt.Sprintf(", every %s", config.Duration(period))
		}
		if len(k.Models) == 1 && k.Models[0] == "" {
			fmt.Fprintf(stdout, "  %s: %s %s, one probe per key%s\n", k.Name, k.Provider, k.BaseURL, every)
			continue
		}
		fmt.Fprintf(stdout, "  %s: %s %s, models %v%s\n", k.Name, k.Provider, k.BaseURL, k.Models, every)
	}
	for i := range cfg.Admin {
		a := &cfg.Admin[i]
		// Where the admin key goes: the documented host unless base_url says otherwise.
		base := a.BaseURL
		switch {
		case base != "":
		case a.Provider == config.AdminOpenAI:
			base = admin.OpenAIBaseURL
		default:
			base = admin.AnthropicBaseURL
		}
		var keys []string
		for j := range cfg.Keys {
			if cfg.Keys[j].Admin == a.Name {
				keys = append(keys, cfg.Keys[j].Name)
			}
		}
		fmt.Fprintf(stdout, "  admin source %s: %s %s, every %s, limits of keys %v, %d budgets\n",
			a.Name, a.Provider, base, a.Interval, keys, len(a.Budgets))
	}
	return 0
}
