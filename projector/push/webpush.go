package push

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// DefaultWebPushTTL is how long a push service keeps a notification for
// an offline browser when the Config leaves TTL zero.
const DefaultWebPushTTL = 24 * time.Hour

// WebPushConfig configures the Web Push client (RFC 8030, RFC 8291
// aes128gcm, RFC 8292 VAPID).
type WebPushConfig struct {
	// VAPIDPublicKey is the application server key browsers subscribed
	// with: an uncompressed P-256 point, base64url.
	VAPIDPublicKey string
	// VAPIDPrivateKey is its private scalar (32 bytes), base64url.
	VAPIDPrivateKey string
	// Subscriber is the operator's contact, the VAPID JWT's sub: a
	// "mailto:" address or an https URL.
	Subscriber string
	// TTL is how long the push service keeps a notification for an
	// offline browser (default DefaultWebPushTTL; rounded down to
	// seconds).
	TTL time.Duration
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// RootCAs, when set, are the only CAs trusted (a test's server).
	RootCAs *x509.CertPool
	// HTTPClient, when set, is used instead of the client's own (RootCAs
	// is then ignored).
	HTTPClient *http.Client
}

// GenerateVAPIDKeys makes a new VAPID key pair in the form WebPushConfig
// takes: the uncompressed P-256 public point and the 32-byte private
// scalar, each base64url without padding.
func GenerateVAPIDKeys() (publicKey, privateKey string, err error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(k.Bytes()), nil
}

// ParseVAPIDPublicKey decodes a VAPID public key in the form WebPushConfig
// takes, and a browser subscribes with (applicationServerKey): an
// uncompressed P-256 point, base64url.
func ParseVAPIDPublicKey(s string) ([]byte, error) {
	pub, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(pub) != 65 || pub[0] != 4 {
		return nil, errors.New("webpush: VAPIDPublicKey must be an uncompressed P-256 point, 65 bytes in base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(pub); err != nil {
		return nil, errors.New("webpush: VAPIDPublicKey is not a point of P-256")
	}
	return pub, nil
}

// Validate checks the keys (the public one must be the private one's) and
// the subscriber. Errors never quote the private key.
func (c *WebPushConfig) Validate() error {
	priv, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(c.VAPIDPrivateKey, "="))
	if err != nil || len(priv) != 32 {
		return errors.New("webpush: VAPIDPrivateKey must be a P-256 private key, 32 bytes in base64url")
	}
	k, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return errors.New("webpush: VAPIDPrivateKey is not a P-256 private key")
	}
	pub, err := ParseVAPIDPublicKey(c.VAPIDPublicKey)
	if err != nil {
		return err
	}
	if string(k.PublicKey().Bytes()) != string(pub) {
		return errors.New("webpush: VAPIDPublicKey is not the public key of VAPIDPrivateKey")
	}
	switch {
	case strings.HasPrefix(c.Subscriber, "mailto:") && len(c.Subscriber) > len("mailto:") && strings.Contains(c.Subscriber, "@"):
	case strings.HasPrefix(c.Subscriber, "https://"):
		if _, err := url.Parse(c.Subscriber); err != nil {
			return fmt.Errorf("webpush: Subscriber %q is not a URL", c.Subscriber)
		}
	default:
		return fmt.Errorf("webpush: Subscriber must be a mailto: address or an https URL (RFC 8292 §2.1), got %q", c.Subscriber)
	}
	if c.TTL < 0 || c.Timeout < 0 {
		return errors.New("webpush: TTL and Timeout must not be negative")
	}
	return nil
}

// WebPush sends to browsers' push services.
type WebPush struct {
	cfg    WebPushConfig
	client *http.Client
	now    func() time.Time
}

// NewWebPush checks cfg and returns the client.
func NewWebPush(cfg WebPushConfig) (*WebPush, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultWebPushTTL
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	client := cfg.HTTPClient
	if client == nil {
		client = newHTTPClient(transportConfig{rootCAs: cfg.RootCAs})
	}
	return &WebPush{cfg: cfg, client: client, now: time.Now}, nil
}

// Provider is PUSH_PROVIDER_WEB_PUSH.
func (w *WebPush) Provider() pb.PushProvider { return pb.PushProvider_PUSH_PROVIDER_WEB_PUSH }

