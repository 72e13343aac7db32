package pushserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// APNs is a stand-in for the APNs provider API: HTTP/2 only, token
// (JWT) authentication.
type APNs struct {
	base
	// KeyID and TeamID are the signing key's id and the team's.
	KeyID  string
	TeamID string
	key    *ecdsa.PrivateKey

	jmu     sync.Mutex
	topic   string
	jwts    map[string]bool // provider tokens seen → expired by ExpireProviderTokens
	jwtList []string
}

// StartAPNs starts an APNs server with a new signing key; it stops when t
// ends.
func StartAPNs(t testing.TB) *APNs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("pushserver: P-256 key: %v", err)
	}
	a := &APNs{KeyID: "KEY4TEST01", TeamID: "TEAM4TEST1", key: key, jwts: map[string]bool{}}
	a.start(t, http.HandlerFunc(a.serve))
	return a
}

// StartAPNsLike starts another APNs server (e.g. the sandbox of other's
// production) that accepts the provider tokens of other's key and team.
func StartAPNsLike(t testing.TB, other *APNs) *APNs {
	t.Helper()
	a := &APNs{KeyID: other.KeyID, TeamID: other.TeamID, key: other.key, jwts: map[string]bool{}}
	a.start(t, http.HandlerFunc(a.serve))
	return a
}

// SetTopic makes topic the only apns-topic accepted (others get 400
// DeviceTokenNotForTopic); "" accepts any.
func (a *APNs) SetTopic(topic string) {
	a.jmu.Lock()
	defer a.jmu.Unlock()
	a.topic = topic
}

// KeyPEM is the signing key as a .p8 file holds it (PKCS#8 PEM).
func (a *APNs) KeyPEM() []byte { return p8(a.key) }

// WriteKey writes KeyPEM to a .p8 file in a temporary directory of t and
// returns its path.
func (a *APNs) WriteKey(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "AuthKey_"+a.KeyID+".p8")
	if err := os.WriteFile(p, a.KeyPEM(), 0o600); err != nil {
		t.Fatalf("pushserver: %v", err)
	}
	return p
}

