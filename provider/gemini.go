package provider

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	// Gemini's daily quotas reset at midnight Pacific time: the zone must be
	// known where the system has no time zone database.
	_ "time/tzdata"
	"unicode"

	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// generateContent is Gemini's generateContent: one user part, one output
// token at most. Gemini sends no rate-limit headers; a 429's body names
// each quota that ran out (google.rpc.QuotaFailure) and the wait it asks
// for (google.rpc.RetryInfo).
type generateContent struct {
	now func() time.Time // for the reset of daily quotas
}

func (generateContent) Request(baseURL, model string, _ Options) Request {
	body, _ := json.Marshal(map[string]any{
		"contents":         []map[string]any{{"role": "user", "parts": []map[string]string{{"text": ProbeMessage}}}},
		"generationConfig": map[string]int{"maxOutputTokens": 1},
	})
	return Request{
		Method: http.MethodPost,
		URL:    baseURL + "/models/" + url.PathEscape(model) + ":generateContent",
		Body:   body,
		Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
	}
}

func (generateContent) KeyHeader() string                        { return "X-Goog-Api-Key" }
func (g generateContent) Authorize(h http.Header, apiKey string) { setKey(h, g.KeyHeader(), apiKey) }
func (generateContent) Free() bool                               { return false }
func (generateContent) NamesModel() bool                         { return true }

// Types of the google.rpc details Read reads.
const (
	quotaFailureType = "type.googleapis.com/google.rpc.QuotaFailure"
	retryInfoType    = "type.googleapis.com/google.rpc.RetryInfo"
)

func (g generateContent) Read(body []byte) Answer {
	var b struct {
		Candidates    json.RawMessage `json:"candidates"`
		UsageMetadata *struct {
			TotalTokenCount float64 `json:"totalTokenCount"`
		} `json:"usageMetadata"`
		Error *struct {
			Status  json.RawMessage `json:"status"`
			Details []struct {
				Type       string          `json:"@type"`
				RetryDelay json.RawMessage `json:"retryDelay"`
				Violations []violation     `json:"violations"`
			} `json:"details"`
		} `json:"error"`
	}
	// streamGenerateContent without alt=sse answers a JSON array, its
	// errors too: the first element says it.
	var stream []json.RawMessage
	if json.Unmarshal(body, &stream) == nil && len(stream) > 0 {
		body = stream[0]
	}
	if json.Unmarshal(body, &b) != nil {
		return Answer{}
	}
	var a Answer
	if b.Error == nil {
		a.Served = b.UsageMetadata != nil || len(b.Candidates) > 0
		if b.UsageMetadata != nil {
			a.Tokens = nonNegative(b.UsageMetadata.TotalTokenCount)
		}
		return a
	}
	var status string
	if json.Unmarshal(b.Error.Status, &status) == nil && rpcCodes[status] {
		a.ErrorCode = strings.ToLower(status)
	}
	var violations []violation
	for _, d := range b.Error.Details {
		switch d.Type {
		case retryInfoType:
			if wait, ok := protoDuration(d.RetryDelay); ok {
				a.RetryAfter = wait
			} else {
				a.Dropped++
			}
		case quotaFailureType:
			violations = append(violations, d.Violations...)
		}
	}
	g.readViolations(&a, violations)
	return a
}

// rpcCodes are the names of google.rpc.Code, the only statuses Google's
// APIs answer with: a status is taken from them, never from the body's
// text, which could echo the key.
var rpcCodes = map[string]bool{
	"CANCELLED": true, "UNKNOWN": true, "INVALID_ARGUMENT": true, "DEADLINE_EXCEEDED": true, "NOT_FOUND": true,
	"ALREADY_EXISTS": true, "PERMISSION_DENIED": true, "RESOURCE_EXHAUSTED": true, "FAILED_PRECONDITION": true,
	"ABORTED": true, "OUT_OF_RANGE": true, "UNIMPLEMENTED": true, "INTERNAL": true, "UNAVAILABLE": true,
	"DATA_LOSS": true, "UNAUTHENTICATED": true,
}

