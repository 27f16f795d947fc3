package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// Every refused config fixture is refused the same way by --config.check
// and by a reload of the running exporter, which keeps its config and
// does not panic.
func TestBadConfigsRefusedEverywhere(t *testing.T) {
	fixtures, err := filepath.Glob("../config/testdata/bad/*.yml")
	if err != nil || len(fixtures) < 15 {
		t.Fatalf("%d fixtures, want at least 15 (%v)", len(fixtures), err)
	}
	_, url := startSimulator(t)
	good, env := twoKeyConfig(t, url, "interval")
	cfg := testkit.WriteConfig(t, good)
	e := start(t, env, "--config.file="+cfg)

	for _, fixture := range fixtures {
		t.Run(filepath.Base(fixture), func(t *testing.T) {
			data, err := os.ReadFile(fixture)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfg, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, want := config.Source{Path: cfg, Explicit: true}.Load()
			if want == nil {
				t.Fatal("the fixture loads")
			}
			if !strings.Contains(want.Error(), cfg+":") {
				t.Errorf("the error does not name the file and line: %v", want)
			}
			code, out := runOnce(t, env, "--config.file="+cfg, "--config.check")
			if code != 1 || out != "Config is invalid:\n"+want.Error()+"\n" {
				t.Errorf("--config.check: exit %d\n%s\nwant exit 1 with\n%v", code, out, want)
			}
			status, body := e.do(t, "POST", "/-/reload")
			if status != 500 || body != "Failed to reload config; the running config is kept:\n"+want.Error()+"\n" {
				t.Errorf("reload: %d %q", status, body)
			}
		})
	}
	// Still running the first config, and no panic anywhere.
	if err := os.WriteFile(cfg, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, `ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras",team="search"} 1`)
	if strings.Contains(e.Logs(), "panic") {
		t.Errorf("a panic in the logs:\n%s", e.Logs())
	}
}

// writeTLSFiles writes a self-signed certificate for 127.0.0.1 and its key.
func writeTLSFiles(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ratelimit_exporter test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// --web.config.file serves TLS and asks for basic auth, with exporter-toolkit.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeTLSFiles(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-test-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webConfig, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n",
		certFile, keyFile, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// Ready when /-/ready answers 200 over TLS to the right user.
	ready := func(addr string) error {
		req, _ := http.NewRequest("GET", "https://"+addr+"/-/ready", nil)
		req.SetBasicAuth("prometheus", "s3cret-test-password")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	}
	_, url := startSimulator(t)
	text, env := twoKeyConfig(t, url, "interval")
	e := testkit.Start(t, testkit.Launch{Env: env, Ready: ready,
		Args: []string{"--config.file=" + testkit.WriteConfig(t, text), "--web.config.file=" + webConfig}})
	base := strings.Replace(e.URL, "http://", "https://", 1)
	get := func(path, user, password string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		path, user, password string
		status               int
	}{
		{"/metrics", "", "", 401},
		{"/metrics", "prometheus", "wrong", 401},
		{"/", "", "", 401},
		{"/metrics", "prometheus", "s3cret-test-password", 200},
		{"/-/healthy", "prometheus", "s3cret-test-password", 200},
	} {
		if status, _ := get(tc.path, tc.user, tc.password); status != tc.status {
			t.Errorf("GET %s as %q: %d, want %d", tc.path, tc.user, status, tc.status)
		}
	}
	// Plain HTTP is not served.
	if resp, err := http.Get(e.URL + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200")
		}
	}
}