// WebPushPayload is the JSON the service worker decrypts from a push
// event (event.data.json()).
type WebPushPayload struct {
	ID             string            `json:"id"`
	Kind           string            `json:"kind"`
	ConversationID string            `json:"conversation_id"`
	Seq            int64             `json:"seq"`
	Title          string            `json:"title"`
	Body           string            `json:"body"`
	Badge          int64             `json:"badge"`
	Data           map[string]string `json:"data"`
}

// WebPushTopic is the Topic header for a collapse key: RFC 8030 §5.4
// allows at most 32 base64url characters, so it is the base64url of the
// first 24 bytes of the key's SHA-256 (always 32 characters; the same
// key, the same topic).
func WebPushTopic(collapse string) string {
	h := sha256.Sum256([]byte(collapse))
	return base64.RawURLEncoding.EncodeToString(h[:24])
}

// Send encrypts n's payload for the subscription and posts it to its
// endpoint.
func (w *WebPush) Send(ctx context.Context, n *Notification) error {
	if err := checkNotification(n, w.Provider()); err != nil {
		return err
	}
	t := n.Target
	u, err := url.Parse(t.GetEndpoint())
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return &RefusedError{Reason: "webpush: the endpoint is not an https URL"}
	}
	encode := func(n *Notification) ([]byte, error) {
		return json.Marshal(WebPushPayload{
			ID: n.ID, Kind: n.Kind.String(), ConversationID: n.ConversationID, Seq: n.Seq,
			Title: n.Title, Body: n.Body, Badge: n.Badge, Data: appData(n),
		})
	}
	n, err = fit(n, webPushMaxPayload, func(n *Notification) (int, error) {
		b, err := encode(n)
		return len(b), err
	})
	if err != nil {
		return fmt.Errorf("webpush: %w", err)
	}
	payload, err := encode(n)
	if err != nil {
		return &RefusedError{Reason: "webpush: encoding the payload: " + err.Error()}
	}
	opts := &webpush.Options{
		HTTPClient:      &uaClient{w.client},
		Subscriber:      strings.TrimPrefix(w.cfg.Subscriber, "mailto:"), // the library adds "mailto:" to what is not https
		TTL:             int(w.cfg.TTL / time.Second),
		Urgency:         webpush.UrgencyHigh,
		VAPIDPublicKey:  w.cfg.VAPIDPublicKey,
		VAPIDPrivateKey: w.cfg.VAPIDPrivateKey,
	}
	if n.Kind == KindClear {
		opts.Urgency = webpush.UrgencyNormal
	}
	if n.Collapse != "" {
		opts.Topic = WebPushTopic(n.Collapse)
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	sub := &webpush.Subscription{Endpoint: t.GetEndpoint(), Keys: webpush.Keys{P256dh: t.GetP256Dh(), Auth: t.GetAuth()}}
	resp, err := webpush.SendNotificationWithContext(ctx, payload, sub, opts)
	if err != nil {
		var ue *url.Error
		if !errors.As(err, &ue) {
			// Encryption or signing failed before anything was sent: the
			// subscription's keys are unusable.
			return &RefusedError{Reason: "webpush: encrypting for the subscription: " + err.Error()}
		}
		if ctx.Err() != nil {
			return &RetryError{Err: fmt.Errorf("webpush: %s: %w", u.Host, ctx.Err())}
		}
		return &RetryError{Err: fmt.Errorf("webpush: %s: %w", u.Host, ue.Err)}
	}
	a, err := readAnswer(resp, u.Host)
	if err != nil {
		return err
	}
	return w.classify(a, u.Host)
}

// classify maps the push service's answer to Send's result (README.md,
// "Web Push").
func (w *WebPush) classify(a *answer, host string) error {
	s := a.status
	switch {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusNotFound || s == http.StatusGone:
		return invalidToken("webpush: %s: HTTP %d, the subscription is gone", host, s)
	case s == http.StatusTooManyRequests || s >= 500:
		return &RetryError{Status: s, After: retryAfter(a.header, w.now()), Err: fmt.Errorf("webpush: %s: %s", host, clip(a.body))}
	}
	return &RefusedError{Status: s, Reason: fmt.Sprintf("webpush: %s: %s", host, clip(a.body))}
}

// uaClient sets the User-Agent on the requests the library builds.
type uaClient struct{ c *http.Client }

func (u *uaClient) Do(req *http.Request) (*http.Response, error) {
	req.Header.Set("User-Agent", userAgent)
	return u.c.Do(req)
}
