// Package logging builds the exporter's go-kit logger from its flags, and
// the slog view of it that exporter-toolkit takes.
package logging

import (
	"io"
	"log/slog"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	sloggokit "github.com/tjhop/slog-gokit"
)

// Levels and formats the flags accept.
var (
	Levels  = []string{"debug", "info", "warn", "error"}
	Formats = []string{"logfmt", "json"}
)

// Config is what the logging flags set.
type Config struct {
	Level  string
	Format string
}

// AddFlags adds --log.level and --log.format to app.
func AddFlags(app *kingpin.Application) *Config {
	c := &Config{}
	app.Flag("log.level", "Only log messages with the given severity or above. One of: "+join(Levels)).
		Default("info").EnumVar(&c.Level, Levels...)
	app.Flag("log.format", "Output format of log messages. One of: "+join(Formats)).
		Default("logfmt").EnumVar(&c.Format, Formats...)
	return c
}

// New returns the project's logger and an *slog.Logger that writes through it.
func New(w io.Writer, c *Config) (log.Logger, *slog.Logger) {
	var base log.Logger
	if c.Format == "json" {
		base = log.NewJSONLogger(log.NewSyncWriter(w))
	} else {
		base = log.NewLogfmtLogger(log.NewSyncWriter(w))
	}
	var allow level.Option
	var slogLevel slog.Level
	switch c.Level {
	case "debug":
		allow, slogLevel = level.AllowDebug(), slog.LevelDebug
	case "warn":
		allow, slogLevel = level.AllowWarn(), slog.LevelWarn
	case "error":
		allow, slogLevel = level.AllowError(), slog.LevelError
	default:
		allow, slogLevel = level.AllowInfo(), slog.LevelInfo
	}
	filtered := level.NewFilter(base, allow)
	// The slog handler adds its own time and caller.
	slogger := slog.New(sloggokit.NewGoKitHandler(filtered, slogLevel))
	return log.With(filtered, "time", log.DefaultTimestampUTC, "caller", log.DefaultCaller), slogger
}

func join(s []string) string { return strings.Join(s, ", ") }
