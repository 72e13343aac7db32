package pushserver

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FCM is a stand-in for FCM's HTTP v1 API and Google's OAuth2 token
// endpoint.
type FCM struct {
	base
	// ProjectID and ClientEmail are the service account's.
	ProjectID   string
	ClientEmail string
	key         *rsa.PrivateKey

	tmu      sync.Mutex
	tokens   map[string]time.Time // access token → expiry
	grants   int
	lifetime time.Duration
}

// The OAuth2 scope and grant the token endpoint accepts.
const (
	fcmScope = "https://www.googleapis.com/auth/firebase.messaging"
	fcmGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// StartFCM starts an FCM server with a new service-account key; it stops
// when t ends.
func StartFCM(t testing.TB) *FCM {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("pushserver: RSA key: %v", err)
	}
	f := &FCM{ProjectID: "parley-test", ClientEmail: "notifier@parley-test.iam.gserviceaccount.com", key: key,
		tokens: map[string]time.Time{}, lifetime: time.Hour}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", f.token)
	mux.HandleFunc("/", f.send)
	f.start(t, mux)
	return f
}

// TokenURL is the token endpoint (the service account's token_uri).
func (f *FCM) TokenURL() string { return f.URL() + "/token" }

// ServiceAccountJSON is the service-account key file, its token_uri this
// server's.
func (f *FCM) ServiceAccountJSON() []byte { return f.ServiceAccountWithKey(f.key) }

// ServiceAccountWithKey is a key file for the same account but another
// private key (a key the server does not know).
func (f *FCM) ServiceAccountWithKey(key *rsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	b, _ := json.MarshalIndent(map[string]string{
		"type":           "service_account",
		"project_id":     f.ProjectID,
		"private_key_id": "0123456789abcdef",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   f.ClientEmail,
		"client_id":      "100000000000000000001",
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      f.TokenURL(),
	}, "", "  ")
	return b
}

// WriteServiceAccount writes ServiceAccountJSON to a file in a temporary
// directory of t and returns its path.
func (f *FCM) WriteServiceAccount(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(p, f.ServiceAccountJSON(), 0o600); err != nil {
		t.Fatalf("pushserver: %v", err)
	}
	return p
}

// SetTokenLifetime sets the expires_in of the access tokens granted from
// now on (default 1 h).
func (f *FCM) SetTokenLifetime(d time.Duration) {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	f.lifetime = d
}

// ExpireTokens makes every access token granted so far expired: sends
// with them get 401 UNAUTHENTICATED.
func (f *FCM) ExpireTokens() {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	for k := range f.tokens {
		f.tokens[k] = time.Time{}
	}
}

// Grants is how many access tokens the token endpoint granted.
func (f *FCM) Grants() int {
	f.tmu.Lock()
	defer f.tmu.Unlock()
	return f.grants
}

// token is the OAuth2 token endpoint (JWT bearer grant, RFC 7523).
func (f *FCM) token(w http.ResponseWriter, r *http.Request) {
	f.arrived()
	fail := func(code, why string) {
		f.reject("token: " + why)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": why})
	}
	if r.Method != http.MethodPost {
		fail("invalid_request", "method "+r.Method+", want POST")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		fail("invalid_request", "Content-Type "+r.Header.Get("Content-Type")+", want application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		fail("invalid_request", "form: "+err.Error())
		return
	}
	if g := r.PostForm.Get("grant_type"); g != fcmGrant {
		fail("unsupported_grant_type", "grant_type "+g)
		return
	}
	var claims struct {
		jwt.RegisteredClaims
		Scope string `json:"scope"`
	}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), &claims, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(f.ClientEmail), jwt.WithAudience(f.TokenURL()),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired(), jwt.WithLeeway(time.Minute))
	if err != nil {
		fail("invalid_grant", "assertion: "+err.Error())
		return
	}
	if claims.IssuedAt == nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > time.Hour {
		fail("invalid_grant", "assertion: iat missing or exp more than 1 h after iat")
		return
	}
	if claims.Scope != fcmScope {
		fail("invalid_scope", "scope "+claims.Scope+", want "+fcmScope)
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "ya29.test-" + hex.EncodeToString(b)
	f.tmu.Lock()
	f.tokens[tok] = time.Now().Add(f.lifetime)
	f.grants++
	life := f.lifetime
	f.tmu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": int64(life / time.Second), "token_type": "Bearer"})
}

// The FCM v1 message as the server decodes it: unknown fields refused.
type (
	fcmSendRequest struct {
		ValidateOnly bool           `json:"validate_only"`
		Message      *fcmMessageReq `json:"message"`
	}
	fcmMessageReq struct {
		Token        string `json:"token"`
		Topic        string `json:"topic"`
		Condition    string `json:"condition"`
		Notification *struct {
			Title string `json:"title"`
			Body  string `json:"body"`
			Image string `json:"image"`
		} `json:"notification"`
		Data    map[string]string `json:"data"`
		Android *struct {
			CollapseKey  string `json:"collapse_key"`
			Priority     string `json:"priority"`
			TTL          string `json:"ttl"`
			Notification *struct {
				Title             string `json:"title"`
				Body              string `json:"body"`
				Tag               string `json:"tag"`
				NotificationCount *int64 `json:"notification_count"`
				ChannelID         string `json:"channel_id"`
			} `json:"notification"`
		} `json:"android"`
		APNS *struct {
			Headers map[string]string `json:"headers"`
			Payload map[string]any    `json:"payload"`
		} `json:"apns"`
		Webpush map[string]any `json:"webpush"`
	}
)

