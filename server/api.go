package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-kit/log/level"

	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// LimitsPath serves what is known of every key and model as JSON, in the
// schema of package snapshot.
const LimitsPath = "/api/v1/limits"

// limitsHandler serves the JSON view: every target, or those a filter
// selects: ?key=NAME and ?model=MODEL, each repeatable; a target matches
// when its key is one of the keys given, if any, and its model one of the
// models given, if any. A filtered report leaves out the admin sources,
// and its ok covers the targets it holds.
func limitsHandler(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		query := r.URL.Query()
		if err := checkLimitsQuery(query); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		report := o.Limits(time.Now())
		keys, models := query["key"], query["model"]
		if keys != nil || models != nil {
			filtered := make([]snapshot.Target, 0, len(report.Targets)) // never null, and Limits's slice untouched
			known := make([]bool, len(keys))
			for _, t := range report.Targets {
				named := false
				for i, key := range keys {
					if key == t.Key {
						known[i], named = true, true
					}
				}
				if (keys == nil || named) && (models == nil || slices.Contains(models, t.Model)) {
					filtered = append(filtered, t)
				}
			}
			if i := slices.Index(known, false); i >= 0 {
				// Never repeated back: it could be a secret pasted by mistake.
				http.Error(w, fmt.Sprintf("parameter key (the %s given): no key of this name is known", ordinal(i+1)), http.StatusBadRequest)
				return
			}
			report.Targets, report.Admin = filtered, nil
			report.OK = report.Healthy()
		}
		w.Header().Set("Content-Type", "application/json")
		// The encoder writes the report once it is whole, in one write:
		// a slow reader then holds no slot of --web.max-requests.
		out := &releasingWriter{ResponseWriter: w, r: r}
		if err := json.NewEncoder(out).Encode(report); err != nil {
			if !out.wrote {
				level.Error(o.Logger).Log("msg", "Error encoding the limits", "err", err)
				http.Error(w, "Error encoding the limits", http.StatusInternalServerError)
				return
			}
			level.Debug(o.Logger).Log("msg", "Error writing the limits", "err", err)
		}
	})
}

// checkLimitsQuery refuses parameters the JSON view does not know, so that
// a misspelt filter is not taken for no filter.
func checkLimitsQuery(query url.Values) error {
	for _, name := range slices.Sorted(maps.Keys(query)) { // the same message every time
		values := query[name]
		switch name {
		case "key":
			if slices.Contains(values, "") {
				return errors.New("parameter key is empty: give a configured key name")
			}
		case "model":
			// "" is the model of a key probed once for all its models.
		case "":
			return fmt.Errorf("a parameter without a name: %s takes key=NAME and model=MODEL, each repeatable", LimitsPath)
		default:
			if !safeName(name) {
				name = "(not repeated)"
			}
			return fmt.Errorf("unknown parameter %s: %s takes key=NAME and model=MODEL, each repeatable", name, LimitsPath)
		}
	}
	return nil
}

// safeName reports whether a parameter name may be repeated back: a short
// word, which a secret pasted by mistake would not be.
func safeName(name string) bool {
	return len(name) > 0 && len(name) <= 16 && strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_.") == ""
}

// ordinal is 1st, 2nd, 3rd, 4th, ...
func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprint(n) + suffix
}

// releasingWriter gives back r's slot of --web.max-requests at its first
// write, when the answer is ready and only writing it is left.
type releasingWriter struct {
	http.ResponseWriter
	r     *http.Request
	wrote bool
}

func (w *releasingWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.wrote = true
		releaseSlot(w.r)
	}
	return w.ResponseWriter.Write(p)
}
