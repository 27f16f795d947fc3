package simulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The admin rate-limit endpoints, under any prefix: OpenAI's project rate
// limits (https://platform.openai.com/docs/api-reference/project-rate-limits/list)
// and Anthropic's Rate Limits API, for the organization and for a
// workspace (https://platform.claude.com/docs/en/manage-claude/rate-limits-api).
var (
	openAIAdminPath    = regexp.MustCompile(`/organization/projects/([^/]+)/rate_limits$`)
	anthropicOrgPath   = regexp.MustCompile(`/v1/organizations/rate_limits$`)
	anthropicWSPath    = regexp.MustCompile(`/v1/organizations/workspaces/([^/]+)/rate_limits$`)
	adminPageLimitsMax = map[Dialect]int{OpenAI: 100, Anthropic: 1000}
)

// AdminLimit is one entry of an admin API's list of rate limits.
type AdminLimit struct {
	// Models are the models the entry applies to: one for OpenAI; a model
	// group's names and aliases for Anthropic, none for a group of an API
	// surface (Group "batch", "web_search", ...).
	Models []string
	// Group is Anthropic's group type; "" is "model_group".
	Group string
	// Values are the limits, by OpenAI's field (max_requests_per_1_minute)
	// or by Anthropic's limiter type (requests_per_minute).
	Values map[string]float64
}

// adminOrg is what an admin key sees: its organization's limits by scope
// (an OpenAI project; "" for the Anthropic organization, else a
// workspace's overrides), its costs (SetCosts), and the fault its rate
// limit requests meet.
type adminOrg struct {
	scopes     map[string][]AdminLimit
	costs      []DayCost
	status     int
	retryAfter time.Duration
}

// adminState is the simulator's admin API: its admin keys and how many
// requests it answered.
type adminState struct {
	orgs     map[string]*adminOrg
	requests int
}

// SetAdminLimits makes adminKey an admin key of the OpenAI or Anthropic
// dialect, whose admin API lists limits for scope: an OpenAI project id;
// for Anthropic, "" for the organization's limits, or a workspace id for
// that workspace's overrides of them (a workspace that exists, with no
// override, takes no limits). An admin key is no API key, nor the other way.
func (s *Simulator) SetAdminLimits(adminKey, scope string, limits ...AdminLimit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	org := s.adminOrgLocked(adminKey)
	copied := make([]AdminLimit, len(limits))
	for i, l := range limits {
		copied[i] = AdminLimit{Models: slices.Clone(l.Models), Group: l.Group, Values: maps.Clone(l.Values)}
	}
	org.scopes[scope] = copied
}

// adminOrgLocked returns adminKey's organization, made an admin key if it
// was not one. s.mu is held.
func (s *Simulator) adminOrgLocked(adminKey string) *adminOrg {
	if s.admin == nil {
		s.admin = &adminState{orgs: map[string]*adminOrg{}}
	}
	org := s.admin.orgs[adminKey]
	if org == nil {
		org = &adminOrg{scopes: map[string][]AdminLimit{}}
		s.admin.orgs[adminKey] = org
	}
	return org
}

// RevokeAdminKey makes adminKey unknown: its admin requests, costs included, get 401.
func (s *Simulator) RevokeAdminKey(adminKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != nil {
		delete(s.admin.orgs, adminKey)
	}
}

// SetAdminFault makes adminKey's admin requests, costs included, answer status, with a
// Retry-After of retryAfter when it is positive, until status is 0.
func (s *Simulator) SetAdminFault(adminKey string, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != nil && s.admin.orgs[adminKey] != nil {
		s.admin.orgs[adminKey].status, s.admin.orgs[adminKey].retryAfter = status, retryAfter
	}
}

// AdminRequests returns how many requests the admin endpoints answered.
func (s *Simulator) AdminRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		return 0
	}
	return s.admin.requests
}

