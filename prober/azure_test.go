package prober

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// An Azure key's probe asks for its api-version, and follows a reload that
// changes it; a key with a bearer_token_file sends the file's token, read
// anew at each probe, in Authorization and no api-key.
func TestAzureProbe(t *testing.T) {
	type sent struct {
		url, apiKey, authorization, body string
	}
	var got sent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = sent{r.URL.RequestURI(), r.Header.Get("Api-Key"), r.Header.Get("Authorization"), string(body)}
		w.Header().Set("x-ratelimit-remaining-requests", "10")
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeToken := func(token string) {
		if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeToken("entra-token-one")

	p := New("test")
	keys := func(apiVersion string) *config.Config {
		return &config.Config{Keys: []config.Key{
			{Name: "key", Provider: "azure_openai", APIKey: canary, BaseURL: srv.URL, Models: []string{"gpt-4o-mini"}, APIVersion: apiVersion},
			{Name: "entra", Provider: "azure_openai", BearerTokenFile: tokenFile, BaseURL: srv.URL, Models: []string{"gpt-4o"}, APIVersion: apiVersion},
		}}
	}
	probe := func(cfg *config.Config, i int) sent {
		t.Helper()
		got = sent{}
		if r := p.Probe(context.Background(), cfg.Targets()[i]); r.Outcome != Success {
			t.Fatalf("outcome %s: %v", r.Outcome, r.Err)
		}
		return got
	}
	const body = `{"max_completion_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`

	ga := keys("2024-10-21")
	if err := p.Apply(ga); err != nil {
		t.Fatal(err)
	}
	if s, want := probe(ga, 0), (sent{"/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21", canary, "", body}); s != want {
		t.Errorf("api key:\n got %+v\nwant %+v", s, want)
	}
	if s, want := probe(ga, 1), (sent{"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "", "Bearer entra-token-one", body}); s != want {
		t.Errorf("bearer token:\n got %+v\nwant %+v", s, want)
	}
	writeToken("entra-token-two")
	if s := probe(ga, 1); s.authorization != "Bearer entra-token-two" {
		t.Errorf("after the token file changed: %+v", s)
	}

	v1 := keys("v1")
	if err := p.Apply(v1); err != nil {
		t.Fatal(err)
	}
	const v1Body = `{"max_completion_tokens":1,"messages":[{"role":"user","content":"Hi"}],"model":"gpt-4o-mini"}`
	if s, want := probe(v1, 0), (sent{"/openai/v1/chat/completions", canary, "", v1Body}); s != want {
		t.Errorf("after a reload to api_version v1:\n got %+v\nwant %+v", s, want)
	}

	// Two keys of one deployment, on two api-versions: two requests.
	both := keys("v1")
	both.Keys = append(both.Keys, config.Key{Name: "ga", Provider: "azure_openai", APIKey: "az-other", BaseURL: srv.URL,
		Models: []string{"gpt-4o-mini"}, APIVersion: "2024-10-21"})
	if err := p.Apply(both); err != nil {
		t.Fatal(err)
	}
	if s, want := probe(both, 2), (sent{"/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21", "az-other", "", body}); s != want {
		t.Errorf("the GA key beside a v1 key of the same deployment:\n got %+v\nwant %+v", s, want)
	}
	if s, want := probe(both, 0), (sent{"/openai/v1/chat/completions", canary, "", v1Body}); s != want {
		t.Errorf("the v1 key beside a GA key of the same deployment:\n got %+v\nwant %+v", s, want)
	}

	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	r := p.Probe(context.Background(), v1.Targets()[1])
	if want := "reading bearer_token_file: open " + tokenFile + ": no such file or directory"; r.Outcome != KeyUnavailable || r.Err == nil || r.Err.Error() != want {
		t.Errorf("without the token file: %s %v, want %s %s", r.Outcome, r.Err, KeyUnavailable, want)
	}
}