// p8 is key in PKCS#8 PEM.
func p8(key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ProviderTokens are the distinct provider tokens (JWTs) that
// authenticated a request, in the order first seen.
func (a *APNs) ProviderTokens() []string {
	a.jmu.Lock()
	defer a.jmu.Unlock()
	return append([]string(nil), a.jwtList...)
}

// ExpireProviderTokens makes every provider token seen so far expired:
// requests with them get 403 ExpiredProviderToken.
func (a *APNs) ExpireProviderTokens() {
	a.jmu.Lock()
	defer a.jmu.Unlock()
	for k := range a.jwts {
		a.jwts[k] = true
	}
}

var (
	apnsPath = regexp.MustCompile(`^/3/device/([0-9a-fA-F]+)$`)
	uuidRE   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// apnsAPS is the aps dictionary as the server decodes it.
type apnsAPS struct {
	Alert             json.RawMessage `json:"alert"`
	Badge             *int64          `json:"badge"`
	Sound             json.RawMessage `json:"sound"`
	ThreadID          string          `json:"thread-id"`
	Category          string          `json:"category"`
	ContentAvailable  int             `json:"content-available"`
	MutableContent    int             `json:"mutable-content"`
	InterruptionLevel string          `json:"interruption-level"`
}

type apnsAlertDict struct {
	Title        string   `json:"title"`
	Subtitle     string   `json:"subtitle"`
	Body         string   `json:"body"`
	LocKey       string   `json:"loc-key"`
	LocArgs      []string `json:"loc-args"`
	TitleLocKey  string   `json:"title-loc-key"`
	TitleLocArgs []string `json:"title-loc-args"`
}

func apnsReason(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]any{"reason": reason}
	if status == http.StatusGone {
		body["timestamp"] = time.Now().UnixMilli()
	}
	_ = json.NewEncoder(w).Encode(body)
}

func (a *APNs) serve(w http.ResponseWriter, r *http.Request) {
	a.arrived()
	fail := func(status int, reason, detail string) {
		a.reject(reason + ": " + detail)
		apnsReason(w, status, reason)
	}
	if r.ProtoMajor != 2 {
		fail(http.StatusBadRequest, "HTTP2Required", fmt.Sprintf("the request came over HTTP/%d.%d; APNs speaks HTTP/2 only", r.ProtoMajor, r.ProtoMinor))
		return
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
		return
	}
	m := apnsPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		fail(http.StatusNotFound, "BadPath", r.URL.Path)
		return
	}
	token := strings.ToLower(m[1])
	if len(token) != 64 {
		fail(http.StatusBadRequest, "BadDeviceToken", fmt.Sprintf("%d hex digits, want 64", len(token)))
		return
	}
	if reason, detail := a.checkJWT(r.Header.Get("authorization")); reason != "" {
		fail(http.StatusForbidden, reason, detail)
		return
	}
	h := r.Header
	topic := h.Get("apns-topic")
	a.jmu.Lock()
	only := a.topic
	a.jmu.Unlock()
	switch {
	case topic == "":
		fail(http.StatusBadRequest, "MissingTopic", "no apns-topic")
		return
	case only != "" && topic != only:
		fail(http.StatusBadRequest, "DeviceTokenNotForTopic", topic)
		return
	}
	if id := h.Get("apns-id"); id != "" && !uuidRE.MatchString(id) {
		fail(http.StatusBadRequest, "BadMessageId", id)
		return
	}
	if c := h.Get("apns-collapse-id"); len(c) > 64 {
		fail(http.StatusBadRequest, "BadCollapseId", fmt.Sprintf("%d bytes, at most 64", len(c)))
		return
	}
	if e := h.Get("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			fail(http.StatusBadRequest, "BadExpirationDate", e)
			return
		}
	}
	pushType, prio := h.Get("apns-push-type"), h.Get("apns-priority")
	switch prio {
	case "", "5", "10", "1":
	default:
		fail(http.StatusBadRequest, "BadPriority", prio)
		return
	}
	switch pushType {
	case "alert":
	case "background":
		if prio != "5" {
			fail(http.StatusBadRequest, "BadPriority", "a background push must have apns-priority 5, got "+prio)
			return
		}
	case "":
		fail(http.StatusBadRequest, "InvalidPushType", "no apns-push-type (required since iOS 13)")
		return
	default:
		fail(http.StatusBadRequest, "InvalidPushType", pushType)
		return
	}
	raw, err := readBody(r, 4096)
	if err != nil {
		if errors.Is(err, errClientGone) {
			return
		}
		fail(http.StatusRequestEntityTooLarge, "PayloadTooLarge", err.Error())
		return
	}
	if len(raw) == 0 {
		fail(http.StatusBadRequest, "PayloadEmpty", "no body")
		return
	}
	var body struct {
		APS    *apnsAPS          `json:"aps"`
		Parley map[string]string `json:"parley"`
	}
	if err := strictJSON(raw, &body); err != nil {
		fail(http.StatusBadRequest, "BadPayload", err.Error())
		return
	}
	if body.APS == nil {
		fail(http.StatusBadRequest, "BadPayload", "no aps dictionary")
		return
	}
	aps := body.APS
	rec := Request{Address: token, Collapse: h.Get("apns-collapse-id"), Priority: prio, ProtoMajor: r.ProtoMajor,
		Header: h.Clone(), Raw: raw, Data: body.Parley, Silent: pushType == "background"}
	if aps.Badge != nil {
		rec.Badge = *aps.Badge
	}
	switch pushType {
	case "background":
		if aps.ContentAvailable != 1 || len(aps.Alert) != 0 || len(aps.Sound) != 0 {
			fail(http.StatusBadRequest, "BadPayload", "a background push has content-available 1 and no alert or sound")
			return
		}
	case "alert":
		if len(aps.Alert) == 0 {
			fail(http.StatusBadRequest, "BadPayload", "an alert push without aps.alert")
			return
		}
		var s string
		if json.Unmarshal(aps.Alert, &s) == nil {
			rec.Body = s
		} else {
			var d apnsAlertDict
			if err := strictJSON(aps.Alert, &d); err != nil {
				fail(http.StatusBadRequest, "BadPayload", "aps.alert: "+err.Error())
				return
			}
			if d.Title == "" && d.Body == "" && d.LocKey == "" && d.TitleLocKey == "" {
				fail(http.StatusBadRequest, "BadPayload", "aps.alert shows nothing")
				return
			}
			rec.Title, rec.Body = d.Title, d.Body
		}
	}
	rec.NotificationID, rec.Kind = body.Parley["notification_id"], body.Parley["kind"]
	switch o, after := a.decide(token, rec); o {
	case OK:
		w.Header().Set("apns-id", h.Get("apns-id"))
		w.WriteHeader(http.StatusOK)
	case InvalidToken:
		apnsReason(w, http.StatusGone, "Unregistered")
	case RateLimited:
		setRetryAfter(w, after)
		apnsReason(w, http.StatusTooManyRequests, "TooManyRequests")
	case Unavailable:
		apnsReason(w, http.StatusServiceUnavailable, "ServiceUnavailable")
	}
}

// checkJWT verifies the provider token: "bearer <ES256 JWT>" with the
// server's kid, its team as iss, and an iat neither older than an hour
// nor in the future. It returns APNs' reason when it fails.
func (a *APNs) checkJWT(auth string) (reason, detail string) {
	s, ok := strings.CutPrefix(auth, "bearer ")
	if !ok || s == "" {
		return "MissingProviderToken", "no authorization: bearer <token>"
	}
	var claims jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(s, &claims, func(*jwt.Token) (any, error) { return &a.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(a.TeamID), jwt.WithIssuedAt(), jwt.WithLeeway(time.Minute))
	if err != nil {
		return "InvalidProviderToken", err.Error()
	}
	if kid, _ := tok.Header["kid"].(string); kid != a.KeyID {
		return "InvalidProviderToken", fmt.Sprintf("kid %q, want %q", kid, a.KeyID)
	}
	if claims.IssuedAt == nil {
		return "InvalidProviderToken", "no iat"
	}
	if time.Since(claims.IssuedAt.Time) > time.Hour {
		return "ExpiredProviderToken", "iat more than an hour ago"
	}
	a.jmu.Lock()
	defer a.jmu.Unlock()
	expired, seen := a.jwts[s]
	if !seen {
		a.jwts[s] = false
		a.jwtList = append(a.jwtList, s)
	}
	if expired {
		return "ExpiredProviderToken", "expired by the test"
	}
	return "", ""
}