// serveAdmin answers r if it asks for one of the dialect's admin endpoints,
// and reports whether it did.
func (s *Simulator) serveAdmin(w http.ResponseWriter, r *http.Request) bool {
	var scope string
	var workspace bool
	switch {
	case s.dialect == OpenAI:
		m := openAIAdminPath.FindStringSubmatch(r.URL.Path)
		if m == nil {
			return false
		}
		scope = m[1]
	case s.dialect == Anthropic && anthropicOrgPath.MatchString(r.URL.Path):
	case s.dialect == Anthropic && anthropicWSPath.MatchString(r.URL.Path):
		scope, workspace = anthropicWSPath.FindStringSubmatch(r.URL.Path)[1], true
	default:
		return false
	}
	presented, keyHeader := presentedKey(r)
	ans := func() answer {
		s.mu.Lock()
		defer s.mu.Unlock()
		ans := s.adminAnswer(r, scope, workspace)
		s.record(presented, keyHeader, r, nil, ans)
		return ans
	}()
	for name, values := range ans.header {
		w.Header()[name] = values
	}
	w.WriteHeader(ans.status)
	_, _ = w.Write(ans.body)
	return true
}

// adminAnswer answers an admin request. s.mu is held.
func (s *Simulator) adminAnswer(r *http.Request, scope string, workspace bool) answer {
	if s.admin == nil {
		s.admin = &adminState{orgs: map[string]*adminOrg{}}
	}
	s.admin.requests++
	ans := answer{header: http.Header{"Content-Type": {"application/json"}}}
	var key string
	if s.dialect == OpenAI {
		key, _ = bearerKey(r.Header)
	} else {
		key, _ = apiKeyHeader(r.Header)
	}
	org := s.admin.orgs[key]
	switch {
	case r.Method != http.MethodGet:
		ans.header.Set("Allow", http.MethodGet)
		return s.adminError(ans, http.StatusMethodNotAllowed, "use GET")
	case org == nil:
		// Providers echo (part of) a wrong key: the client must not.
		return s.adminError(ans, http.StatusUnauthorized, "Incorrect admin key provided: "+key)
	case s.dialect == Anthropic && r.Header.Get("anthropic-version") != specs[Anthropic].version:
		return s.adminError(ans, http.StatusBadRequest, "anthropic-version: header is required")
	case org.status != 0:
		if org.retryAfter > 0 {
			ans.header.Set("Retry-After", strconv.Itoa(int(org.retryAfter/time.Second)))
		}
		return s.adminError(ans, org.status, "simulated admin fault")
	}
	limits, known := org.scopes[scope]
	if !known {
		return s.adminError(ans, http.StatusNotFound, "no such project or workspace: "+scope)
	}
	q := r.URL.Query()
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > adminPageLimitsMax[s.dialect] {
			return s.adminError(ans, http.StatusBadRequest, fmt.Sprintf("limit must be from 1 to %d", adminPageLimitsMax[s.dialect]))
		}
		limit = n
	}
	var body any
	if s.dialect == OpenAI {
		body = openAIAdminPage(limits, limit, q.Get("after"))
	} else {
		entries := anthropicEntries(org.scopes[""], limits, scope, workspace, q.Get("include_inherited") == "true")
		var refused bool
		if body, refused = anthropicAdminPage(entries, limit, q.Get("page")); refused {
			return s.adminError(ans, http.StatusBadRequest, "invalid page cursor")
		}
	}
	ans.status = http.StatusOK
	ans.body, _ = json.Marshal(body)
	return ans
}

// adminError sets an error answer in the dialect's shape.
func (s *Simulator) adminError(ans answer, status int, message string) answer {
	ans.status = status
	kind := map[int]string{400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
		405: "invalid_request_error", 429: "rate_limit_error"}[status]
	if kind == "" {
		kind = "api_error"
	}
	if s.dialect == OpenAI {
		ans.body, _ = json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": kind, "code": nil}})
	} else {
		ans.body, _ = json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": kind, "message": message}})
	}
	return ans
}

