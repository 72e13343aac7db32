package schemas

import (
	"crypto/ecdh"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Push targets (README.md, "Push targets"): where a device's pushes go.
// These bounds and CheckPushTarget are shared by the gateway (which
// refuses a bad target before appending it) and the decider (which
// refuses any other).
const (
	// MaxFCMTokenBytes bounds an FCM registration token.
	MaxFCMTokenBytes = 4096
	// APNSTokenHexDigits is the length of an APNs device token in hex (32
	// bytes).
	APNSTokenHexDigits = 64
	// MaxAPNSTopicBytes bounds an APNs topic (a bundle id).
	MaxAPNSTopicBytes = 255
	// MaxPushEndpointBytes bounds a web push or webhook endpoint URL.
	MaxPushEndpointBytes = 2048
	// MaxLocaleBytes bounds PushTarget.locale.
	MaxLocaleBytes = 35
	// webPushKeyBytes is an uncompressed P-256 point; webPushAuthBytes the
	// auth secret (RFC 8291).
	webPushKeyBytes  = 65
	webPushAuthBytes = 16
)

// CheckPushTarget checks a push target as a device registers it: a device
// id of CheckID's form, a known provider, its provider's fields in their
// documented form and no other provider's. registered_at is not checked
// (the decider sets it). An error about the device id is an *IDError.
func CheckPushTarget(t *pb.PushTarget) error {
	if t == nil {
		return fmt.Errorf("target: missing")
	}
	if err := CheckID("target.deviceId", t.GetDeviceId()); err != nil {
		return err
	}
	if t.Locale != nil {
		if err := checkLocale(t.GetLocale()); err != nil {
			return err
		}
	}
	unset := func(fields ...string) error {
		values := map[string]string{"token": t.GetToken(), "apnsTopic": t.GetApnsTopic(), "endpoint": t.GetEndpoint(),
			"p256dh": t.GetP256Dh(), "auth": t.GetAuth()}
		if t.GetApnsEnvironment() != pb.ApnsEnvironment_APNS_ENVIRONMENT_UNSPECIFIED {
			values["apnsEnvironment"] = t.GetApnsEnvironment().String()
		}
		for _, f := range fields {
			if values[f] != "" {
				return fmt.Errorf("target.%s: not a field of a %s target", f, ProviderName(t.GetProvider()))
			}
		}
		return nil
	}
	switch t.GetProvider() {
	case pb.PushProvider_PUSH_PROVIDER_FCM:
		if err := checkFCMToken(t.GetToken()); err != nil {
			return err
		}
		return unset("apnsTopic", "apnsEnvironment", "endpoint", "p256dh", "auth")
	case pb.PushProvider_PUSH_PROVIDER_APNS:
		if tok := t.GetToken(); len(tok) != APNSTokenHexDigits || !isHex(tok) {
			return fmt.Errorf("target.token: an APNs device token is %d hex digits, got %d bytes: %s", APNSTokenHexDigits, len(tok), Clip(tok))
		}
		if err := checkBundleID(t.GetApnsTopic()); err != nil {
			return err
		}
		switch t.GetApnsEnvironment() {
		case pb.ApnsEnvironment_APNS_ENVIRONMENT_SANDBOX, pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION:
		default:
			return fmt.Errorf("target.apnsEnvironment: must be APNS_ENVIRONMENT_SANDBOX or APNS_ENVIRONMENT_PRODUCTION")
		}
		return unset("endpoint", "p256dh", "auth")
	case pb.PushProvider_PUSH_PROVIDER_WEB_PUSH:
		if err := checkEndpoint(t.GetEndpoint()); err != nil {
			return err
		}
		key, err := decodeBase64URL("target.p256dh", t.GetP256Dh())
		if err != nil {
			return err
		}
		if len(key) != webPushKeyBytes || key[0] != 4 {
			return fmt.Errorf("target.p256dh: must be an uncompressed P-256 point (%d bytes starting 0x04), got %d bytes", webPushKeyBytes, len(key))
		}
		if _, err := ecdh.P256().NewPublicKey(key); err != nil {
			return fmt.Errorf("target.p256dh: not a point of P-256")
		}
		auth, err := decodeBase64URL("target.auth", t.GetAuth())
		if err != nil {
			return err
		}
		if len(auth) != webPushAuthBytes {
			return fmt.Errorf("target.auth: must be %d bytes, got %d", webPushAuthBytes, len(auth))
		}
		return unset("token", "apnsTopic", "apnsEnvironment")
	case pb.PushProvider_PUSH_PROVIDER_WEBHOOK:
		if err := checkEndpoint(t.GetEndpoint()); err != nil {
			return err
		}
		return unset("token", "apnsTopic", "apnsEnvironment", "p256dh", "auth")
	}
	return fmt.Errorf("target.provider: unknown provider %d (PUSH_PROVIDER_FCM, _APNS, _WEB_PUSH or _WEBHOOK)", t.GetProvider())
}

// PushAddress is what a push target is delivered to: its token (FCM,
// APNs, the hex in lower case) or its endpoint (web push, webhook). Two
// targets with the same provider and address reach the same installation.
func PushAddress(t *pb.PushTarget) string {
	switch t.GetProvider() {
	case pb.PushProvider_PUSH_PROVIDER_APNS:
		return strings.ToLower(t.GetToken())
	case pb.PushProvider_PUSH_PROVIDER_FCM:
		return t.GetToken()
	}
	return t.GetEndpoint()
}

// ProviderName is the lower-case name of a provider ("fcm", "apns",
// "web_push", "webhook"), as the push_targets view stores it; "" when
// unknown.
func ProviderName(p pb.PushProvider) string {
	if p == pb.PushProvider_PUSH_PROVIDER_UNSPECIFIED || pb.PushProvider_name[int32(p)] == "" {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(p.String(), "PUSH_PROVIDER_"))
}

func checkFCMToken(tok string) error {
	if tok == "" || len(tok) > MaxFCMTokenBytes {
		return fmt.Errorf("target.token: an FCM registration token is 1 to %d bytes, got %d", MaxFCMTokenBytes, len(tok))
	}
	for i := range len(tok) {
		if c := tok[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("target.token: an FCM registration token is printable ASCII without spaces, got %s", Clip(tok))
		}
	}
	return nil
}

// checkBundleID checks an APNs topic: a bundle id, two or more labels of
// letters, digits and hyphens joined by dots (a VoIP or complication topic
// is the bundle id with its suffix label).
func checkBundleID(topic string) error {
	bad := fmt.Errorf("target.apnsTopic: must be a bundle id (e.g. com.example.chat) of at most %d bytes, got %s", MaxAPNSTopicBytes, Clip(topic))
	if len(topic) > MaxAPNSTopicBytes {
		return bad
	}
	labels := strings.Split(topic, ".")
	if len(labels) < 2 {
		return bad
	}
	for _, l := range labels {
		if l == "" {
			return bad
		}
		for i := range len(l) {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return bad
			}
		}
	}
	return nil
}

