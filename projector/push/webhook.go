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
	// AllowHTTP, AllowPrivate, Timeout and RootCAs are PosterConfig's.
	AllowHTTP, AllowPrivate bool
	Timeout                 time.Duration
	RootCAs                 *x509.CertPool
}

// PosterConfig configures a Poster.
type PosterConfig struct {
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

// Poster posts signed JSON bodies to endpoints a deployer or an
// integration names: the push webhook's client, and the event webhooks'
// (projector/notify). It refuses plain http and non-public addresses
// unless allowed.
type Poster struct {
	cfg    PosterConfig
	client *http.Client
	now    func() time.Time
}

// NewPoster returns a Poster.
func NewPoster(cfg PosterConfig) (*Poster, error) {
	if cfg.Timeout < 0 {
		return nil, errors.New("webhook: Timeout must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	tc := transportConfig{rootCAs: cfg.RootCAs}
	if !cfg.AllowPrivate {
		tc.dialControl = publicOnly
	}
	return &Poster{cfg: cfg, client: newHTTPClient(tc), now: time.Now}, nil
}

// Post sends body to endpoint with header, signed with secret
// (Parley-Timestamp and Parley-Signature, Sign). A 2xx answer is nil; 410
// wraps ErrInvalidToken (the endpoint is gone); 429 and 5xx, a network
// failure or a timeout are a *RetryError or another temporary error; any
// other answer, an endpoint that is not https (or http, when allowed) or
// resolves to a forbidden address, is a *RefusedError.
func (p *Poster) Post(ctx context.Context, endpoint string, secret, body []byte, header http.Header) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || p.cfg.AllowHTTP && u.Scheme == "http") {
		return &RefusedError{Reason: "webhook: the endpoint is not an https URL"}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := newRequest(ctx, u.String(), body)
	if err != nil {
		return err
	}
	now := p.now()
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Parley-Timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("Parley-Signature", Sign(secret, now, body))
	a, err := do(ctx, p.client, req, func(err error) error {
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
	case s == http.StatusTooManyRequests || s >= 500 || s == http.StatusRequestTimeout:
		return &RetryError{Status: s, After: retryAfter(a.header, now), Err: fmt.Errorf("webhook: %s: %s", u.Host, clip(a.body))}
	}
	return &RefusedError{Status: s, Reason: fmt.Sprintf("webhook: %s: %s", u.Host, clip(a.body))}
}

// Webhook posts signed JSON notifications to a deployer's push gateway.
type Webhook struct {
	secret []byte
	poster *Poster
}

// NewWebhook checks cfg and returns the client.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := NewPoster(PosterConfig{AllowHTTP: cfg.AllowHTTP, AllowPrivate: cfg.AllowPrivate, Timeout: cfg.Timeout, RootCAs: cfg.RootCAs})
	if err != nil {
		return nil, err
	}
	return &Webhook{secret: append([]byte(nil), cfg.Secret...), poster: p}, nil
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
	body, err := json.Marshal(WebhookPayload{
		ID: n.ID, Kind: n.Kind.String(), UserID: n.UserID, DeviceID: n.Target.GetDeviceId(),
		ConversationID: n.ConversationID, Seq: n.Seq, Title: n.Title, Body: n.Body, Badge: n.Badge,
		Collapse: n.Collapse, Locale: n.Target.GetLocale(), Data: appData(n),
	})
	if err != nil {
		return &RefusedError{Reason: "webhook: encoding the payload: " + err.Error()}
	}
	return w.poster.Post(ctx, n.Target.GetEndpoint(), w.secret, body, http.Header{"Parley-Notification-Id": {n.ID}})
}
