package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SelfSigned is a new P-256 certificate named cn for the loopback names
// (localhost, 127.0.0.1, ::1), valid for a day, for servers and clients
// (mutual TLS), and a pool trusting it.
// Nothing is kept: each test makes its own.
func SelfSigned(cn string) (tls.Certificate, *x509.CertPool, error) {
	return selfSigned(cn, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

// selfSigned is SelfSigned for the given uses (a client certificate needs
// ExtKeyUsageClientAuth).
func selfSigned(cn string, uses ...x509.ExtKeyUsage) (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           uses,
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

// CertFiles is a server certificate written to files, as a deployment
// hands them to the gateway and query.
type CertFiles struct {
	CertFile, KeyFile string
	Pool              *x509.CertPool // trusts the certificate
	Leaf              *x509.Certificate
}

// SPKIHash is the base64 SHA-256 of the certificate's public key, what
// Chromium's --ignore-certificate-errors-spki-list takes to trust exactly
// this key.
func (c CertFiles) SPKIHash() string {
	sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// WriteCert makes a SelfSigned certificate named cn and writes it as PEM
// to <dir>/<cn>.crt and <dir>/<cn>.key (replacing them, as a renewal does).
func WriteCert(t testing.TB, dir, cn string) CertFiles {
	t.Helper()
	out, err := writeCertFiles(dir, cn)
	if err != nil {
		t.Fatalf("testenv: certificate: %v", err)
	}
	return out
}

// WriteCertIn is WriteCert without a test.
func WriteCertIn(dir, cn string) (CertFiles, error) { return writeCertFiles(dir, cn) }

func writeCertFiles(dir, cn string, uses ...x509.ExtKeyUsage) (CertFiles, error) {
	if len(uses) == 0 {
		uses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	cert, pool, err := selfSigned(cn, uses...)
	if err != nil {
		return CertFiles{}, err
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return CertFiles{}, err
	}
	out := CertFiles{CertFile: filepath.Join(dir, cn+".crt"), KeyFile: filepath.Join(dir, cn+".key"), Pool: pool, Leaf: cert.Leaf}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	if err := os.WriteFile(out.KeyFile, keyPEM, 0o600); err != nil {
		return CertFiles{}, err
	}
	if err := os.WriteFile(out.CertFile, certPEM, 0o644); err != nil {
		return CertFiles{}, err
	}
	return out, nil
}
