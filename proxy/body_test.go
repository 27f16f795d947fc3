package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

func TestTopLevelModel(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"model":"gpt-4o-mini","messages":[]}`, "gpt-4o-mini"},
		{` {"messages":[{"model":"inner"}],"model":"outer"} `, "outer"},
		{`{"messages":[{"model":"inner"}]}`, ""},
		{`{"metadata":{"model":"inner"},"x":"model"}`, ""},
		{`{"model":"first","model":"last"}`, "last"},
		{`{"model":"a\u002db"}`, "a-b"},
		{`{"Model":"case"}`, ""},
		{`{"model":42}`, ""},
		{`{"model":null}`, ""},
		{`{"model":"has space"}`, ""},
		{`{"model":"line\nbreak"}`, ""},
		{`{"model":"` + strings.Repeat("m", maxModelBytes) + `"}`, strings.Repeat("m", maxModelBytes)},
		{`{"model":"` + strings.Repeat("m", maxModelBytes+1) + `"}`, ""},
		{`{"model":"gpt"`, ""},
		{`{"model":"gpt"} {}`, ""},
		{`{"model":"gpt",}`, ""},
		{`["model","gpt"]`, ""},
		{`"model"`, ""},
		{`model=gpt`, ""},
		{``, ""},
	} {
		if got := topLevelModel([]byte(tc.body)); got != tc.want {
			t.Errorf("topLevelModel(%.40q) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

// FuzzTopLevelModel checks the model against encoding/json's reading of the
// whole body as an object.
func FuzzTopLevelModel(f *testing.F) {
	for _, seed := range []string{`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}`,
		`{"model":"a","model":"b"}`, `{"x":{"model":"y"}}`, `{"model":1}`, `[]`, `{`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := topLevelModel(body)
		var fields map[string]json.RawMessage
		want := ""
		if json.Unmarshal(body, &fields) == nil && fields != nil && json.Unmarshal(fields["model"], &want) == nil {
			if len(want) > maxModelBytes || !config.Printable(want) {
				want = ""
			}
		}
		if got != want {
			t.Errorf("topLevelModel(%q) = %q, want %q", body, got, want)
		}
	})
}
