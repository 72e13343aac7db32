package push

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// FCM sends through Firebase Cloud Messaging's HTTP v1 API.
type FCM struct {
	cfg     FCMConfig
	sendURL string
	client  *http.Client
	tokens  *fcmTokens
	now     func() time.Time
}

// NewFCM checks cfg, reads the service-account key and returns the
// client. No request is made until the first Send.
func NewFCM(cfg FCMConfig) (*FCM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sa, key, err := cfg.loadServiceAccount()
	if err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultFCMEndpoint
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HiddenBody == "" {
		cfg.HiddenBody = DefaultHiddenBody
	}
	client := cfg.HTTPClient
	if client == nil {
		client = newHTTPClient(transportConfig{rootCAs: cfg.RootCAs})
	}
	f := &FCM{
		cfg:     cfg,
		sendURL: strings.TrimRight(cfg.Endpoint, "/") + "/v1/projects/" + url.PathEscape(sa.ProjectID) + "/messages:send",
		client:  client,
		now:     time.Now,
	}
	f.tokens = &fcmTokens{sa: sa, key: key, client: client, timeout: cfg.Timeout, now: func() time.Time { return f.now() }}
	return f, nil
}

// Provider is PUSH_PROVIDER_FCM.
func (f *FCM) Provider() pb.PushProvider { return pb.PushProvider_PUSH_PROVIDER_FCM }

// The FCM v1 message as the client sends it.
type (
	fcmRequest struct {
		Message fcmMessage `json:"message"`
	}
	fcmMessage struct {
		Token        string            `json:"token"`
		Notification *fcmNotification  `json:"notification,omitempty"`
		Data         map[string]string `json:"data"`
		Android      fcmAndroid        `json:"android"`
		APNS         fcmAPNS           `json:"apns"`
	}
	fcmNotification struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	}
	fcmAndroid struct {
		CollapseKey  string                  `json:"collapse_key,omitempty"`
		Priority     string                  `json:"priority"`
		Notification *fcmAndroidNotification `json:"notification,omitempty"`
	}
	fcmAndroidNotification struct {
		Tag               string `json:"tag,omitempty"`
		NotificationCount int64  `json:"notification_count"`
	}
	fcmAPNS struct {
		Headers map[string]string `json:"headers"`
		Payload fcmAPNSPayload    `json:"payload"`
	}
	fcmAPNSPayload struct {
		APS apsDict `json:"aps"`
	}
)

// message is n as an FCM v1 message.
func (f *FCM) message(n *Notification) fcmRequest {
	m := fcmMessage{
		Token: n.Target.GetToken(),
		Data:  appData(n),
		APNS:  fcmAPNS{Headers: map[string]string{}},
	}
	if n.Collapse != "" {
		m.Android.CollapseKey = n.Collapse
		m.APNS.Headers["apns-collapse-id"] = apnsCollapseID(n.Collapse)
	}
	badge := n.Badge
	switch n.Kind {
	case KindMessage:
		title, body := n.Title, n.Body
		if title == "" && body == "" {
			body = f.cfg.HiddenBody
		}
		m.Notification = &fcmNotification{Title: title, Body: body}
		m.Android.Priority = "high"
		m.Android.Notification = &fcmAndroidNotification{Tag: n.Collapse, NotificationCount: n.Badge}
		m.APNS.Headers["apns-priority"] = "10"
		m.APNS.Headers["apns-push-type"] = "alert"
		m.APNS.Payload.APS = apsDict{Badge: &badge, Sound: "default", ThreadID: n.ConversationID}
	case KindClear:
		// A data message: nothing shows, the app updates its badge and
		// removes the conversation's notification.
		m.Android.Priority = "normal"
		m.APNS.Headers["apns-priority"] = "5"
		m.APNS.Headers["apns-push-type"] = "background"
		m.APNS.Payload.APS = apsDict{Badge: &badge, ContentAvailable: 1}
	}
	return fcmRequest{Message: m}
}

