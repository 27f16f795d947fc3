package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/exporter-toolkit/web"
	"gopkg.in/yaml.v3"

	"github.com/ratelimit-exporter/ratelimit_exporter/provider"
)

// What the proxy does with a request whose key is none of the configured keys.
const (
	UnknownKeysForward     = "forward"     // forward it, record nothing
	UnknownKeysFingerprint = "fingerprint" // forward it, record under key="sha256:<12 hex digits>"
	UnknownKeysReject      = "reject"      // answer 403 without contacting the upstream
)

// DefaultProxy holds the proxy settings a proxy block leaves out. Its
// bounds fit a 128 MB container.
var DefaultProxy = Proxy{
	ListenAddress:           ":10430",
	UnknownKeys:             UnknownKeysForward,
	MaxRequestBytes:         10 * Bytes(units.MiB),
	MaxInflightRequestBytes: 64 * Bytes(units.MiB),
	BodyReadTimeout:         Duration(time.Minute),
	MaxConnections:          1024,
}

// Proxy is the optional transparent proxy: applications send their own
// requests through it with their own keys, and it reads the rate-limit
// headers of the answers, at no cost.
type Proxy struct {
	ListenAddress   string  `yaml:"listen_address"`
	Routes          []Route `yaml:"routes"`
	UnknownKeys     string  `yaml:"unknown_keys"`
	MaxRequestBytes Bytes   `yaml:"max_request_bytes"`
	// MaxInflightRequestBytes bounds the memory of all the request bodies
	// the proxy holds at once; a request that would go over it gets 503.
	MaxInflightRequestBytes Bytes `yaml:"max_inflight_request_bytes"`
	// BodyReadTimeout is how long a request body may take to arrive once
	// its headers have. The response has no timeout: it may stream for minutes.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
	// MaxConnections bounds the client connections open at once; more wait
	// to be accepted.
	MaxConnections  int            `yaml:"max_connections"`
	TLSServerConfig *web.TLSConfig `yaml:"tls_server_config"`
}

// Route sends requests under PathPrefix to Upstream, with the prefix's
// last "/" and what follows it kept: /cerebras/v1/chat/completions goes to
// {upstream}/v1/chat/completions.
type Route struct {
	PathPrefix string `yaml:"path_prefix"`
	Upstream   string `yaml:"upstream"`
	Provider   string `yaml:"provider"`
}

// UnmarshalYAML applies the proxy defaults.
func (p *Proxy) UnmarshalYAML(unmarshal func(any) error) error {
	*p = DefaultProxy
	type plain Proxy
	return unmarshal((*plain)(p))
}

// Bytes is a size written as "10MiB", "512KiB" or a number of bytes.
type Bytes int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *Bytes) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind == yaml.ScalarNode {
		if v, err := units.ParseBase2Bytes(node.Value); err == nil {
			*b = Bytes(v)
			return nil
		}
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf(
		"line %d: invalid size %q: use a number and a unit, such as 512KiB or 10MiB", node.Line, node.Value)}}
}

// String implements fmt.Stringer.
func (b Bytes) String() string { return units.Base2Bytes(b).String() }

func (p *Proxy) validate(fail func(path, format string, args ...any)) {
	if p.ListenAddress == "" {
		fail("proxy.listen_address", "is required, such as \":10430\"")
	}
	switch p.UnknownKeys {
	case UnknownKeysForward, UnknownKeysFingerprint, UnknownKeysReject:
	default:
		fail("proxy.unknown_keys", "unknown value %q: use %s, %s or %s", p.UnknownKeys,
			UnknownKeysForward, UnknownKeysFingerprint, UnknownKeysReject)
	}
	if p.MaxRequestBytes <= 0 {
		fail("proxy.max_request_bytes", "must be greater than zero, got %s", p.MaxRequestBytes)
	}
	if p.MaxInflightRequestBytes < max(p.MaxRequestBytes, 1) {
		fail("proxy.max_inflight_request_bytes", "must be at least max_request_bytes (%s), got %s", p.MaxRequestBytes, p.MaxInflightRequestBytes)
	}
	if p.BodyReadTimeout <= 0 {
		fail("proxy.body_read_timeout", "must be greater than zero, got %s", p.BodyReadTimeout)
	}
	if p.MaxConnections < 1 {
		fail("proxy.max_connections", "must be at least 1, got %d", p.MaxConnections)
	}
	if len(p.Routes) == 0 {
		fail("proxy.routes", "no routes: add at least one path_prefix, upstream and provider")
	}
	seen := map[string]bool{}
	for i, r := range p.Routes {
		at := fmt.Sprintf("proxy.routes[%d]", i)
		switch {
		case !strings.HasPrefix(r.PathPrefix, "/") || !strings.HasSuffix(r.PathPrefix, "/") || len(r.PathPrefix) < 3:
			fail(at+".path_prefix", "%q must start and end with / and name something, such as /cerebras/", r.PathPrefix)
		case r.PathPrefix != cleanPrefix(r.PathPrefix):
			fail(at+".path_prefix", "%q is not a clean path", r.PathPrefix)
		case seen[r.PathPrefix]:
			fail(at+".path_prefix", "duplicate path_prefix %q", r.PathPrefix)
		}
		seen[r.PathPrefix] = true
		checkURL(fail, at+".upstream", r.Upstream)
		p.Routes[i].Upstream = strings.TrimRight(r.Upstream, "/")
		if _, known := provider.Lookup(r.Provider); !known {
			fail(at+".provider", "unknown provider %q: supported: %s", r.Provider, strings.Join(provider.Names(), ", "))
		}
	}
}

// cleanPrefix is prefix without "//", "/./" or "/../" segments.
func cleanPrefix(prefix string) string {
	for _, bad := range []string{"//", "/./", "/../"} {
		if strings.Contains(prefix, bad) {
			return ""
		}
	}
	return prefix
}
