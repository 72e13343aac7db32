package pushserver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Webhook is a deployer's push gateway: it checks Parley-Signature with
// the shared secret and a 5-minute timestamp tolerance.
type Webhook struct {
	base
	// Secret is the shared HMAC key (32 random bytes).
	Secret    []byte
	tolerance time.Duration
}

// StartWebhook starts a webhook receiver with a new secret; it stops
// when t ends.
func StartWebhook(t testing.TB) *Webhook {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	h := &Webhook{Secret: secret, tolerance: 5 * time.Minute}
	h.start(t, http.HandlerFunc(h.serve))
	return h
}

// Endpoint is the URL to post notifications to.
func (h *Webhook) Endpoint() string { return h.URL() + "/hook" }

// Target is a webhook push target for device, at Endpoint.
func (h *Webhook) Target(device string) *pb.PushTarget {
	return &pb.PushTarget{DeviceId: device, Provider: pb.PushProvider_PUSH_PROVIDER_WEBHOOK, Endpoint: h.Endpoint()}
}

// webhookPayload is the body as the server decodes it.
type webhookPayload struct {
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
	Locale         string            `json:"locale"`
	Data           map[string]string `json:"data"`
}

func (h *Webhook) serve(w http.ResponseWriter, r *http.Request) {
	h.arrived()
	fail := func(status int, format string, args ...any) {
		why := fmt.Sprintf(format, args...)
		h.reject(why)
		http.Error(w, why, status)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/hook" {
		fail(http.StatusNotFound, "%s %s, want POST /hook", r.Method, r.URL.Path)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		fail(http.StatusUnsupportedMediaType, "Content-Type %q, want application/json", r.Header.Get("Content-Type"))
		return
	}
	raw, err := readBody(r, 64<<10)
	if err != nil {
		if errors.Is(err, errClientGone) {
			return
		}
		fail(http.StatusRequestEntityTooLarge, "body %v", err)
		return
	}
	ts := r.Header.Get("Parley-Timestamp")
	if why := h.verify(r.Header.Get("Parley-Signature"), ts, raw); why != "" {
		fail(http.StatusUnauthorized, "Parley-Signature: %s", why)
		return
	}
	var p webhookPayload
	if err := strictJSON(raw, &p); err != nil {
		fail(http.StatusBadRequest, "body: %v", err)
		return
	}
	if p.ID == "" || r.Header.Get("Parley-Notification-Id") != p.ID {
		fail(http.StatusBadRequest, "Parley-Notification-Id %q, body id %q", r.Header.Get("Parley-Notification-Id"), p.ID)
		return
	}
	if p.Kind != "message" && p.Kind != "clear" {
		fail(http.StatusBadRequest, "kind %q", p.Kind)
		return
	}
	endpoint := h.URL() + r.URL.Path
	rec := Request{Address: endpoint, Title: p.Title, Body: p.Body, Badge: p.Badge, Collapse: p.Collapse, NotificationID: p.ID,
		Kind: p.Kind, Data: p.Data, Silent: p.Kind == "clear", ProtoMajor: r.ProtoMajor, Header: r.Header.Clone(), Raw: raw}
	switch o, after := h.decide(endpoint, rec); o {
	case OK:
		w.WriteHeader(http.StatusNoContent)
	case InvalidToken:
		http.Error(w, "gone", http.StatusGone)
	case RateLimited:
		setRetryAfter(w, after)
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case Unavailable:
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}
}

// verify checks "t=<unix>,v1=<hex HMAC-SHA256(secret, t.body)>" against
// the Parley-Timestamp header and the tolerance; "" when it holds.
func (h *Webhook) verify(sig, ts string, body []byte) string {
	var t string
	var v1 []string
	for _, kv := range strings.Split(sig, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "t":
			t = v
		case "v1":
			v1 = append(v1, v)
		}
	}
	if t == "" || len(v1) == 0 {
		return "want t=<unix>,v1=<hex>"
	}
	if t != ts {
		return "t " + t + " is not Parley-Timestamp " + ts
	}
	unix, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return "t is not unix seconds"
	}
	if d := time.Since(time.Unix(unix, 0)); d > h.tolerance || d < -h.tolerance {
		return fmt.Sprintf("timestamp %s away, tolerance %s", d.Round(time.Second), h.tolerance)
	}
	m := hmac.New(sha256.New, h.Secret)
	m.Write([]byte(t + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, s := range v1 {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			return ""
		}
	}
	return "no v1 matches"
}
