package notify

import (
	"testing"

	"github.com/parley-im/parley/projector/push"
	"github.com/parley-im/parley/schemas/deploy"
)

// TestChecksBeforeRun: a notifier that has not connected is not ready,
// and says so for each check.
func TestChecksBeforeRun(t *testing.T) {
	w, err := push.NewWebhook(push.WebhookConfig{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Senders: []push.Sender{w}})
	if err != nil {
		t.Fatal(err)
	}
	body := deploy.Health(t.Context(), n.Checks())
	if body.Status != "unavailable" || len(body.Checks) != 3 {
		t.Fatalf("before Run: %+v", body)
	}
	for _, name := range []string{"kafka", "cassandra", "consumers"} {
		if body.Checks[name] != errNotRunning.Error() {
			t.Errorf("check %s: %q, want %q", name, body.Checks[name], errNotRunning)
		}
	}
}
