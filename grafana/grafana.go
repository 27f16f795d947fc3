// Package grafana holds the dashboard shipped with the exporter, so that
// the binary can serve the one that matches its metrics.
package grafana

import _ "embed"

// Dashboard is dashboard.json: a classic-JSON Grafana dashboard.
//
//go:embed dashboard.json
var Dashboard []byte
