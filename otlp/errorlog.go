package otlp

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/go-logr/logr"
	"github.com/jonboulle/clockwork"
)

// errorLog logs the SDK's errors at most once per interval, with the
// number it left out since the last one.
type errorLog struct {
	logger   log.Logger
	clock    clockwork.Clock
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newErrorLog(logger log.Logger, clock clockwork.Clock, interval time.Duration) *errorLog {
	return &errorLog{logger: logger, clock: clock, interval: interval}
}

// Handle implements otel.ErrorHandler.
func (l *errorLog) Handle(err error) {
	l.mu.Lock()
	now := l.clock.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.interval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	level.Error(l.logger).Log("msg", "OTLP push", "err", cut(err.Error()), "errors_not_logged", suppressed, "next_log_after", l.interval)
}

// maxErrorBytes bounds a logged error: the SDK's holds the endpoint's
// answer, up to 4 MiB of it.
const maxErrorBytes = 1 << 10

// cut returns msg, or its start and how much was left out if it is longer
// than maxErrorBytes.
func cut(msg string) string {
	if len(msg) <= maxErrorBytes {
		return msg
	}
	return strings.ToValidUTF8(msg[:maxErrorBytes], "") + fmt.Sprintf("... (%d bytes left out)", len(msg)-maxErrorBytes)
}

// newLogr is the SDK's internal logger: its errors go to errorLog and its
// warnings to logger, each without its key-value pairs, which may hold an
// OTEL_EXPORTER_OTLP_HEADERS value; its info and debug lines are dropped.
func newLogr(logger log.Logger, errors *errorLog) logr.Logger {
	return logr.New(&logSink{logger: logger, errors: errors})
}

type logSink struct {
	logger log.Logger
	errors *errorLog
}

func (s *logSink) Init(logr.RuntimeInfo)          {}
func (s *logSink) Enabled(v int) bool             { return v <= 1 }
func (s *logSink) WithValues(...any) logr.LogSink { return s }
func (s *logSink) WithName(string) logr.LogSink   { return s }
func (s *logSink) Error(err error, msg string, _ ...any) {
	s.errors.Handle(fmt.Errorf("%s: %w", msg, err))
}
func (s *logSink) Info(v int, msg string, _ ...any) {
	if v <= 1 {
		level.Warn(s.logger).Log("msg", "OpenTelemetry SDK: "+msg)
	}
}
