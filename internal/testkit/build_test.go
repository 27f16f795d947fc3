package testkit

import (
	"slices"
	"testing"
)

// The Dockerfile's make line, its build arguments given or defaulted.
func TestDockerMake(t *testing.T) {
	const dockerfile = `ARG GO_VERSION=1.26.8
FROM golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
ARG REVISION=unknown
RUN make build BIN=/out/x \
      VERSION="${VERSION}" REVISION="${REVISION}" BUILD_USER=docker
`
	got, err := dockerMake(dockerfile, map[string]string{"VERSION": "9.8.7"})
	want := []string{"make", "build", "BIN=/out/x", "VERSION=9.8.7", "REVISION=unknown", "BUILD_USER=docker"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{
		"RUN go build -o /out/x .\n",
		"RUN make build VERSION=1\n",
		"RUN make build BIN=/out/x VERSION=${NOPE}\n",
	} {
		if got, err := dockerMake(bad, nil); err == nil {
			t.Errorf("%q: %q, want an error", bad, got)
		}
	}
}

// The module version of Prometheus 3 reads as the release it is.
func TestPrometheus3Release(t *testing.T) {
	if got := Prometheus3Release(); got != "3.16.0" {
		t.Errorf("Prometheus3Release() = %q for %s, want 3.16.0", got, Prometheus3Version)
	}
}
