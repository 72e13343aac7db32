package pushserver

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// WebPush is a stand-in for a browser's push service (RFC 8030) that
// checks VAPID (RFC 8292) and decrypts each message (RFC 8291) with the
// subscription's private key.
type WebPush struct {
	base

	smu    sync.Mutex
	subs   map[string]*subscription // path → subscription
	vapidK string                   // the application server key subscriptions are bound to; "" any
}

type subscription struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// Subscription is what a browser's PushSubscription gives the app.
type Subscription struct {
	Endpoint string
	// P256dh and Auth are base64url (no padding), as toJSON() gives them.
	P256dh string
	Auth   string
}

// Target is the push target of the subscription for device.
func (s Subscription) Target(device string) *pb.PushTarget {
	return &pb.PushTarget{DeviceId: device, Provider: pb.PushProvider_PUSH_PROVIDER_WEB_PUSH,
		Endpoint: s.Endpoint, P256Dh: s.P256dh, Auth: s.Auth}
}

// StartWebPush starts a push service; it stops when t ends.
func StartWebPush(t testing.TB) *WebPush {
	t.Helper()
	w := &WebPush{subs: map[string]*subscription{}}
	w.start(t, http.HandlerFunc(w.serve))
	return w
}

// RequireVAPIDKey binds subscriptions to an application server key (the
// applicationServerKey a browser subscribes with): a request signed with
// another key gets 403.
func (w *WebPush) RequireVAPIDKey(publicKey string) {
	w.smu.Lock()
	defer w.smu.Unlock()
	w.vapidK = strings.TrimRight(publicKey, "=")
}

// Subscribe creates a subscription (a new P-256 key pair and a 16-byte
// auth secret) and returns what the browser would give the app.
func (w *WebPush) Subscribe(t testing.TB) Subscription {
	t.Helper()
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("pushserver: P-256 key: %v", err)
	}
	auth := make([]byte, 16)
	id := make([]byte, 16)
	_, _ = rand.Read(auth)
	_, _ = rand.Read(id)
	path := "/push/" + hex.EncodeToString(id)
	w.smu.Lock()
	w.subs[path] = &subscription{key: key, auth: auth}
	w.smu.Unlock()
	b64 := base64.RawURLEncoding.EncodeToString
	return Subscription{Endpoint: w.URL() + path, P256dh: b64(key.PublicKey().Bytes()), Auth: b64(auth)}
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// webPushPayload is Parley's payload as the server decodes it.
type webPushPayload struct {
	ID             string            `json:"id"`
	Kind           string            `json:"kind"`
	ConversationID string            `json:"conversation_id"`
	Seq            int64             `json:"seq"`
	Title          string            `json:"title"`
	Body           string            `json:"body"`
	Badge          int64             `json:"badge"`
	Data           map[string]string `json:"data"`
}

