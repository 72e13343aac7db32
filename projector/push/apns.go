package push

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// APNs sends through the Apple Push Notification service, over HTTP/2
// only, with token-based (JWT) authentication.
type APNs struct {
	cfg    APNsConfig
	client *http.Client
	tokens *apnsTokens
	now    func() time.Time
}

// NewAPNs checks cfg, reads the signing key and returns the client.
func NewAPNs(cfg APNsConfig) (*APNs, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, err := cfg.loadKey()
	if err != nil {
		return nil, err
	}
	if cfg.Production == "" {
		cfg.Production = DefaultAPNsProduction
	}
	if cfg.Sandbox == "" {
		cfg.Sandbox = DefaultAPNsSandbox
	}
	if cfg.Expiration == 0 {
		cfg.Expiration = DefaultAPNsExpiration
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HiddenBody == "" {
		cfg.HiddenBody = DefaultHiddenBody
	}
	a := &APNs{cfg: cfg, client: newHTTPClient(transportConfig{rootCAs: cfg.RootCAs, http2Only: true}), now: time.Now}
	a.tokens = &apnsTokens{key: key, keyID: cfg.KeyID, teamID: cfg.TeamID, now: func() time.Time { return a.now() }}
	return a, nil
}

// Provider is PUSH_PROVIDER_APNS.
func (a *APNs) Provider() pb.PushProvider { return pb.PushProvider_PUSH_PROVIDER_APNS }

// apsDict is the aps dictionary of an APNs payload.
type apsDict struct {
	Alert            *apsAlert `json:"alert,omitempty"`
	Badge            *int64    `json:"badge,omitempty"`
	Sound            string    `json:"sound,omitempty"`
	ThreadID         string    `json:"thread-id,omitempty"`
	ContentAvailable int       `json:"content-available,omitempty"`
}

type apsAlert struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type apnsPayload struct {
	APS    apsDict           `json:"aps"`
	Parley map[string]string `json:"parley"`
}

// payload is n's APNs body: an alert for a message, a background push
// (content-available, no alert, no sound) for a clear.
func (a *APNs) payload(n *Notification) apnsPayload {
	badge := n.Badge
	p := apnsPayload{Parley: appData(n), APS: apsDict{Badge: &badge}}
	switch n.Kind {
	case KindMessage:
		title, body := n.Title, n.Body
		if title == "" && body == "" {
			body = a.cfg.HiddenBody
		}
		p.APS.Alert = &apsAlert{Title: title, Body: body}
		p.APS.Sound = "default"
		p.APS.ThreadID = n.ConversationID
	case KindClear:
		p.APS.ContentAvailable = 1
	}
	return p
}

// Send posts n to /3/device/{token} of the target's environment. A 403
// about the provider token gets one new token and one more attempt.
func (a *APNs) Send(ctx context.Context, n *Notification) error {
	if err := checkNotification(n, a.Provider()); err != nil {
		return err
	}
	t := n.Target
	tok := strings.ToLower(t.GetToken())
	if len(tok) != 64 || !isHexString(tok) {
		return invalidToken("apns: the device token is not 64 hex digits")
	}
	if t.GetApnsTopic() == "" {
		return &RefusedError{Reason: "apns: target has no apns_topic"}
	}
	var host string
	switch t.GetApnsEnvironment() {
	case pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION:
		host = a.cfg.Production
	case pb.ApnsEnvironment_APNS_ENVIRONMENT_SANDBOX:
		host = a.cfg.Sandbox
	default:
		return &RefusedError{Reason: "apns: target has no apns_environment"}
	}
	n, err := fit(n, apnsMaxPayload, func(n *Notification) (int, error) {
		b, err := json.Marshal(a.payload(n))
		return len(b), err
	})
	if err != nil {
		return fmt.Errorf("apns: %w", err)
	}
	body, err := json.Marshal(a.payload(n))
	if err != nil {
		return &RefusedError{Reason: "apns: encoding the payload: " + err.Error()}
	}
	u := strings.TrimRight(host, "/") + "/3/device/" + tok
	stale := ""
	for attempt := 0; ; attempt++ {
		jwt, err := a.tokens.get(stale)
		if err != nil {
			return &RefusedError{Reason: "apns: signing the provider token: " + err.Error()}
		}
		ans, err := a.post(ctx, u, jwt, n, body)
		if err != nil {
			return err
		}
		reason := apnsReason(ans.body)
		if ans.status == http.StatusForbidden && attempt == 0 && (reason == "ExpiredProviderToken" || reason == "InvalidProviderToken") {
			stale = jwt
			continue
		}
		return a.classify(ans, reason)
	}
}

func (a *APNs) post(ctx context.Context, u, jwt string, n *Notification, body []byte) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	req, err := newRequest(ctx, u, body)
	if err != nil {
		return nil, err
	}
	h := req.Header
	h.Set("authorization", "bearer "+jwt)
	h.Set("apns-topic", n.Target.GetApnsTopic())
	h.Set("apns-id", apnsID(n.ID))
	h.Set("apns-expiration", strconv.FormatInt(a.now().Add(a.cfg.Expiration).Unix(), 10))
	h.Set("content-type", "application/json")
	if n.Collapse != "" {
		h.Set("apns-collapse-id", apnsCollapseID(n.Collapse))
	}
	if n.Kind == KindClear {
		h.Set("apns-push-type", "background")
		h.Set("apns-priority", "5")
	} else {
		h.Set("apns-push-type", "alert")
		h.Set("apns-priority", "10")
	}
	ans, err := do(ctx, a.client, req, nil)
	if err != nil {
		return nil, fmt.Errorf("apns: %w", err)
	}
	if ans.proto != 2 {
		return nil, &RefusedError{Status: ans.status, Reason: fmt.Sprintf("apns: the server answered over HTTP/%d; APNs is HTTP/2 only", ans.proto)}
	}
	return ans, nil
}

// apnsReason is the reason of an APNs error body ({"reason": "…"}).
func apnsReason(b []byte) string {
	var body struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(b, &body)
	return body.Reason
}

// classify maps APNs' answer to Send's result (README.md, "APNs").
func (a *APNs) classify(ans *answer, reason string) error {
	s := ans.status
	switch {
	case s == http.StatusOK:
		return nil
	case s == http.StatusGone,
		s == http.StatusBadRequest && (reason == "BadDeviceToken" || reason == "DeviceTokenNotForTopic"):
		return invalidToken("apns: HTTP %d %s", s, reason)
	case s == http.StatusTooManyRequests || s >= 500,
		s == http.StatusForbidden && reason == "ExpiredProviderToken":
		return &RetryError{Status: s, After: retryAfter(ans.header, a.now()), Err: fmt.Errorf("apns: %s", reason)}
	}
	if reason == "" {
		reason = clip(ans.body)
	}
	return &RefusedError{Status: s, Reason: "apns: " + reason}
}

// apnsID is a UUID derived from the notification id (SHA-256, shaped as
// an RFC 9562 version 8 UUID), so a redelivery carries the same apns-id.
func apnsID(id string) string {
	h := sha256.Sum256([]byte("parley apns-id\x00" + id))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// apnsCollapseID is the collapse key when it fits APNs' 64 bytes, else
// the hex of its SHA-256 (64 bytes): the same key always maps to the same
// id.
func apnsCollapseID(c string) string {
	if len(c) <= 64 {
		return c
	}
	h := sha256.Sum256([]byte(c))
	return hex.EncodeToString(h[:])
}

func isHexString(s string) bool {
	for i := range len(s) {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
