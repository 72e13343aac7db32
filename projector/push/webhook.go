package push

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// MinWebhookSecretBytes is the shortest webhook secret accepted.
const MinWebhookSecretBytes = 16

// WebhookConfig configures the webhook client.
type WebhookConfig struct {
	// Secret is the HMAC-SHA256 key of Parley-Signature, shared with the
	// receiver (at least MinWebhookSecretBytes).
	Secret []byte
	// AllowHTTP accepts plain http endpoints (loopback tests only).
	AllowHTTP bool
	// AllowPrivate lets endpoints resolve to loopback, private,
	// link-local and other non-public addresses (tests, on-premises
	// gateways). Off, such an endpoint is refused when dialed.
	AllowPrivate bool
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// RootCAs, when set, are the only CAs trusted (a test's server).
	RootCAs *x509.CertPool
}

// Validate checks the settings. Errors never quote the secret.
func (c *WebhookConfig) Validate() error {
	if len(c.Secret) < MinWebhookSecretBytes {
		return fmt.Errorf("webhook: Secret must be at least %d bytes, got %d", MinWebhookSecretBytes, len(c.Secret))
	}
	if c.Timeout < 0 {
		return errors.New("webhook: Timeout must not be negative")
	}
	return nil
}

// Webhook posts signed JSON notifications to a deployer's push gateway.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
	now    func() time.Time
}

// NewWebhook checks cfg and returns the client.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.Secret = append([]byte(nil), cfg.Secret...)
	tc := transportConfig{rootCAs: cfg.RootCAs}
	if !cfg.AllowPrivate {
		tc.dialControl = publicOnly
	}
	return &Webhook{cfg: cfg, client: newHTTPClient(tc), now: time.Now}, nil
}

// Provider is PUSH_PROVIDER_WEBHOOK.
func (w *Webhook) Provider() pb.PushProvider { return pb.PushProvider_PUSH_PROVIDER_WEBHOOK }

// WebhookPayload is the JSON body of a webhook request.
type WebhookPayload struct {
	ID             string            `json:"id"`
	Kind           string            `json:"kind"`
	UserID         string            `json:"user_id"`
	DeviceID       string            `json:"device_id"`
	ConversationID string            `json:"conversation_id"`
	Seq            int64             `json:"seq"`
	Title          string            `json:"title"`
	Body           string            `json:"body"`
	Badge          int64             `json:"badge"`
	Collapse       string            `json:"collapse"`
	Locale         string            `json:"locale,omitempty"`
	Data           map[string]string `json:"data"`
}

// Send posts n, signed, to the target's endpoint.
func (w *Webhook) Send(ctx context.Context, n *Notification) error {
	if err := checkNotification(n, w.Provider()); err != nil {
		return err
	}
	u, err := url.Parse(n.Target.GetEndpoint())
	if err != nil || u.Host == "" || !(u.Scheme == "https" || w.cfg.AllowHTTP && u.Scheme == "http") {
		return &RefusedError{Reason: "webhook: the endpoint is not an https URL"}
	}
	body, err := json.Marshal(WebhookPayload{
		ID: n.ID, Kind: n.Kind.String(), UserID: n.UserID, DeviceID: n.Target.GetDeviceId(),
		ConversationID: n.ConversationID, Seq: n.Seq, Title: n.Title, Body: n.Body, Badge: n.Badge,
		Collapse: n.Collapse, Locale: n.Target.GetLocale(), Data: appData(n),
	})
	if err != nil {
		return &RefusedError{Reason: "webhook: encoding the payload: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := newRequest(ctx, u.String(), body)
	if err != nil {
		return err
	}
	now := w.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Parley-Notification-Id", n.ID)
	req.Header.Set("Parley-Timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("Parley-Signature", Sign(w.cfg.Secret, now, body))
	a, err := do(ctx, w.client, req, func(err error) error {
		if errors.Is(err, errForbiddenAddress) {
			return &RefusedError{Reason: fmt.Sprintf("webhook: %s: the endpoint resolves to a non-public address (%v); set AllowPrivate to allow it", u.Host, err)}
		}
		return nil
	})
	if err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) {
			return err
		}
		return fmt.Errorf("webhook: %w", err)
	}
	s := a.status
	switch {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusGone:
		return invalidToken("webhook: %s: HTTP 410, the endpoint is gone", u.Host)
	case s == http.StatusTooManyRequests || s >= 500:
		return &RetryError{Status: s, After: retryAfter(a.header, now), Err: fmt.Errorf("webhook: %s: %s", u.Host, clip(a.body))}
	}
	return &RefusedError{Status: s, Reason: fmt.Sprintf("webhook: %s: %s", u.Host, clip(a.body))}
}
