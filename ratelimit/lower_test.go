package ratelimit

import (
	"strings"
	"testing"
)

func TestLowerHasPrefix(t *testing.T) {
	for _, name := range []string{
		"X-Litellm-Version", "x-litellm-version", "X-LITELLM-", "X-Litellm", "Llm_provider-X-Ratelimit-Limit-Requests",
		"Date", "", "x-litellm\u212a", "X-Lite\u212Cm-Version", "\u212a-litellm-", "LLM_PROVIDER-\u212a",
	} {
		for _, prefix := range []string{litellmPrefix, llmProviderPrefix, "x-tokenlimit-", ""} {
			want := strings.HasPrefix(strings.ToLower(name), prefix)
			if got := lowerHasPrefix(name, prefix); got != want {
				t.Errorf("lowerHasPrefix(%q, %q) = %v, want %v", name, prefix, got, want)
			}
		}
	}
	// The Kelvin sign lower-cases to an ASCII k.
	if !lowerHasPrefix("X-To\u212aenlimit-Limit", "x-tokenlimit-") {
		t.Error("a name that lower-cases to the prefix through a non-ASCII letter was not matched")
	}
}
