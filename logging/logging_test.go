package logging

import (
	"bytes"
	"strings"
	"testing"

	"github.com/go-kit/log/level"
)

func TestLevelsAndFormats(t *testing.T) {
	var buf bytes.Buffer
	logger, slogger := New(&buf, &Config{Level: "warn", Format: "json"})
	level.Info(logger).Log("msg", "hidden")
	level.Warn(logger).Log("msg", "shown")
	slogger.Info("hidden too")
	slogger.Error("from slog")
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"msg":"shown"`) || !strings.Contains(lines[0], `"level":"warn"`) ||
		!strings.Contains(lines[1], `"msg":"from slog"`) || !strings.Contains(lines[1], `"level":"error"`) {
		t.Errorf("output:\n%s", out)
	}
}
