// Package e2e holds the tests that run the built exporter as users do: as
// the Dockerfile builds it, against the simulator, real Prometheus servers,
// promtool and helm, and the tests that hold the Dockerfile, the compose
// example, the chart and the README's examples to the repository.
package e2e
