package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	commoncfg "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"
)

// HTTPClient holds the settings of prometheus/common's HTTP client that make
// sense for a probe. Without them a probe uses no proxy, verifies TLS
// against the system's roots, does not follow redirects, and speaks HTTP/1.1.
type HTTPClient struct {
	TLSConfig             commoncfg.TLSConfig `yaml:"tls_config,omitempty"`
	commoncfg.ProxyConfig `yaml:",inline"`
	// FollowRedirects follows redirects within the base_url's origin;
	// a redirect to another origin is never followed, so the key stays
	// where the config sends it.
	FollowRedirects bool `yaml:"follow_redirects"`
	EnableHTTP2     bool `yaml:"enable_http2"`
}

// ClientConfig returns the settings as prometheus/common's HTTPClientConfig.
func (h *HTTPClient) ClientConfig() commoncfg.HTTPClientConfig {
	return commoncfg.HTTPClientConfig{
		TLSConfig:       h.TLSConfig,
		ProxyConfig:     h.ProxyConfig,
		FollowRedirects: h.FollowRedirects,
		EnableHTTP2:     h.EnableHTTP2,
	}
}

// UnmarshalYAML decodes the block strictly. prometheus/common's types
// report some mistakes without a line; this puts the block's line on them.
func (h *HTTPClient) UnmarshalYAML(node *yaml.Node) error {
	type plain HTTPClient
	return decodeStrict(node, (*plain)(h))
}

var relativeLine = regexp.MustCompile(`^line (\d+): `)

// decodeStrict decodes node into out with unknown fields refused, which
// yaml.Node.Decode does not do, and with errors on the file's lines.
func decodeStrict(node *yaml.Node, out any) error {
	data, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(out)
	if err == nil {
		return nil
	}
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", node.Line, err)}}
	}
	shifted := make([]string, len(typeErr.Errors))
	for i, msg := range typeErr.Errors {
		shifted[i] = relativeLine.ReplaceAllStringFunc(msg, func(prefix string) string {
			n, _ := strconv.Atoi(relativeLine.FindStringSubmatch(prefix)[1])
			return fmt.Sprintf("line %d: ", node.Line+n-1)
		})
	}
	return &yaml.TypeError{Errors: shifted}
}

// validate checks what the client would otherwise find at its first probe:
// the proxy settings, and that the TLS files exist and parse.
func (h *HTTPClient) validate(at string, fail func(path, format string, args ...any)) {
	if err := h.ProxyConfig.Validate(); err != nil {
		fail(at, "%v", err)
	}
	if u := h.ProxyURL.URL; u != nil {
		switch {
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5":
			fail(at+".proxy_url", "%q is not a proxy URL: use http://, https:// or socks5:// and a host", u.Redacted())
		case u.Host == "":
			fail(at+".proxy_url", "%q has no host", u.Redacted())
		}
	}
	if _, err := commoncfg.NewTLSConfig(&h.TLSConfig); err != nil {
		fail(at+".tls_config", "%v", err)
	}
}
