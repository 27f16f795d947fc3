package exporter

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A config whose proxy keeps its listen_address but names a TLS certificate
// that does not exist cannot start the exporter (proxy.Listen refuses it),
// so a reload must refuse it too: "all or nothing", and what a reload
// accepts a restart must accept. Today prepareProxy reuses the running
// listener without checking tls_server_config, and the reload succeeds.
func TestApplyChecksTLSOnTheRunningAddress(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(up.Close)
	e := newExporter(t)
	address := freeAddress(t)
	if err := e.Apply(parse(t, proxyConfig(address, up.URL))); err != nil {
		t.Fatal(err)
	}
	withTLS := strings.Replace(proxyConfig(address, up.URL), "  routes:",
		"  tls_server_config: {cert_file: /nonexistent/tls.crt, key_file: /nonexistent/tls.key}\n  routes:", 1)
	// Sanity: the same config cannot start an exporter of its own.
	fresh := newExporter(t)
	if err := fresh.Apply(parse(t, strings.Replace(withTLS, address, freeAddress(t), 1))); err == nil {
		t.Fatal("a fresh exporter started a proxy with a missing certificate")
	}
	if err := e.Apply(parse(t, withTLS)); err == nil {
		t.Error("a reload onto the running proxy address with a missing tls_server_config certificate was applied; a restart with the same config fails")
	}
}
