package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
)

// geminiShape is what Gemini's generateContent body must hold: contents,
// each with parts of text, and optionally generationConfig, whose
// maxOutputTokens caps the answer. The model is in the path.
type geminiShape struct{}

// geminiFields are the top-level fields generateContent accepts.
var geminiFields = []string{"contents", "generationConfig", "systemInstruction", "safetySettings", "tools", "toolConfig", "cachedContent"}

// geminiConfigFields are the generationConfig fields the simulator accepts.
var geminiConfigFields = []string{
	"maxOutputTokens", "temperature", "topP", "topK", "candidateCount", "stopSequences", "seed",
	"presencePenalty", "frequencyPenalty", "responseMimeType", "responseSchema", "thinkingConfig",
}

type geminiContent struct {
	Role  string `json:"role"`
	Parts []struct {
		Text string `json:"text"`
	} `json:"parts"`
}

// unknownName is what Google answers for a field it does not know.
func unknownName(name string) error {
	return fmt.Errorf("invalid JSON payload received. Unknown name %q: Cannot find field", name)
}

func (geminiShape) parse(body []byte, readErr error, _ string) (call, error) {
	if readErr != nil {
		return call{}, errBodyTooLarge
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || fields == nil {
		return call{}, errNotJSON
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(geminiFields, name) {
			return call{}, unknownName(name)
		}
	}
	c := call{prompt: 8, completion: defaultCompletion}
	var contents []geminiContent
	if json.Unmarshal(fields["contents"], &contents) != nil || len(contents) == 0 {
		return call{}, errors.New("contents is not specified")
	}
	if raw, ok := fields["systemInstruction"]; ok {
		var system geminiContent
		if json.Unmarshal(raw, &system) != nil {
			return call{}, errors.New("systemInstruction: must be a content")
		}
		contents = append(contents, system)
	}
	for i, content := range contents {
		if content.Role != "" && content.Role != "user" && content.Role != "model" {
			return call{}, fmt.Errorf("contents[%d].role: please use a valid role: user, model", i)
		}
		if len(content.Parts) == 0 {
			return call{}, fmt.Errorf("contents[%d].parts: must not be empty", i)
		}
		for _, part := range content.Parts {
			c.prompt += (len(part.Text) + 3) / 4
		}
	}
	if raw, ok := fields["generationConfig"]; ok {
		var config map[string]json.RawMessage
		if json.Unmarshal(raw, &config) != nil {
			return call{}, errors.New("generationConfig: must be an object")
		}
		for _, name := range slices.Sorted(maps.Keys(config)) {
			if !slices.Contains(geminiConfigFields, name) {
				return call{}, unknownName("generationConfig." + name)
			}
		}
		if capValue, ok := config["maxOutputTokens"]; ok && (json.Unmarshal(capValue, &c.completion) != nil || c.completion < 1) {
			return call{}, errors.New("generationConfig.maxOutputTokens: must be a positive integer")
		}
	}
	return c, nil
}

// geminiAnswer is a GenerateContentResponse cut short by maxOutputTokens.
func geminiAnswer(rp reply) any {
	c := rp.call
	return map[string]any{
		"candidates": []any{map[string]any{
			"content":      map[string]any{"parts": []any{map[string]string{"text": "Hi"}}, "role": "model"},
			"finishReason": "MAX_TOKENS",
			"index":        0,
		}},
		"usageMetadata": map[string]int{
			"promptTokenCount":     c.prompt,
			"candidatesTokenCount": c.completion,
			"totalTokenCount":      c.prompt + c.completion,
		},
		"modelVersion": c.model,
		"responseId":   fmt.Sprintf("sim%08d", rp.id),
	}
}

// geminiStatuses are the google.rpc.Code names of each problem.
var geminiStatuses = [...]string{
	notFound:          "NOT_FOUND",
	methodNotAllowed:  "NOT_FOUND",
	invalidRequest:    "INVALID_ARGUMENT",
	unauthorized:      "INVALID_ARGUMENT",
	unknownModel:      "NOT_FOUND",
	unavailable:       "UNAVAILABLE",
	rateLimited:       "RESOURCE_EXHAUSTED",
	queueExceeded:     "UNAVAILABLE",
	insufficientQuota: "RESOURCE_EXHAUSTED",
}

// quotaMessage is what Gemini says with a 429.
const quotaMessage = "You exceeded your current quota, please check your plan and billing details. " +
	"For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."

// geminiErrors are {"error":{"code","message","status","details"}}: an
// invalid key is a 400, as Gemini answers it; an overloaded model a 503.
var geminiErrors = errorShape{
	status: map[problemKind]int{unauthorized: http.StatusBadRequest, queueExceeded: http.StatusServiceUnavailable},
	body: func(p problem, status int) any {
		e := map[string]any{"code": status, "message": p.message, "status": geminiStatuses[p.kind]}
		switch p.kind {
		case unauthorized:
			e["message"] = "API key not valid. Please pass a valid API key."
		case queueExceeded, unavailable:
			e["message"] = "The model is overloaded. Please try again later."
		case insufficientQuota:
			e["message"] = quotaMessage
		case rateLimited:
			e["message"] = quotaMessage
			if p.fault != No429Headers {
				e["details"] = geminiDetails(p)
			}
		}
		return map[string]any{"error": e}
	},
}

// geminiQuotas name the buckets Gemini documents: requests and input
// tokens per minute and per day, as quotaMetric and quotaId (%s: Minute
// or Day). A free-tier key's, as in the observed bodies.
var geminiQuotas = map[string]struct{ metric, id string }{
	"requests":     {"generate_content_free_tier_requests", "GenerateRequestsPer%sPerProjectPerModel-FreeTier"},
	"input_tokens": {"generate_content_free_tier_input_token_count", "GenerateContentInputTokensPerModelPer%s-FreeTier"},
}

// geminiDetails are a 429's QuotaFailure, Help and RetryInfo: a
// violation for each documented bucket that cannot take the request, its
// limit as quotaValue on per-minute quotas only (the observed bodies give
// none for the per-day one), with BadHeaders a quotaValue that is not a
// number.
func geminiDetails(p problem) []any {
	violations := []any{}
	for _, e := range p.exhausted {
		quota, ok := geminiQuotas[e.resource]
		unit := map[string]string{"minute": "Minute", "day": "Day"}[e.window]
		if !ok || unit == "" {
			continue
		}
		v := map[string]any{
			"quotaMetric":     "generativelanguage.googleapis.com/" + quota.metric,
			"quotaId":         fmt.Sprintf(quota.id, unit),
			"quotaDimensions": map[string]string{"location": "global", "model": p.model},
		}
		switch {
		case p.fault == BadHeaders:
			v["quotaValue"] = "unknown"
		case e.window == "minute":
			v["quotaValue"] = strconv.FormatFloat(e.limit, 'f', 0, 64)
		}
		violations = append(violations, v)
	}
	return []any{
		map[string]any{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
		map[string]any{"@type": "type.googleapis.com/google.rpc.Help", "links": []any{map[string]string{
			"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
		}}},
		map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": strconv.Itoa(int(math.Ceil(p.retryAfter))) + "s"},
	}
}