// Send posts n to messages:send. A 401 that is about the access token
// (not THIRD_PARTY_AUTH_ERROR) is answered by one new grant and one more
// attempt.
func (f *FCM) Send(ctx context.Context, n *Notification) error {
	if err := checkNotification(n, f.Provider()); err != nil {
		return err
	}
	if n.Target.GetToken() == "" {
		return &RefusedError{Reason: "fcm: target has no token"}
	}
	for k := range n.Data {
		if fcmReservedKey(k) {
			return &RefusedError{Reason: fmt.Sprintf("fcm: data key %q is reserved by FCM", k)}
		}
	}
	n, err := fit(n, fcmMaxPayload, func(n *Notification) (int, error) {
		m := f.message(n).Message
		b, err := json.Marshal(struct {
			N *fcmNotification  `json:"notification"`
			D map[string]string `json:"data"`
		}{m.Notification, m.Data})
		return len(b), err
	})
	if err != nil {
		return fmt.Errorf("fcm: %w", err)
	}
	body, err := json.Marshal(f.message(n))
	if err != nil {
		return &RefusedError{Reason: "fcm: encoding the message: " + err.Error()}
	}
	stale := ""
	for attempt := 0; ; attempt++ {
		tok, err := f.tokens.get(ctx, stale)
		if err != nil {
			return err
		}
		a, err := f.post(ctx, tok, body)
		if err != nil {
			return err
		}
		if a.status == http.StatusUnauthorized && attempt == 0 && fcmParseError(a.body).code != "THIRD_PARTY_AUTH_ERROR" {
			stale = tok
			continue
		}
		return f.classify(a)
	}
}

func (f *FCM) post(ctx context.Context, tok string, body []byte) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := newRequest(ctx, f.sendURL, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	a, err := do(ctx, f.client, req, nil)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	return a, nil
}

// fcmError is the part of a google.rpc.Status error body the client
// reads.
type fcmError struct {
	status  string // google.rpc.Code name, e.g. "NOT_FOUND"
	code    string // FcmError.errorCode, e.g. "UNREGISTERED"
	message string
}

func fcmParseError(b []byte) fcmError {
	var body struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
			Details []struct {
				Type      string `json:"@type"`
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &body)
	e := fcmError{status: body.Error.Status, message: body.Error.Message}
	for _, d := range body.Error.Details {
		if d.Type == "type.googleapis.com/google.firebase.fcm.v1.FcmError" && d.ErrorCode != "" {
			e.code = d.ErrorCode
			break
		}
	}
	return e
}

// classify maps FCM's answer to Send's result (README.md, "FCM").
func (f *FCM) classify(a *answer) error {
	if a.status >= 200 && a.status < 300 {
		return nil
	}
	e := fcmParseError(a.body)
	what := strings.TrimSpace(e.code + " " + e.status + " " + clip([]byte(e.message)))
	switch {
	case e.code == "UNREGISTERED" || a.status == http.StatusNotFound && e.status == "NOT_FOUND":
		// A 404 without FCM's error body (a wrong endpoint, a proxy) says
		// nothing about the token: refused below.
		return invalidToken("fcm: HTTP %d %s", a.status, what)
	case e.code == "INVALID_ARGUMENT" || e.status == "INVALID_ARGUMENT" || a.status == http.StatusBadRequest:
		if fcmAboutToken(e.message) {
			return invalidToken("fcm: HTTP %d %s", a.status, what)
		}
		return &RefusedError{Status: a.status, Reason: "fcm: " + what}
	case e.code == "QUOTA_EXCEEDED" || a.status == http.StatusTooManyRequests,
		e.code == "UNAVAILABLE" || e.code == "INTERNAL" || a.status >= 500:
		return &RetryError{Status: a.status, After: retryAfter(a.header, f.now()), Err: fmt.Errorf("fcm: %s", what)}
	}
	// SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR, a 401 after a new grant,
	// 403 and any other 4xx.
	return &RefusedError{Status: a.status, Reason: "fcm: " + what}
}

// fcmAboutToken says whether an INVALID_ARGUMENT message is about the
// registration token ("The registration token is not a valid FCM
// registration token"), which is as final as UNREGISTERED.
func fcmAboutToken(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "registration token") || strings.Contains(m, "message.token")
}

// fcmReservedKey says whether FCM refuses k as a data key: "from",
// "message_type", "notification", or a "google." or "gcm." prefix.
func fcmReservedKey(k string) bool {
	switch k {
	case "from", "message_type", "notification":
		return true
	}
	return strings.HasPrefix(k, "google.") || strings.HasPrefix(k, "gcm.")
}
