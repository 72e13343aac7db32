package push

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

const (
	// DefaultAPNsProduction and DefaultAPNsSandbox are APNs' gateways.
	DefaultAPNsProduction = "https://api.push.apple.com"
	DefaultAPNsSandbox    = "https://api.sandbox.push.apple.com"
	// DefaultAPNsExpiration is how long APNs keeps trying to deliver a
	// push to an unreachable device when the Config leaves Expiration
	// zero.
	DefaultAPNsExpiration = 24 * time.Hour
)

// APNsConfig configures the APNs client (token-based authentication).
type APNsConfig struct {
	// KeyFile is the .p8 signing key (PKCS#8 PEM, P-256) from Apple's
	// developer account. Set it or Key.
	KeyFile string
	// Key is the .p8 file's content.
	Key []byte
	// KeyID is the key's 10-character id (the JWT's kid).
	KeyID string
	// TeamID is the 10-character developer team id (the JWT's iss).
	TeamID string
	// Production and Sandbox are the gateways of the two environments
	// (defaults DefaultAPNsProduction, DefaultAPNsSandbox).
	Production string
	Sandbox    string
	// Expiration is how long APNs stores a push for an offline device
	// (default DefaultAPNsExpiration).
	Expiration time.Duration
	// HiddenBody is the alert's body when the preview setting hides the
	// message (default DefaultHiddenBody).
	HiddenBody string
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// RootCAs, when set, are the only CAs trusted (a test's server).
	RootCAs *x509.CertPool
}

// Validate checks the settings without reading the key file.
func (c *APNsConfig) Validate() error {
	if (c.KeyFile == "") == (len(c.Key) == 0) {
		return errors.New("apns: set one of KeyFile (the .p8 signing key) or Key")
	}
	if len(c.KeyID) != 10 || !isAlnum(c.KeyID) {
		return fmt.Errorf("apns: KeyID must be the key's 10-character id, got %d characters", len(c.KeyID))
	}
	if len(c.TeamID) != 10 || !isAlnum(c.TeamID) {
		return fmt.Errorf("apns: TeamID must be the 10-character team id, got %q", c.TeamID)
	}
	for field, u := range map[string]string{"Production": c.Production, "Sandbox": c.Sandbox} {
		if u != "" {
			if err := checkBaseURL("apns: "+field, u, false); err != nil {
				return err
			}
		}
	}
	if c.Expiration < 0 || c.Timeout < 0 {
		return errors.New("apns: Expiration and Timeout must not be negative")
	}
	return nil
}

// loadKey reads and parses the signing key; errors never quote it.
func (c *APNsConfig) loadKey() (*ecdsa.PrivateKey, error) {
	raw := c.Key
	if c.KeyFile != "" {
		b, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("apns: reading the signing key: %w", err)
		}
		raw = b
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("apns: the signing key is not PEM (a .p8 file)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("apns: the signing key is not a PKCS#8 private key")
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("apns: the signing key is not a P-256 (ES256) key")
	}
	return ek, nil
}

func isAlnum(s string) bool {
	for i := range len(s) {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