// checkEndpoint checks a web push or webhook endpoint: an absolute https
// URL with a host, no user info and no fragment.
func checkEndpoint(e string) error {
	if e == "" {
		return fmt.Errorf("target.endpoint: required")
	}
	if len(e) > MaxPushEndpointBytes {
		return fmt.Errorf("target.endpoint: %d bytes; at most %d", len(e), MaxPushEndpointBytes)
	}
	u, err := url.Parse(e)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" || hasControlByte(e) {
		return fmt.Errorf("target.endpoint: must be an https URL with a host (no user info, no fragment), got %s", Clip(e))
	}
	return nil
}

// decodeBase64URL decodes base64url, with or without padding (browsers'
// PushSubscription.toJSON gives it without).
func decodeBase64URL(field, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%s: required", field)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("%s: not base64url (RFC 4648 §5): %s", field, Clip(s))
	}
	return b, nil
}

// checkLocale checks a BCP 47 language tag's form: 1 to MaxLocaleBytes of
// letters, digits and hyphens (underscores accepted, as platforms give
// them), starting with a letter.
func checkLocale(l string) error {
	bad := fmt.Errorf("target.locale: must be a language tag (e.g. de-CH) of at most %d bytes, got %s", MaxLocaleBytes, Clip(l))
	if l == "" || len(l) > MaxLocaleBytes {
		return bad
	}
	for i := range len(l) {
		c := l[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter || !(letter || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return bad
		}
	}
	return nil
}

func isHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hasControlByte(s string) bool {
	for i := range len(s) {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}
