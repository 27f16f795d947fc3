package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Azure names the deployment in the path: the proxy records it as the
// model whatever the body says (no model, for a name no label should
// show), and on the v1 API, whose paths name none, the body's model. A Microsoft Entra ID token identifies the key whose
// bearer_token_file holds it.
func TestAzureDeploymentsAndTokens(t *testing.T) {
	const (
		azureKey   = "az-sim-proxy-azure-0123456789abcdef"
		entraToken = "eyJ0eXAiOiJKV1QifQ.sim-proxy-entra-0123456789"
	)
	sim := simulator.NewDialect(simulator.AzureOpenAI, "gpt-4o-mini", "has space")
	sim.SetClock(func() time.Time { return start })
	sim.AddKey(azureKey, simulator.Limits{"requests": {"minute": 8}, "tokens": {"minute": 640}})
	sim.AddKey(entraToken, simulator.Limits{"requests": {"minute": 8}, "tokens": {"minute": 640}})
	up := httptest.NewServer(sim)
	t.Cleanup(up.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(entraToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startProxy(t, setup{
		routes: []config.Route{{PathPrefix: "/azure/", Upstream: up.URL, Provider: "azure_openai"}},
		keys: fmt.Sprintf("  - {name: team-azure, provider: azure_openai, api_key: %s, base_url: %q, models: [gpt-4o-mini]}\n"+
			"  - {name: team-entra, provider: azure_openai, bearer_token_file: %s, base_url: %[2]q, models: [gpt-4o-mini]}\n",
			azureKey, up.URL, tokenFile),
	})
	deploymentPath := e.url + "/azure/openai/deployments/%s/chat/completions?api-version=2024-10-21"
	for _, tc := range []struct {
		name, url, body string
		header          []string
		key, model      string
	}{
		{"the deployment's path, no model in the body", fmt.Sprintf(deploymentPath, "gpt-4o-mini"),
			`{"messages":[{"role":"user","content":"Hi"}]}`, []string{"Api-Key", azureKey}, "team-azure", "gpt-4o-mini"},
		{"the path over the body", fmt.Sprintf(deploymentPath, "gpt-4o-mini"),
			`{"model":"what-the-body-says","messages":[{"role":"user","content":"Hi"}]}`, []string{"Api-Key", azureKey}, "team-azure", "gpt-4o-mini"},
		// Azure serves the path's deployment, whatever the body says: its
		// limits are not the body's model's.
		{"a deployment no label should show: none, not the body's", fmt.Sprintf(deploymentPath, "has%20space"),
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}`, []string{"Api-Key", azureKey}, "team-azure", ""},
		{"the v1 API with an Entra ID token", e.url + "/azure/openai/v1/chat/completions",
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}`, []string{"Authorization", "Bearer " + entraToken}, "team-entra", "gpt-4o-mini"},
	} {
		got := do(t, e.client, newRequest(t, http.MethodPost, tc.url, tc.body, tc.header...))
		if got.status != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.name, got.status, got.body)
		}
		if o := e.rec.last(t); o.Key != tc.key || o.Model != tc.model || o.Provider != "azure_openai" || len(o.Observations) != 2 {
			t.Errorf("%s: recorded %+v, want key %s, model %s", tc.name, o, tc.key, tc.model)
		}
	}
}