// openAIAdminPage is the page of a project's limits after the entry whose
// id is after ("": from the start), limit entries long (0: 100).
func openAIAdminPage(limits []AdminLimit, limit int, after string) map[string]any {
	if limit == 0 {
		limit = 100
	}
	items := make([]map[string]any, 0, len(limits))
	for _, l := range limits {
		model := ""
		if len(l.Models) > 0 {
			model = l.Models[0]
		}
		item := map[string]any{"object": "project.rate_limit", "id": "rl-" + model, "model": model}
		for field, v := range l.Values {
			item[field] = v
		}
		items = append(items, item)
	}
	start := 0
	if after != "" {
		start = len(items)
		for i, it := range items {
			if it["id"] == after {
				start = i + 1
			}
		}
	}
	end := min(start+limit, len(items))
	page := items[start:end]
	var first, last any
	if len(page) > 0 {
		first, last = page[0]["id"], page[len(page)-1]["id"]
	}
	return map[string]any{"object": "list", "data": page, "first_id": first, "last_id": last, "has_more": end < len(items)}
}

// anthropicEntries lists the organization's entries (org), or a
// workspace's: its overrides, and with inherited the organization's values
// it does not override.
func anthropicEntries(org, overrides []AdminLimit, workspaceID string, workspace, inherited bool) []map[string]any {
	groupOf := func(l AdminLimit) string {
		if l.Group == "" {
			return "model_group"
		}
		return l.Group
	}
	idOf := func(l AdminLimit) string { return groupOf(l) + ":" + strings.Join(l.Models, ",") }
	var entries []map[string]any
	for i, l := range org {
		group := map[string]any{"id": fmt.Sprintf("rlg_%02d", i+1), "type": groupOf(l)}
		if groupOf(l) == "model_group" {
			group["display_name"] = strings.Join(l.Models, " / ")
		}
		var models any // null but for a model group
		if groupOf(l) == "model_group" {
			models = l.Models
		}
		var override AdminLimit
		if workspace {
			for _, o := range overrides {
				if idOf(o) == idOf(l) {
					override = o
				}
			}
		}
		var values []map[string]any
		for _, kind := range slices.Sorted(maps.Keys(l.Values)) {
			v, overridden := override.Values[kind]
			switch {
			case !workspace:
				values = append(values, map[string]any{"type": kind, "value": l.Values[kind]})
			case overridden:
				values = append(values, map[string]any{"type": kind, "value": v, "org_limit": l.Values[kind], "source": map[string]any{"type": "workspace"}})
			case inherited:
				values = append(values, map[string]any{"type": kind, "value": l.Values[kind], "org_limit": l.Values[kind], "source": map[string]any{"type": "organization"}})
			}
		}
		if len(values) == 0 {
			continue
		}
		entry := map[string]any{"group": group, "models": models, "limits": values}
		if workspace {
			entry["type"], entry["rate_limit_id"], entry["workspace_id"] = "workspace_rate_limit", fmt.Sprintf("rl_%02d", i+1), workspaceID
		} else {
			entry["type"], entry["id"] = "rate_limit", fmt.Sprintf("rl_%02d", i+1)
		}
		entries = append(entries, entry)
	}
	return entries
}

// anthropicAdminPage is the page of entries from the cursor page ("": the
// first), limit entries long (0: all of them); refused for a cursor it did
// not give.
func anthropicAdminPage(entries []map[string]any, limit int, page string) (map[string]any, bool) {
	start := 0
	if page != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(page, "page_"))
		if err != nil || !strings.HasPrefix(page, "page_") || n < 0 || n > len(entries) {
			return nil, true
		}
		start = n
	}
	if limit == 0 {
		limit = len(entries)
	}
	end := min(start+limit, len(entries))
	var next any
	if end < len(entries) {
		next = "page_" + strconv.Itoa(end)
	}
	data := entries[start:end]
	if data == nil {
		data = []map[string]any{}
	}
	return map[string]any{"data": data, "next_page": next}, false
}
