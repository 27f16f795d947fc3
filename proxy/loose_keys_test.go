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

// A gateway in front of a provider reads keys where the provider does
// not: LiteLLM reads x-litellm-api-key before Authorization, and Azure
// API Management Ocp-Apim-Subscription-Key or ?subscription-key=; Azure
// itself reads ?api-key= (its realtime API), and OpenAI a browser's key
// in a WebSocket subprotocol. Under reject, an unknown key
// there does not ride beside a configured one, and under fingerprint the
// answer, which the gateway gave for whichever key it read, is recorded
// under neither; a configured key there alone is that key.
func TestKeysWhereGatewaysRead(t *testing.T) {
	const azureKey = "az-sim-proxy-gateway-0123456789abcdef"
	up := newUpstream(t, okHandler)
	routes := []config.Route{
		{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"},
		{PathPrefix: "/azure/", Upstream: up.URL, Provider: "azure_openai"},
	}
	keys := "  - {name: team-azure, provider: azure_openai, api_key: " + azureKey + ", base_url: \"http://azure.invalid\", models: [d]}\n"
	reject := startProxy(t, setup{unknownKeys: "reject", routes: routes, keys: keys})
	fingerprinting := startProxy(t, setup{unknownKeys: "fingerprint", routes: routes, keys: keys})
	const chat, deployment = "/openai/v1/chat/completions", "/azure/openai/deployments/d/chat/completions?api-version=2024-10-21"
	for _, tc := range []struct {
		name, path string
		header     []string
		known      string // the key recorded, beside none other; "": an unknown key rides along
	}{
		{"x-litellm-api-key", chat, []string{"Authorization", "Bearer " + openAIKey, "X-Litellm-Api-Key", unknownKey}, ""},
		{"x_litellm_api_key", chat, []string{"Authorization", "Bearer " + openAIKey, "x_litellm_api_key", unknownKey}, ""},
		{"Ocp-Apim-Subscription-Key", deployment, []string{"Api-Key", azureKey, "Ocp-Apim-Subscription-Key", unknownKey}, ""},
		{"?api-key=", deployment + "&api-key=" + unknownKey, []string{"Api-Key", azureKey}, ""},
		{"?API_KEY=", deployment + "&API_KEY=" + unknownKey, []string{"Api-Key", azureKey}, ""},
		{"?subscription-key=", deployment + "&subscription-key=" + unknownKey, []string{"Api-Key", azureKey}, ""},
		{"a configured key in x-litellm-api-key alone", chat, []string{"X-Litellm-Api-Key", "Bearer " + openAIKey}, "team-openai"},
		{"a configured key in Ocp-Apim-Subscription-Key alone", deployment, []string{"Ocp-Apim-Subscription-Key", azureKey}, "team-azure"},
		{"a configured key in ?api-key= alone", deployment + "&api-key=" + azureKey, nil, "team-azure"},
		// A browser cannot set headers on a WebSocket: OpenAI's realtime
		// API reads its key from a subprotocol.
		{"a WebSocket subprotocol", chat, []string{"Authorization", "Bearer " + openAIKey, "Sec-Websocket-Protocol", "realtime, openai-insecure-api-key." + unknownKey}, ""},
		{"a configured key in a WebSocket subprotocol alone", chat, []string{"Sec-Websocket-Protocol", "realtime, openai-insecure-api-key." + openAIKey}, "team-openai"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits := up.hits.Load()
			got := do(t, reject.client, newRequest(t, http.MethodPost, reject.url+tc.path, `{"model":"d"}`, tc.header...))
			switch {
			case tc.known == "" && (got.status != http.StatusForbidden || up.hits.Load() != hits):
				t.Errorf("under reject: %d, and the upstream got %d requests; want 403 and none", got.status, up.hits.Load()-hits)
			case tc.known != "" && (got.status != 200 || reject.rec.last(t).Key != tc.known):
				t.Errorf("under reject: %d, last recorded %+v; want 200 under %s", got.status, reject.rec.last(t), tc.known)
			}
			before := len(fingerprinting.rec.all())
			do(t, fingerprinting.client, newRequest(t, http.MethodPost, fingerprinting.url+tc.path, `{"model":"d"}`, tc.header...))
			all := fingerprinting.rec.all()[before:]
			switch {
			case tc.known == "" && len(all) != 0:
				t.Errorf("under fingerprint: recorded %+v, want nothing: the upstream may have read either key", all)
			case tc.known != "" && (len(all) != 1 || all[0].Key != tc.known):
				t.Errorf("under fingerprint: recorded %+v, want %s", all, tc.known)
			}
		})
	}
}
