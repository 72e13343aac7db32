package deploy_test

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
)

// TestServerTLS: TLS 1.2 at least; the security headers on every answer;
// a renewed certificate is served without a restart, and a broken
// renewal keeps the previous one.
func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	first := testenv.WriteCert(t, dir, "server")
	var logs testenv.SyncBuffer
	cfg, err := deploy.ServerTLS{CertFile: first.CertFile, KeyFile: first.KeyFile,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}.Config()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: deploy.SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

	trusted := x509.NewCertPool()
	trusted.AddCert(first.Leaf)
	served := func() (*x509.Certificate, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0], nil
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trusted}}}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	for h, want := range map[string]string{
		"Strict-Transport-Security": "max-age=31536000", "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if _, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake was accepted")
	}

	second := testenv.WriteCert(t, dir, "server")
	testenv.Eventually(t, 30*time.Second, func() string {
		leaf, err := served()
		if err != nil {
			return err.Error()
		}
		if !leaf.Equal(second.Leaf) {
			return "still serving the first certificate"
		}
		return ""
	})
	if !strings.Contains(logs.String(), "certificate reloaded") {
		t.Errorf("no reload logged: %s", logs.String())
	}

	if err := os.WriteFile(second.CertFile, []byte("-----BEGIN CERTIFICATE-----\nbroken"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() string {
		if _, err := served(); err != nil {
			return err.Error()
		}
		if !strings.Contains(logs.String(), "keeping the previous certificate") {
			return "the broken file not looked at yet"
		}
		return ""
	})
	if leaf, err := served(); err != nil || !leaf.Equal(second.Leaf) {
		t.Errorf("after a broken renewal: %v, want the second certificate still served", err)
	}

	if _, err := (deploy.ServerTLS{CertFile: first.CertFile}).Config(); err == nil {
		t.Error("a certificate without its key was accepted")
	}
	if _, err := (deploy.ServerTLS{CertFile: dir + "/none.crt", KeyFile: dir + "/none.key"}).Config(); err == nil {
		t.Error("missing files were accepted")
	}
	e := deploy.EnvFrom(map[string]string{"PARLEY_GATEWAY_TLS_CERT_FILE": first.CertFile})
	if e.ServerTLS("PARLEY_GATEWAY"); e.Err() == nil {
		t.Error("PARLEY_GATEWAY_TLS_CERT_FILE without _KEY_FILE was accepted")
	}
}