// fcmStatus writes a google.rpc.Status error body.
func fcmStatus(w http.ResponseWriter, code int, status, errorCode, msg string) {
	e := map[string]any{"code": code, "message": msg, "status": status}
	if errorCode != "" {
		e["details"] = []map[string]string{{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": errorCode}}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

// send is messages:send.
func (f *FCM) send(w http.ResponseWriter, r *http.Request) {
	f.arrived()
	bad := func(format string, args ...any) {
		why := fmt.Sprintf(format, args...)
		f.reject("send: " + why)
		fcmStatus(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", why)
	}
	if want := "/v1/projects/" + f.ProjectID + "/messages:send"; r.URL.Path != want {
		// Google answers an unknown path with a plain page, not a
		// google.rpc.Status.
		f.reject("send: path " + r.URL.Path + ", want " + want)
		http.Error(w, "404. That's an error. The requested URL was not found on this server.", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		bad("method %s, want POST", r.Method)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.tmu.Lock()
	exp, known := f.tokens[tok]
	f.tmu.Unlock()
	if !ok || !known || !time.Now().Before(exp) {
		f.reject("send: access token missing, unknown or expired")
		fcmStatus(w, http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials. Expected OAuth 2 access token.")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		bad("Content-Type %q, want application/json", r.Header.Get("Content-Type"))
		return
	}
	raw, err := readBody(r, 1<<20)
	if err != nil {
		if errors.Is(err, errClientGone) {
			return
		}
		bad("body: %v", err)
		return
	}
	var req fcmSendRequest
	if err := strictJSON(raw, &req); err != nil {
		bad("Invalid JSON payload received. %v", err)
		return
	}
	m := req.Message
	switch {
	case m == nil:
		bad("message is required")
		return
	case m.Token == "":
		bad("message.token is required (this server takes no topic or condition)")
		return
	case m.Topic != "" || m.Condition != "":
		bad("exactly one of message.token, topic, condition")
		return
	case m.Notification != nil && m.Notification.Title == "" && m.Notification.Body == "":
		bad("message.notification without title or body")
		return
	}
	for k := range m.Data {
		if k == "from" || k == "message_type" || k == "notification" || strings.HasPrefix(k, "google.") || strings.HasPrefix(k, "gcm.") {
			bad("Invalid data payload key: %s", k)
			return
		}
	}
	rec := Request{Address: m.Token, Data: m.Data, ProtoMajor: r.ProtoMajor, Header: r.Header.Clone(), Raw: raw, Silent: m.Notification == nil}
	if m.Notification != nil {
		rec.Title, rec.Body = m.Notification.Title, m.Notification.Body
	}
	if a := m.Android; a != nil {
		switch a.Priority {
		case "", "high", "normal", "HIGH", "NORMAL":
		default:
			bad("message.android.priority %q, want high or normal", a.Priority)
			return
		}
		rec.Priority = strings.ToLower(a.Priority)
		rec.Collapse = a.CollapseKey
		if n := a.Notification; n != nil {
			if n.NotificationCount != nil {
				if *n.NotificationCount < 0 {
					bad("message.android.notification.notification_count is negative")
					return
				}
				rec.Badge = *n.NotificationCount
			}
			if n.Tag != "" && n.Tag != a.CollapseKey {
				bad("this server wants android.notification.tag equal to collapse_key, got %q and %q", n.Tag, a.CollapseKey)
				return
			}
		}
	}
	if a := m.APNS; a != nil {
		if why := checkFCMAPNS(a.Headers, a.Payload, m.Notification == nil); why != "" {
			bad("message.apns: %s", why)
			return
		}
		if aps, ok := a.Payload["aps"].(map[string]any); ok {
			if b, ok := aps["badge"].(float64); ok {
				rec.Badge = int64(b)
			}
		}
	}
	rec.NotificationID, rec.Kind = m.Data["notification_id"], m.Data["kind"]
	switch o, after := f.decide(m.Token, rec); o {
	case OK:
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		_ = json.NewEncoder(w).Encode(map[string]string{"name": "projects/" + f.ProjectID + "/messages/0:" + hex.EncodeToString(raw[:8])})
	case InvalidToken:
		fcmStatus(w, http.StatusNotFound, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
	case RateLimited:
		setRetryAfter(w, after)
		fcmStatus(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.")
	case Unavailable:
		fcmStatus(w, http.StatusServiceUnavailable, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.")
	}
}

// checkFCMAPNS checks the apns section: string headers of APNs' names
// with valid values, and a payload with an aps dictionary; a silent
// message must be a background push.
func checkFCMAPNS(h map[string]string, payload map[string]any, silent bool) string {
	for k, v := range h {
		switch k {
		case "apns-collapse-id":
			if len(v) > 64 {
				return "apns-collapse-id longer than 64 bytes"
			}
		case "apns-priority":
			if v != "5" && v != "10" {
				return "apns-priority " + v
			}
		case "apns-push-type":
			if v != "alert" && v != "background" {
				return "apns-push-type " + v
			}
		case "apns-expiration", "apns-id", "apns-topic":
		default:
			return "unknown header " + k
		}
	}
	aps, ok := payload["aps"].(map[string]any)
	if !ok {
		return "payload.aps is missing or not an object"
	}
	if silent {
		if h["apns-push-type"] != "background" || h["apns-priority"] != "5" || aps["content-available"] != float64(1) || aps["alert"] != nil {
			return "a data-only message must be a background push (apns-push-type background, apns-priority 5, content-available 1, no alert)"
		}
	}
	return ""
}
