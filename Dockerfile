# syntax=docker/dockerfile:1
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t ratelimit_exporter .
#   docker run -p 10429:10429 -e CEREBRAS_API_KEY ratelimit_exporter
#
# With no config file the exporter uses its built-in default config, which
# reads CEREBRAS_API_KEY. To use a config file, mount it at the default path,
# /etc/ratelimit_exporter/ratelimit_exporter.yml (the working directory).

# A pinned patch release of the Go minor version in go.mod.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
# The Makefile's build and flags (make comes with the golang image). The
# binary tests build the exporter with this line (internal/testkit).
RUN make build BIN=/out/ratelimit_exporter \
      VERSION="${VERSION}" REVISION="${REVISION}" BRANCH="${BRANCH}" BUILD_USER=docker

# Static binary, CA certificates, no shell, user nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ratelimit_exporter /bin/ratelimit_exporter
WORKDIR /etc/ratelimit_exporter
USER 65532:65532
EXPOSE 10429
ENTRYPOINT ["/bin/ratelimit_exporter"]
