package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parley-im/parley/projector/push"
)

// TestVAPIDKeys: "notifier vapid-keys" prints the two settings, a pair
// the Web Push client accepts, new on every run.
func TestVAPIDKeys(t *testing.T) {
	pair := func() (string, string) {
		var out bytes.Buffer
		if err := command(&out, []string{"vapid-keys"}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		pub, ok1 := strings.CutPrefix(lines[0], "PARLEY_WEBPUSH_VAPID_PUBLIC_KEY=")
		priv, ok2 := strings.CutPrefix(lines[len(lines)-1], "PARLEY_WEBPUSH_VAPID_PRIVATE_KEY=")
		if len(lines) != 2 || !ok1 || !ok2 {
			t.Fatalf("output %q", out.String())
		}
		return pub, priv
	}
	pub, priv := pair()
	cfg := push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "mailto:ops@example.com"}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the printed pair: %v", err)
	}
	if _, err := push.NewWebPush(cfg); err != nil {
		t.Fatal(err)
	}
	if pub2, priv2 := pair(); pub2 == pub || priv2 == priv {
		t.Fatal("two runs printed the same key")
	}
	for _, args := range [][]string{{"vapid"}, {"vapid-keys", "extra"}} {
		if err := command(&bytes.Buffer{}, args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
