package push

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

const (
	// DefaultFCMEndpoint is FCM's HTTP v1 API.
	DefaultFCMEndpoint = "https://fcm.googleapis.com"
	// FCMScope is the OAuth2 scope of the send API.
	FCMScope = "https://www.googleapis.com/auth/firebase.messaging"
	// DefaultHiddenBody is the alert shown by FCM and APNs when the
	// preview setting hides a message's title and body: a visible alert
	// needs some text, and the app cannot rewrite it before it shows
	// without a notification service extension.
	DefaultHiddenBody = "New message"
)

// FCMConfig configures the Firebase Cloud Messaging (HTTP v1) client.
type FCMConfig struct {
	// CredentialsFile is the service-account JSON key file (as Google
	// Cloud's console gives it). Set it or Credentials.
	CredentialsFile string
	// Credentials is the service-account JSON itself.
	Credentials []byte
	// Endpoint is the API's base URL (default DefaultFCMEndpoint).
	Endpoint string
	// TokenURL overrides the key file's token_uri.
	TokenURL string
	// HiddenBody is the alert's body when the preview setting hides the
	// message (default DefaultHiddenBody).
	HiddenBody string
	// Timeout bounds each request, the token grant's included (default
	// DefaultTimeout).
	Timeout time.Duration
	// RootCAs, when set, are the only CAs trusted (a test's server).
	RootCAs *x509.CertPool
	// HTTPClient, when set, is used instead of the client's own (RootCAs
	// is then ignored).
	HTTPClient *http.Client
}

// serviceAccount is the part of a service-account key file the client
// uses.
type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

// Validate checks the settings without reading the key file.
func (c *FCMConfig) Validate() error {
	if (c.CredentialsFile == "") == (len(c.Credentials) == 0) {
		return errors.New("fcm: set one of CredentialsFile (a service-account JSON key file) or Credentials")
	}
	if c.Endpoint != "" {
		if err := checkBaseURL("fcm: Endpoint", c.Endpoint, false); err != nil {
			return err
		}
	}
	if c.TokenURL != "" {
		if err := checkBaseURL("fcm: TokenURL", c.TokenURL, false); err != nil {
			return err
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("fcm: Timeout must not be negative, got %s", c.Timeout)
	}
	return nil
}

// loadServiceAccount reads and checks the key file. Errors never quote
// the key.
func (c *FCMConfig) loadServiceAccount() (*serviceAccount, *rsa.PrivateKey, error) {
	raw := c.Credentials
	if c.CredentialsFile != "" {
		b, err := os.ReadFile(c.CredentialsFile)
		if err != nil {
			return nil, nil, fmt.Errorf("fcm: reading the service-account key file: %w", err)
		}
		raw = b
	}
	var sa serviceAccount
	if err := json.Unmarshal(raw, &sa); err != nil {
		return nil, nil, errors.New("fcm: the service-account key is not JSON")
	}
	switch {
	case sa.Type != "service_account":
		return nil, nil, fmt.Errorf("fcm: the key's type is %q, want \"service_account\"", sa.Type)
	case sa.ProjectID == "":
		return nil, nil, errors.New("fcm: the service-account key has no project_id")
	case sa.ClientEmail == "":
		return nil, nil, errors.New("fcm: the service-account key has no client_email")
	case sa.TokenURI == "" && c.TokenURL == "":
		return nil, nil, errors.New("fcm: the service-account key has no token_uri (or set TokenURL)")
	}
	if c.TokenURL != "" {
		sa.TokenURI = c.TokenURL
	} else if err := checkBaseURL("fcm: the key's token_uri", sa.TokenURI, false); err != nil {
		return nil, nil, err
	}
	key, err := parseRSAKey([]byte(sa.PrivateKey))
	if err != nil {
		return nil, nil, fmt.Errorf("fcm: the service-account key's private_key: %w", err)
	}
	return &sa, key, nil
}

// parseRSAKey parses a PEM RSA private key, PKCS#8 (what Google issues)
// or PKCS#1.
func parseRSAKey(p []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(p)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("neither a PKCS#8 nor a PKCS#1 private key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}
