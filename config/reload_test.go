package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReloadGoodBadGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("keys:\n  - name: first\n    api_key: x\n")

	var applied []string
	reg := prometheus.NewPedanticRegistry()
	r, err := NewReloader(Source{Path: path, Explicit: true}.Load, func(c *Config) error {
		applied = append(applied, c.Keys[0].Name)
		return nil
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(successful string) {
		t.Helper()
		want := "# HELP ratelimit_exporter_config_last_reload_successful Whether the last configuration reload attempt was successful.\n" +
			"# TYPE ratelimit_exporter_config_last_reload_successful gauge\n" +
			"ratelimit_exporter_config_last_reload_successful " + successful + "\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ratelimit_exporter_config_last_reload_successful"); err != nil {
			t.Error(err)
		}
	}
	expect("1")

	write("keys:\n  - name: second\n    api_key: x\n    bogus: 1\n")
	err = r.Reload()
	if err == nil || err.Error() != path+`:4: keys[0].bogus: unknown field "bogus" (see the configuration reference in README.md)` {
		t.Errorf("bad reload error = %v", err)
	}
	if got := r.Config().Keys[0].Name; got != "first" {
		t.Errorf("after a bad reload the running config is %q, want first", got)
	}
	expect("0")

	write("keys:\n  - name: third\n    api_key: x\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := r.Config().Keys[0].Name; got != "third" {
		t.Errorf("running config is %q, want third", got)
	}
	expect("1")
	if strings.Join(applied, ",") != "first,third" {
		t.Errorf("applied %v, want first then third", applied)
	}
	if n := testutil.CollectAndCount(reg, "ratelimit_exporter_config_last_reload_success_timestamp_seconds"); n != 1 {
		t.Errorf("success timestamp series = %d, want 1", n)
	}
}
