// Package ratelimit reads provider rate-limit headers into observations.
//
// Names read, in any case:
//
//   - x-ratelimit-{limit|remaining|reset}-{resource}[-{window}]: the last
//     segment is the window only when it is second, minute, hour, day, week
//     or month. A resource's - is _, req is requests, and bare
//     x-ratelimit-{limit|remaining|reset} is requests. x-ratelimit-over-limit
//     is a flag: neither read nor dropped.
//   - x-tokenlimit-{limit|remaining}: tokens.
//   - x-ratelimit-{limit|remaining|reset}-project-tokens (OpenAI) is
//     resource project_tokens, as any other resource.
//   - anthropic-ratelimit-{resource}-{kind}, per minute as Anthropic
//     documents; anthropic-priority-{resource}-{kind} is priority_{resource}
//     and anthropic-fast-{resource}-{kind} is fast_{resource}.
//   - anthropic-ratelimit-unified-{claim}-{utilization|reset|status|limit|
//     remaining} (Claude subscription traffic): a claim that is a count and
//     a unit ("5h", "7d") is the window of resource unified, one with a model
//     after it ("7d_opus") the window of unified_{model}, any other
//     ("overage") the resource unified_{claim} with window "".
//     anthropic-ratelimit-unified-{status|reset|...} without a claim is
//     resource unified, window "". Unified names that end in no figure
//     (representative-claim, fallback-percentage) are not read.
//   - azure-openai-deployment-utilization (Azure OpenAI provisioned
//     deployments): a percentage, with or without its sign, read as the
//     utilization of resource deployment.
//   - llm_provider-{name}: a provider's header that a LiteLLM gateway
//     forwards, read as the provider's own. When a response carries any
//     llm_provider-* or x-litellm-* header, its unprefixed x-ratelimit-*
//     are the gateway's: resource litellm_{resource}, window "" unless
//     named.
//   - RateLimit-Policy and RateLimit, the IETF HTTPAPI draft from draft-08 on:
//     structured-field Lists (RFC 9651) of Items named by a String or Token,
//     the resource as named. A policy's q is its limit and w its window in
//     seconds (60, 3600, 86400 are minute, hour, day; other n is "{n}s"); a w
//     that is not a positive Integer drops the policy. A RateLimit member's r
//     is the remaining and t the reset, in the window of the first policy of
//     its name.
//   - RateLimit-Limit, -Remaining and -Reset (draft-06 and before): requests.
//     A RateLimit-Limit List ("100, 100;w=60") gives all three the w of the
//     first member whose quota is the limit.
//
// A resource named in more than 128 bytes, with its window, is dropped.
// A window that neither the name nor a policy gives is the Parser's Windows
// for the resource, else "". Values are finite, non-negative decimals (-1,
// which some APIs send for "unknown", is dropped as invalid); resets may
// also be Go durations ("6m0s"), RFC 3339 times or Unix epoch seconds or
// milliseconds, counted from the response's Date, else the caller's clock.
// A utilization is the share used, from 0 to 1; a status is one of the
// words allowed, allowed_warning or rejected (another is dropped). Outside
// the structured fields, repeated values count only when they agree.
//
// Reading.RetryAfter is retry-after-ms or x-ms-retry-after-ms, else
// Retry-After; Classify says why a request was refused.
//
// Every value a rate-limit header could hold is an observation or a drop: one
// per header, one per RateLimit-Policy member, two (r and t) per RateLimit
// member, one for a structured field that is no List. Past MaxObservations,
// the first in sort order are kept, so map order never changes the result.
package ratelimit
