package exporter

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A reload that keeps the proxy's listen_address and tls_server_config
// loads the certificate as a start would: one whose files are now missing
// is refused, as a restart with the same config would be.
// Test by the attacking reviewer, round 3.
func TestReloadChecksTheRunningTLSCertificate(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(up.Close)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	tlsSrv.Close()
	cert := tlsSrv.TLS.Certificates[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: cert.Certificate[0]}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := newExporter(t)
	address := freeAddress(t)
	withTLS := strings.Replace(proxyConfig(address, up.URL), "  routes:",
		"  tls_server_config: {cert_file: "+certFile+", key_file: "+keyFile+"}\n  routes:", 1)
	if err := e.Apply(parse(t, withTLS)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	fresh := newExporter(t)
	if err := fresh.Apply(parse(t, strings.Replace(withTLS, address, freeAddress(t), 1))); err == nil {
		t.Fatal("sanity: a fresh exporter started a proxy with a missing certificate")
	}
	if err := e.Apply(parse(t, withTLS)); err == nil {
		t.Error("a reload whose tls_server_config certificate is missing was applied on the running address; a restart with the same config fails")
	}
}

// A config whose proxy keeps its listen_address but names a TLS certificate
// that does not exist cannot start the exporter (proxy.Listen refuses it),
// so a reload refuses it too, and keeps the running routes. Test by the
// attacking reviewer, round 1.
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
	withTLS = strings.Replace(withTLS, "path_prefix: /openai/", "path_prefix: /other/", 1)
	// Sanity: the same config cannot start an exporter of its own.
	fresh := newExporter(t)
	if err := fresh.Apply(parse(t, strings.Replace(withTLS, address, freeAddress(t), 1))); err == nil {
		t.Fatal("a fresh exporter started a proxy with a missing certificate")
	}
	if err := e.Apply(parse(t, withTLS)); err == nil {
		t.Error("a reload onto the running proxy address with a missing tls_server_config certificate was applied; a restart with the same config fails")
	}
	if status := get(address); status != http.StatusOK {
		t.Errorf("the running route answers %d after the refused reload, want 200", status)
	}
}