func (w *WebPush) serve(rw http.ResponseWriter, r *http.Request) {
	w.arrived()
	fail := func(status int, format string, args ...any) {
		why := fmt.Sprintf(format, args...)
		w.reject(why)
		http.Error(rw, why, status)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "method %s, want POST", r.Method)
		return
	}
	w.smu.Lock()
	sub := w.subs[r.URL.Path]
	wantKey := w.vapidK
	w.smu.Unlock()
	if sub == nil {
		fail(http.StatusNotFound, "no subscription at %s", r.URL.Path)
		return
	}
	if status, why := w.checkVAPID(r.Header.Get("Authorization"), wantKey); why != "" {
		fail(status, "VAPID: %s", why)
		return
	}
	h := r.Header
	if ce := h.Get("Content-Encoding"); ce != "aes128gcm" {
		fail(http.StatusBadRequest, "Content-Encoding %q, want aes128gcm", ce)
		return
	}
	ttl, err := strconv.ParseInt(h.Get("TTL"), 10, 64)
	if err != nil || ttl < 0 {
		fail(http.StatusBadRequest, "TTL %q, want delta-seconds", h.Get("TTL"))
		return
	}
	urgency := h.Get("Urgency")
	switch urgency {
	case "", "very-low", "low", "normal", "high":
	default:
		fail(http.StatusBadRequest, "Urgency %q", urgency)
		return
	}
	topic := h.Get("Topic")
	if topic != "" && !topicRE.MatchString(topic) {
		fail(http.StatusBadRequest, "Topic %q: at most 32 base64url characters (RFC 8030 §5.4)", topic)
		return
	}
	body, err := readBody(r, 4096)
	if err != nil {
		if errors.Is(err, errClientGone) {
			return
		}
		fail(http.StatusRequestEntityTooLarge, "payload %v", err)
		return
	}
	plain, err := decryptAES128GCM(body, sub.key, sub.auth)
	if err != nil {
		fail(http.StatusBadRequest, "decrypting the payload: %v", err)
		return
	}
	var p webPushPayload
	if err := strictJSON(plain, &p); err != nil {
		fail(http.StatusBadRequest, "the decrypted payload is not Parley's JSON: %v", err)
		return
	}
	endpoint := w.URL() + r.URL.Path
	rec := Request{Address: endpoint, Title: p.Title, Body: p.Body, Badge: p.Badge, Collapse: topic, NotificationID: p.ID,
		Kind: p.Kind, Data: p.Data, Priority: urgency, Silent: p.Kind == "clear", ProtoMajor: r.ProtoMajor, Header: h.Clone(), Raw: plain}
	switch o, after := w.decide(endpoint, rec); o {
	case OK:
		rw.Header().Set("Location", w.URL()+"/message/"+hex.EncodeToString(body[:8]))
		rw.WriteHeader(http.StatusCreated)
	case InvalidToken:
		http.Error(rw, "subscription expired", http.StatusGone)
	case RateLimited:
		setRetryAfter(rw, after)
		http.Error(rw, "too many requests", http.StatusTooManyRequests)
	case Unavailable:
		http.Error(rw, "unavailable", http.StatusServiceUnavailable)
	}
}

// checkVAPID verifies "vapid t=<JWT>, k=<public key>" (RFC 8292 §3): an
// ES256 JWT signed by k, aud the push service's origin, exp in the future
// and at most 24 h away, sub a mailto: or https: contact.
func (w *WebPush) checkVAPID(auth, wantKey string) (int, string) {
	rest, ok := strings.CutPrefix(auth, "vapid ")
	if !ok {
		return http.StatusUnauthorized, "Authorization is not the vapid scheme"
	}
	var t, k string
	for _, part := range strings.Split(rest, ",") {
		name, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "t":
			t = v
		case "k":
			k = v
		}
	}
	if t == "" || k == "" {
		return http.StatusUnauthorized, "vapid without t or k"
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k, "="))
	if err != nil || len(raw) != 65 || raw[0] != 4 {
		return http.StatusUnauthorized, "k is not an uncompressed P-256 point in base64url"
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic256(), raw)
	if err != nil {
		return http.StatusUnauthorized, "k: " + err.Error()
	}
	var claims jwt.RegisteredClaims
	if _, err := jwt.ParseWithClaims(t, &claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired(), jwt.WithAudience(origin(w.URL()))); err != nil {
		return http.StatusUnauthorized, "JWT: " + err.Error()
	}
	if time.Until(claims.ExpiresAt.Time) > 24*time.Hour {
		return http.StatusUnauthorized, "exp more than 24 h ahead"
	}
	if !strings.HasPrefix(claims.Subject, "mailto:") && !strings.HasPrefix(claims.Subject, "https:") || strings.HasPrefix(claims.Subject, "mailto:mailto:") {
		return http.StatusUnauthorized, fmt.Sprintf("sub %q, want a mailto: or https: contact", claims.Subject)
	}
	if wantKey != "" && strings.TrimRight(k, "=") != wantKey {
		return http.StatusForbidden, "the subscription belongs to another application server key"
	}
	return 0, ""
}

// origin is u's scheme://host.
func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Scheme + "://" + p.Host
}
