package simulator

import (
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// azureSpec is Azure OpenAI's chat completions of a deployment.
func azureSpec() *spec {
	return &spec{
		model: "gpt-4o-mini", method: http.MethodPost, path: "/chat/completions", key: azureKey, route: azureRoute,
		request: &requestShape{capField: "max_completion_tokens", roles: chatRoles, optional: chatFields},
		headers: []pair{
			{"x-ratelimit-%s-requests", "requests", minute, true},
			{"x-ratelimit-%s-tokens", "tokens", minute, true},
		},
		remainingOnly: true, retryAfterMs: true, utilization: "azure-openai-deployment-utilization",
		reset: wholeSeconds, errors: azureErrors, reply: chatCompletion, stream: chatStream,
	}
}

// azureKey reads an api-key, or a Microsoft Entra ID token as
// Authorization: Bearer.
func azureKey(h http.Header) (string, bool) {
	if key := h.Get("Api-Key"); key != "" {
		return key, true
	}
	return bearerKey(h)
}

// azureAPIVersion is the shape of Azure's dated api-versions.
var azureAPIVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)

// azureRoute reads Azure's path and query: the deployment of
// .../openai/deployments/{deployment}/chat/completions, which takes an
// api-version (without one Azure answers 404), or none on the v1 API's
// .../openai/v1/chat/completions, whose body's model names it.
func azureRoute(r *http.Request) (deployment string, refused *problem) {
	if strings.HasSuffix(r.URL.Path, "/openai/v1/chat/completions") {
		return "", nil
	}
	notFound := &problem{kind: notFound, message: "Resource not found"}
	_, rest, found := strings.Cut(r.URL.Path, "/openai/deployments/")
	deployment, operation, _ := strings.Cut(rest, "/")
	if !found || deployment == "" || operation != "chat/completions" {
		return "", notFound
	}
	switch version := r.URL.Query().Get("api-version"); {
	case version == "":
		return "", notFound
	case !azureAPIVersion.MatchString(version):
		return "", &problem{kind: invalidRequest, message: "API version not supported"}
	}
	return deployment, nil
}

// azureCodes are the codes of Azure's own errors; the others are the
// status's number, as a string.
var azureCodes = map[problemKind]string{
	invalidRequest:    "BadRequest",
	unknownModel:      "DeploymentNotFound",
	insufficientQuota: "insufficient_quota",
}

// azureErrors are {"error":{"code","message"}}, the code a string.
var azureErrors = errorShape{body: func(p problem, status int) any {
	code, ok := azureCodes[p.kind]
	if !ok {
		code = strconv.Itoa(status)
	}
	message := p.message
	switch p.kind {
	case unauthorized:
		message = "Access denied due to invalid subscription key or wrong API endpoint. " +
			"Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
	case unknownModel:
		message = "The API deployment for this resource does not exist. " +
			"If you created the deployment within the last 5 minutes, please wait a moment and try again."
	case rateLimited:
		limit := map[bool]string{true: "call", false: "token"}[countsRequests(p.resource)]
		message = fmt.Sprintf("Requests to the ChatCompletions_Create Operation under Azure OpenAI API have exceeded %s rate limit "+
			"of your current AIServices S0 pricing tier. Please retry after %d seconds.", limit, int(math.Ceil(p.retryAfter)))
	}
	return map[string]any{"error": map[string]string{"code": code, "message": message}}
}}

// utilizationPercent is the share of a bucket in use, in percent to a
// tenth, with its sign: "12.5%".
func utilizationPercent(b *bucket) string {
	used := (b.limit - math.Max(0, b.level)) / b.limit * 100
	return strconv.FormatFloat(math.Round(used*10)/10, 'f', -1, 64) + "%"
}
