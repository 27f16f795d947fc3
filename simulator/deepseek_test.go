package simulator

import (
	"net/http"
	"testing"
)

func TestDeepSeekBalance(t *testing.T) {
	s := NewDialect(DeepSeek)
	s.AddKey(simKey, nil)
	s.SetBalance(simKey, Balance{Available: true, Currencies: []CurrencyBalance{
		{Currency: "CNY", Granted: 10, ToppedUp: 100}, {Currency: "USD", ToppedUp: 2.5},
	}})
	want := `{"balance_infos":[` +
		`{"currency":"CNY","granted_balance":"10.00","topped_up_balance":"100.00","total_balance":"110.00"},` +
		`{"currency":"USD","granted_balance":"0.00","topped_up_balance":"2.50","total_balance":"2.50"}],"is_available":true}` + "\n"
	for i := range 2 { // asking costs nothing
		if w := serve(s, dialectProbe(DeepSeek, simKey)); w.Code != 200 || w.Body.String() != want {
			t.Errorf("GET /user/balance #%d: %d %s\nwant %s", i+1, w.Code, w.Body, want)
		}
	}
	s.SetBalance(simKey, Balance{Currencies: []CurrencyBalance{{Currency: "CNY"}}})
	if w := serve(s, dialectProbe(DeepSeek, simKey)); w.Body.String() !=
		`{"balance_infos":[{"currency":"CNY","granted_balance":"0.00","topped_up_balance":"0.00","total_balance":"0.00"}],"is_available":false}`+"\n" {
		t.Errorf("run out: %s", w.Body)
	}
	s.SetFault(simKey, InsufficientQuota)
	if w := serve(s, dialectProbe(DeepSeek, simKey)); w.Code != http.StatusPaymentRequired || w.Body.String() !=
		`{"error":{"code":"invalid_request_error","message":"Insufficient Balance","param":null,"type":"unknown_error"}}`+"\n" {
		t.Errorf("insufficient balance: %d %s", w.Code, w.Body)
	}
	if got := s.Requests(); got != 4 {
		t.Errorf("Requests() = %d, want 4", got)
	}
}

// The refusals of a wrong key show a few of its characters, as the
// providers do, and never the key.
func TestRefusalsMaskTheKey(t *testing.T) {
	const key = "sk-sim-fedcba9876543210fedcba9876543210"
	for _, tc := range []struct {
		dialect Dialect
		r       *http.Request
		body    string
	}{
		{XAI, request(http.MethodPost, "/v1/chat/completions", chatBody(`,"max_completion_tokens":1`), "Authorization", "Bearer "+key),
			`{"code":"Client specified an invalid argument","error":"Incorrect API key provided: sk***10. You can obtain an API key from https://console.x.ai."}`},
		{XAI, request(http.MethodPost, "/v1/chat/completions", chatBody(`,"max_completion_tokens":1`), "Authorization", "Bearer sk-short"),
			`{"code":"Client specified an invalid argument","error":"Incorrect API key provided: ***. You can obtain an API key from https://console.x.ai."}`},
		{DeepSeek, request(http.MethodGet, "/user/balance", "", "Authorization", "Bearer "+key),
			`{"error":{"code":"invalid_request_error","message":"Authentication Fails, Your api key: ****3210 is invalid","param":null,"type":"authentication_error"}}`},
		{DeepSeek, request(http.MethodGet, "/user/balance", ""),
			`{"error":{"code":"invalid_request_error","message":"Authentication Fails (auth header format should be Bearer sk-...)","param":null,"type":"authentication_error"}}`},
	} {
		w := serve(NewDialect(tc.dialect, "m"), tc.r)
		if w.Body.String() != tc.body+"\n" {
			t.Errorf("%s: %d %s\nwant %s", tc.dialect, w.Code, w.Body, tc.body)
		}
	}
}
