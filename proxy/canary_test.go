package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// A key sent through every path of the proxy, at debug level, is found in
// no log line, no metric and no body the proxy wrote itself.
func TestCanaryKeyNeverWritten(t *testing.T) {
	const canary = "sk-sim-canary-7f3a9c41d2e8b6057a1c"
	const fileCanary = "sk-sim-canary-file-90e1b7c3a5f2d4e6"
	const geminiCanary = "AIza-sim-canary-gemini-4c8e2a61f0b3d975"
	keyFile := t.TempDir() + "/key"
	if err := os.WriteFile(keyFile, []byte(fileCanary), 0o600); err != nil {
		t.Fatal(err)
	}
	answers := map[string]http.HandlerFunc{
		"/v1/ok": okHandler,
		"/v1/429": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Ratelimit-Remaining-Requests", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		"/v1/500": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
		// A Gemini 429 whose body, read by the proxy, echoes the key it got.
		"/v1beta/models/m:generateContent": func(w http.ResponseWriter, r *http.Request) {
			echoed := r.Header.Get("X-Goog-Api-Key") + r.URL.Query().Get("key")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"error":{"code":429,"message":"quota of %s exceeded","status":"%s","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure",`+
				`"violations":[{"quotaMetric":"%s","quotaId":"%s","quotaValue":"%s"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"%s"}]}}`,
				echoed, echoed, echoed, echoed, echoed, echoed)
		},
		"/v1/302": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/v1/ok", http.StatusFound) },
		"/v1/bad": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Ratelimit-Remaining-Requests", "many")
			w.Header().Set("X-Ratelimit-Limit-Requests", "60")
		},
	}
	gate, left := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if answer, ok := answers[r.URL.Path]; ok {
			answer(w, r)
			return
		}
		gated(sseChunks(2), "text/event-stream", false, gate, left)(w, r)
	})
	down := "http://" + testkit.FreeAddr(t)
	routes := []config.Route{
		{PathPrefix: "/openai/", Upstream: up.URL, Provider: "openai"},
		{PathPrefix: "/anthropic/", Upstream: up.URL, Provider: "anthropic"},
		{PathPrefix: "/down/", Upstream: down, Provider: "openai"},
		{PathPrefix: "/gemini/", Upstream: up.URL, Provider: "gemini"},
	}
	keys := fmt.Sprintf("  - {name: team-canary, provider: openai, api_key: %s}\n  - {name: team-file, provider: openai, api_key_file: %s}\n"+
		"  - {name: team-gemini, provider: gemini, api_key: %s}\n", canary, keyFile, geminiCanary)
	var proxies []*env
	for _, mode := range []string{"fingerprint", "reject", "forward"} {
		proxies = append(proxies, startProxy(t, setup{unknownKeys: mode, maxRequestBytes: "1KiB", routes: routes, keys: keys}))
	}

	var written []reply // the answers the proxy made itself
	for _, e := range proxies {
		for _, key := range []string{canary, fileCanary, geminiCanary} {
			for _, path := range []string{"/openai/v1/ok", "/anthropic/v1/ok", "/openai/v1/429", "/openai/v1/500", "/openai/v1/302", "/openai/v1/bad",
				"/down/v1/ok", "/nowhere", "/openai/../v1/ok", "/gemini/v1beta/models/m:generateContent"} {
				// The key in each key header, and in the query alone (?key=,
				// Gemini's; ?api-key=, Azure's).
				for _, header := range [][]string{{"Authorization", "Bearer " + key}, {"X-Api-Key", key}, {"X-Goog-Api-Key", key},
					{"X-Litellm-Api-Key", key}, {"Ocp-Apim-Subscription-Key", key}, {"Sec-Websocket-Protocol", "realtime, openai-insecure-api-key." + key}, nil} {
					req := newRequest(t, http.MethodPost, e.url+path+"?key="+key+"&api-key="+key, `{"model":"gpt-4o-mini","input":"`+key+`"}`, header...)
					written = append(written, do(t, e.client, req))
				}
			}
			large := newRequest(t, http.MethodPost, e.url+"/openai/v1/ok?key="+key, strings.Repeat(key, 100), "Authorization", "Bearer "+key)
			written = append(written, do(t, e.client, large))
			for _, raw := range []string{
				"GET http://" + key + ".example/openai/v1/ok?key=" + key + " HTTP/1.1\r\nHost: " + key + ".example\r\nAuthorization: Bearer " + key + "\r\n\r\n",
				"CONNECT " + key + ".example:443 HTTP/1.1\r\nHost: " + key + ".example:443\r\nAuthorization: Bearer " + key + "\r\n\r\n",
			} {
				written = append(written, rawRequest(t, e.addr, raw))
			}
		}
	}

	// A client that leaves mid-stream.
	e := proxies[0]
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := e.client.Do(newRequest(t, http.MethodPost, e.url+"/openai/v1/stream?key="+canary, "{}", "Authorization", "Bearer "+canary).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	gate <- struct{}{}
	if _, err := io.ReadFull(resp.Body, make([]byte, len(sseChunks(1)[0]))); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	<-left

	// A reload that cannot read a key file.
	reload := parseConfig(t, setup{unknownKeys: "fingerprint", routes: routes, keys: keys})
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if err := e.proxy.Apply(reload); err != nil {
		t.Fatal(err)
	}

	var logs, metrics strings.Builder
	for _, e := range proxies {
		if err := e.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		logs.WriteString(e.logs.String())
		families, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if _, err := expfmt.MetricFamilyToText(&metrics, f); err != nil {
				t.Fatal(err)
			}
		}
		for _, o := range e.rec.all() {
			if text := fmt.Sprintf("%+v", o); strings.Contains(text, canary) || strings.Contains(text, fileCanary) || strings.Contains(text, geminiCanary) {
				t.Errorf("an observation holds a key: %+v", o)
			}
		}
	}
	// Not vacuous: every kind of output was written.
	for _, want := range []string{"level=debug", "level=warn", `msg="Cannot reach the upstream"`, `msg="Refused a request"`, "file=" + keyFile} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the logs hold no %s:\n%s", want, logs.String())
		}
	}
	var bodies bytes.Buffer
	made := 0
	for _, r := range written {
		if strings.Contains(string(r.body), "proxy_error") {
			made++
			bodies.Write(r.body)
		}
	}
	if made == 0 || !strings.Contains(metrics.String(), "ratelimit_proxy_requests_total") {
		t.Fatalf("%d bodies made by the proxy; metrics:\n%s", made, metrics.String())
	}
	for what, text := range map[string]string{"logs": logs.String(), "metrics": metrics.String(), "the proxy's bodies": bodies.String()} {
		for _, key := range []string{canary, fileCanary, geminiCanary} {
			if strings.Contains(text, key) {
				t.Errorf("%s hold the key %s:\n%s", what, key, text)
			}
		}
	}
}