// violation is one quota a QuotaFailure says ran out.
type violation struct {
	QuotaMetric string          `json:"quotaMetric"`
	QuotaID     string          `json:"quotaId"`
	QuotaValue  json.RawMessage `json:"quotaValue"` // an int64, which proto3 JSON writes as a string
}

// readViolations adds each quota that ran out as a window with nothing
// remaining: its limit when the violation gives it, and its reset: the
// next midnight Pacific time for a daily quota, else the wait the answer
// asks for. Violations of one resource and window keep the least limit.
func (g generateContent) readViolations(a *Answer, violations []violation) {
	type window struct{ resource, window string }
	limits := map[window]float64{} // -1: none given
	var order []window
	for _, v := range violations {
		w := window{geminiResource(v.QuotaID, v.QuotaMetric), geminiWindow(v.QuotaID)}
		if w.resource == "" {
			a.Dropped++
			continue
		}
		limit, ok := quotaValue(v.QuotaValue)
		if !ok {
			a.Dropped++
		}
		known, seen := limits[w]
		if !seen {
			if len(order) >= ratelimit.MaxObservations/3 {
				a.Dropped++
				continue
			}
			order = append(order, w)
			known = -1
		}
		if limit >= 0 && (known < 0 || limit < known) {
			known = limit
		}
		limits[w] = known
	}
	for _, w := range order {
		add := func(kind ratelimit.Kind, v float64) {
			a.Observations = append(a.Observations, ratelimit.Observation{Kind: kind, Resource: w.resource, Window: w.window, Value: v})
		}
		if limit := limits[w]; limit >= 0 {
			add(ratelimit.Limit, limit)
		}
		add(ratelimit.Remaining, 0)
		switch {
		case w.window == "day":
			add(ratelimit.Reset, untilPacificMidnight(g.now()).Seconds())
		case a.RetryAfter > 0:
			add(ratelimit.Reset, a.RetryAfter.Seconds())
		}
	}
}

// geminiWindows are the windows quota ids name, as "Per<Unit>".
var geminiWindows = map[string]string{"Second": "second", "Minute": "minute", "Hour": "hour", "Day": "day", "Week": "week", "Month": "month"}

// geminiWindow reads the window of a quota id such as
// GenerateRequestsPerMinutePerProjectPerModel-FreeTier: the unit after a
// "Per" (the others name the quota's scope: project, model, user); "" when
// it names none.
func geminiWindow(quotaID string) string {
	words := camelWords(tierless(quotaID))
	for i := 1; i < len(words); i++ {
		if window, ok := geminiWindows[words[i]]; ok && words[i-1] == "Per" {
			return window
		}
	}
	return ""
}

// resourceWords are the words a quota's resource is named with; the API,
// the call and the tier (Generate, Content, FreeTier, PaidTier2) are left
// out of the name, so that a key's windows keep their series when its
// project changes tier. A name is made of these words only, never of
// other text of the body, which could echo the key.
var resourceWords = map[string]bool{
	"requests": true, "input": true, "output": true, "tokens": true, "images": true,
	"cached": true, "thinking": true, "audio": true, "video": true, "embed": true, "batch": true,
}

// ignoredWords are the words of a quota's name that are not its resource's.
var ignoredWords = map[string]bool{"generate": true, "content": true, "free": true, "paid": true, "tier": true}

