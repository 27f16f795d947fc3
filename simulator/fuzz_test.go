package simulator

import (
	"testing"
)

// FuzzRequest sends any body to every dialect's endpoint: the simulator
// answers JSON with a status it documents, and never panics.
func FuzzRequest(f *testing.F) {
	f.Add(chatBody(`,"max_tokens":1`))
	f.Add(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"system":"x"}`)
	f.Add(`{"model":"m","messages":[{"role":"user","content":null}],"max_completion_tokens":-1,"stream":null}`)
	f.Add(`[1,2]`)
	f.Add(geminiProbe)
	f.Add(`{"contents":[{"role":"model","parts":[{"text":null}]}],"generationConfig":{"maxOutputTokens":-1},"systemInstruction":[]}`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, d := range Dialects {
			s := NewDialect(d, "m")
			s.AddKey(simKey, Limits{"requests": {"minute": 100}, "tokens": {"minute": 100}})
			r := dialectProbe(d, simKey)
			if specs[d].request != nil {
				r = request(r.Method, r.URL.RequestURI(), body, "Authorization", "Bearer "+simKey, "X-Api-Key", simKey, "X-Goog-Api-Key", simKey, "Anthropic-Version", "2023-06-01")
			}
			w := serve(s, r)
			switch w.Code {
			case 200, 400, 404, 422, 429:
			default:
				t.Errorf("%s: %d %s", d, w.Code, w.Body)
			}
			if w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("%s: Content-Type %q", d, w.Header().Get("Content-Type"))
			}
			if d == Anthropic && w.Code == 400 && errorID(d, w.Body.Bytes()) != "error:invalid_request_error" {
				t.Errorf("%s: %s", d, w.Body)
			}
		}
	})
}
