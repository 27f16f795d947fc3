package proxy

import (
	"net/http"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// Under unknown_keys: reject, a value the proxy does not read as a key, in
// a header an upstream may read as a key header, does not ride beside a
// configured key to the upstream: an upstream that parses more loosely
// (Bearer<TAB>key split on any space; X_Api_Key read as X-Api-Key by a CGI
// or WSGI server) would read a key nobody checked. The first case is the
// attacking reviewer's.
func TestLooselyReadKeysAreRefusedUnderReject(t *testing.T) {
	for _, tc := range []struct {
		name, route string
		header      []string
	}{
		{"Bearer and a tab", "/anthropic/", []string{"X-Api-Key", anthropicKey, "Authorization", "Bearer\t" + unknownKey}},
		{"another scheme", "/anthropic/", []string{"X-Api-Key", anthropicKey, "Authorization", "Basic " + unknownKey}},
		{"underscores", "/openai/", []string{"Authorization", "Bearer " + openAIKey, "X_Api_Key", unknownKey}},
		{"underscores, other case", "/anthropic/", []string{"X-Api-Key", anthropicKey, "authorization_", "x", "AUTHORIZATION", "Bearer " + anthropicKey, "x_api_KEY", unknownKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, okHandler)
			e := startProxy(t, setup{unknownKeys: "reject", routes: []config.Route{
				{PathPrefix: "/anthropic/", Upstream: up.URL, Provider: "anthropic"},
				{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"},
			}})
			got := do(t, e.client, newRequest(t, http.MethodPost, e.url+tc.route+"v1/messages", `{"model":"m"}`, tc.header...))
			if last, _ := up.lastRequest(); last != nil {
				t.Errorf("status %d: the upstream received %q beside a configured key", got.status, last.Header)
			}
		})
	}
}
