package proxy

import (
	"net/http"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// A Connection header lists names as ReverseProxy reads them: trimmed of
// ASCII space and tab only, and matched as canonical header names. A name
// that the proxy's own reading takes for a key header but ReverseProxy does
// not (a no-break space around it, a Kelvin sign for its k) leaves the key
// header on its way to the upstream: under unknown_keys: reject, it must
// be checked like any key the upstream receives.
func TestConnectionNamesAsReverseProxyReadsThem(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		header     []string
	}{
		{"no-break space", "/openai/", []string{"Connection", "\u00a0Authorization", "Authorization", "Bearer " + unknownKey, "X-Api-Key", openAIKey}},
		{"next line", "/openai/", []string{"Connection", "Authorization\u0085", "Authorization", "Bearer " + unknownKey, "X-Api-Key", openAIKey}},
		{"kelvin sign", "/anthropic/", []string{"Connection", "x-api-\u212aey", "X-Api-Key", unknownKey, "Authorization", "Bearer " + anthropicKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, okHandler)
			e := startProxy(t, setup{unknownKeys: "reject", routes: []config.Route{
				{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"},
				{PathPrefix: "/anthropic/", Upstream: up.URL, Provider: "anthropic"},
			}})
			got := do(t, e.client, newRequest(t, http.MethodPost, e.url+tc.path+"v1/x", `{"model":"m"}`, tc.header...))
			if got.status == 403 {
				up.untouched(t, "the upstream")
				return
			}
			last, _ := up.lastRequest()
			if last == nil {
				t.Fatalf("status %d and the upstream saw nothing", got.status)
			}
			if last.Header.Get("X-Api-Key") == unknownKey || last.Header.Get("Authorization") == "Bearer "+unknownKey {
				t.Errorf("under unknown_keys: reject, status %d: the upstream received the unknown key: %q", got.status, last.Header)
				for _, o := range e.rec.all() {
					t.Errorf("and its answer was recorded under %q", o.Key)
				}
			}
		})
	}
}