// geminiResource names what a quota counts, from its id
// (GenerateContentPaidTierInputTokensPerModelPerMinute: input_tokens;
// GenerateRequestsPerDayPerProjectPerModel: requests), else from its
// metric (generativelanguage.googleapis.com/generate_content_free_tier_requests:
// requests); "" when neither is made of resourceWords.
func geminiResource(quotaID, quotaMetric string) string {
	var fromID []string
	for _, w := range camelWords(tierless(quotaID)) {
		if w == "Per" {
			break
		}
		fromID = append(fromID, strings.ToLower(strings.TrimRight(w, "0123456789")))
	}
	if name := resourceName(fromID); name != "" {
		return name
	}
	metric := quotaMetric[strings.LastIndexByte(quotaMetric, '/')+1:]
	var fromMetric []string
	for _, w := range strings.Split(metric, "_") {
		if w == "count" && len(fromMetric) > 0 && fromMetric[len(fromMetric)-1] == "token" {
			fromMetric[len(fromMetric)-1] = "tokens" // input_token_count
			continue
		}
		if !isDigits(w) { // paid_tier_2
			fromMetric = append(fromMetric, w)
		}
	}
	return resourceName(fromMetric)
}

// resourceName joins words, less the ignored ones, into a resource name;
// "" when one is not a resource word, or none is.
func resourceName(words []string) string {
	var kept []string
	for _, w := range words {
		switch {
		case ignoredWords[w]:
		case resourceWords[w]:
			kept = append(kept, w)
		default:
			return ""
		}
	}
	return strings.Join(kept, "_")
}

// tierless cuts a quota id's tier suffix: -FreeTier, -PaidTier2.
func tierless(quotaID string) string {
	id, _, _ := strings.Cut(quotaID, "-")
	return id
}

// camelWords splits an identifier at its capitals: Tier2 stays one word.
func camelWords(s string) []string {
	var words []string
	start := 0
	for i, r := range s {
		if i > start && unicode.IsUpper(r) {
			words = append(words, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		words = append(words, s[start:])
	}
	return words
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// quotaValue reads a quota's limit: an int64 as proto3 JSON writes it (a
// string), or a number. It returns -1, true when there is none, and
// false for a value that is not a non-negative number.
func quotaValue(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return -1, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return -1, false
	}
	return v, true
}

// protoDuration reads a google.protobuf.Duration as proto3 JSON writes
// it: seconds with up to nine decimals and an "s" ("43s", "1.5s"). A wait
// longer than a time.Duration holds is the longest one.
func protoDuration(raw json.RawMessage) (time.Duration, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	number, ok := strings.CutSuffix(s, "s")
	if !ok || number == "" || strings.Trim(number, "0123456789.") != "" {
		return 0, false
	}
	seconds, err := strconv.ParseFloat(number, 64)
	if err != nil {
		return 0, false
	}
	if seconds >= float64(math.MaxInt64)/float64(time.Second) {
		return math.MaxInt64, true
	}
	return time.Duration(math.Round(seconds * float64(time.Second))), true
}

// pacific is the time zone of Gemini's daily quotas, which reset at
// midnight Pacific time; a fixed UTC-8 only if the embedded database
// failed, which would make resets an hour late in summer.
var pacific = func() *time.Location {
	if loc, err := time.LoadLocation("America/Los_Angeles"); err == nil {
		return loc
	}
	return time.FixedZone("PST", -8*60*60)
}()

// untilPacificMidnight is how long from now until the next midnight
// Pacific time.
func untilPacificMidnight(now time.Time) time.Duration {
	local := now.In(pacific)
	y, m, d := local.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, pacific).Sub(now)
}

// modelInGeminiPath reads the model of a request to
// .../models/{model}:generateContent or :streamGenerateContent (under
// /v1beta or /v1, behind any route prefix); "" for a name with a slash
// (an escaped one, %2F), which names no model Gemini serves.
func modelInGeminiPath(path string) (string, bool) {
	i := strings.LastIndex(path, "/models/")
	if i < 0 {
		return "", false
	}
	model, method, ok := strings.Cut(path[i+len("/models/"):], ":")
	if !ok || model == "" || (method != "generateContent" && method != "streamGenerateContent") {
		return "", false
	}
	if strings.Contains(model, "/") {
		return "", true
	}
	return model, true
}
