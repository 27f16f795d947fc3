package provider

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// AzureAPIVersion is the api-version an azure_openai key probes with when
// it gives none: the latest GA release of Azure OpenAI's inference API,
// whose chat completions take max_completion_tokens.
const AzureAPIVersion = "2024-10-21"

// AzureV1 is the api_version that selects Azure's v1 API: the deployment
// is the body's model, and the path carries no api-version.
const AzureV1 = "v1"

// azureChatCompletions is Azure OpenAI's chat completions of a deployment:
// a model is a deployment name, and the key goes in api-key.
type azureChatCompletions struct{}

func (azureChatCompletions) Request(baseURL, deployment string, o Options) Request {
	fields := map[string]any{
		"messages": []message{{Role: "user", Content: ProbeMessage}},
		// Azure reserves this against the deployment's tokens per minute.
		"max_completion_tokens": 1,
	}
	var u string
	if o.APIVersion == AzureV1 {
		fields["model"] = deployment
		u = baseURL + "/openai/v1/chat/completions"
	} else {
		u = baseURL + "/openai/deployments/" + url.PathEscape(deployment) + "/chat/completions?api-version=" +
			url.QueryEscape(cmp.Or(o.APIVersion, AzureAPIVersion))
	}
	body, _ := json.Marshal(fields)
	return Request{
		Method: http.MethodPost,
		URL:    u,
		Body:   body,
		Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
	}
}

func (azureChatCompletions) KeyHeader() string { return "Api-Key" }
func (a azureChatCompletions) Authorize(h http.Header, apiKey string) {
	setKey(h, a.KeyHeader(), apiKey)
}

// Read reads the body as OpenAI's: Azure's answers carry its usage, and its
// own error codes ("429", "DeploymentNotFound") are no plain codes.
func (azureChatCompletions) Read(body []byte) Answer { return chatCompletions{}.Read(body) }

func (azureChatCompletions) Free() bool       { return false }
func (azureChatCompletions) NamesModel() bool { return true }

// maxDeploymentBytes bounds a deployment name read from a path; Azure's
// are at most 64 characters.
const maxDeploymentBytes = 64

// azureDeployment reads the deployment from a path of Azure's
// /openai/deployments/{deployment}/... API; the v1 API's paths name none.
// Only a name of visible ASCII is read, never one a label would garble:
// another gives "", never the body's model, which Azure does not serve.
func azureDeployment(path string) (string, bool) {
	_, rest, found := strings.Cut(path, "/openai/deployments/")
	if !found {
		return "", false
	}
	deployment, _, found := strings.Cut(rest, "/")
	if !found {
		return "", false
	}
	if deployment == "" || len(deployment) > maxDeploymentBytes ||
		strings.ContainsFunc(deployment, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "", true
	}
	return deployment, true
}
