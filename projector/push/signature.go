package push

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultSignatureTolerance is the timestamp tolerance a webhook
// receiver should allow (README.md, "Verifying a webhook").
const DefaultSignatureTolerance = 5 * time.Minute

// Errors of VerifySignature.
var (
	ErrSignatureHeader = errors.New("push: malformed Parley-Signature header")
	ErrSignatureStale  = errors.New("push: signature timestamp outside the tolerance")
	ErrSignatureBad    = errors.New("push: signature does not match")
)

// Sign is the Parley-Signature header for body sent at t: "t=<unix
// seconds>,v1=<hex HMAC-SHA256(secret, "<unix seconds>.<body>")>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(signature(secret, ts, body))
}

func signature(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a webhook's Parley-Signature header against the
// body exactly as received: nil when one of its v1 signatures is the
// HMAC-SHA256 of "<t>.<body>" under secret (compared in constant time)
// and t is within tolerance of now (either side). A header may carry
// several v1 values (a secret being rotated); any match is enough.
// Errors wrap ErrSignatureHeader, ErrSignatureStale or ErrSignatureBad.
func VerifySignature(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: %q is not key=value", ErrSignatureHeader, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: two timestamps", ErrSignatureHeader)
			}
			ts = v
		case "v1":
			s, err := hex.DecodeString(v)
			if err != nil || len(s) != sha256.Size {
				return fmt.Errorf("%w: v1 is not a hex HMAC-SHA256", ErrSignatureHeader)
			}
			sigs = append(sigs, s)
		}
		// Other keys (later schemes) are ignored.
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: want t=<unix seconds>,v1=<hex>", ErrSignatureHeader)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s from now, tolerance %s", ErrSignatureStale, d.Round(time.Second), tolerance)
	}
	want := signature(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrSignatureBad
}
