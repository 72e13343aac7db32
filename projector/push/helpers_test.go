package push_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/parley-im/parley/projector/push"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/pushserver"
)

const testConversation = "d:0123456789abcdef0123456789abcdef"

// testCtx bounds a test's sends; no send to a local server takes long.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// message is a KindMessage notification to target.
func message(target *pb.PushTarget, id string) *push.Notification {
	return &push.Notification{
		ID: id, Target: target, UserID: "u1", ConversationID: testConversation, Seq: 42, Kind: push.KindMessage,
		Title: "Ada", Body: "Shall we meet at noon?", Badge: 3, Collapse: testConversation,
		Data: map[string]string{"sender_id": "u2"},
	}
}

// clear is a KindClear notification to target.
func clear(target *pb.PushTarget, id string) *push.Notification {
	return &push.Notification{
		ID: id, Target: target, UserID: "u1", ConversationID: testConversation, Seq: 42, Kind: push.KindClear,
		Badge: 1, Collapse: testConversation,
	}
}

// wantData is the data every client delivers for n.
func wantData(n *push.Notification) map[string]string {
	d := maps.Clone(n.Data)
	if d == nil {
		d = map[string]string{}
	}
	d["notification_id"] = n.ID
	d["conversation_id"] = n.ConversationID
	d["seq"] = strconv.FormatInt(n.Seq, 10)
	d["kind"] = n.Kind.String()
	d["badge"] = strconv.FormatInt(n.Badge, 10)
	return d
}

// waitOne waits for the server's first accepted request.
func waitOne(t *testing.T, s interface {
	WaitFor(context.Context, int) ([]pushserver.Request, error)
}, n int) pushserver.Request {
	t.Helper()
	got, err := s.WaitFor(testCtx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	return got[n-1]
}

// checkRecorded compares the fields every server decodes.
func checkRecorded(t *testing.T, got pushserver.Request, address string, n *push.Notification, title, body, collapse string) {
	t.Helper()
	if got.Address != address {
		t.Errorf("address %q, want %q", got.Address, address)
	}
	if got.Title != title || got.Body != body {
		t.Errorf("title/body %q/%q, want %q/%q", got.Title, got.Body, title, body)
	}
	if got.Badge != n.Badge {
		t.Errorf("badge %d, want %d", got.Badge, n.Badge)
	}
	if got.Collapse != collapse {
		t.Errorf("collapse %q, want %q", got.Collapse, collapse)
	}
	if got.NotificationID != n.ID || got.Kind != n.Kind.String() {
		t.Errorf("id/kind %q/%q, want %q/%q", got.NotificationID, got.Kind, n.ID, n.Kind)
	}
	if want := wantData(n); !maps.Equal(got.Data, want) {
		t.Errorf("data %v, want %v", got.Data, want)
	}
	if got.Silent != (n.Kind == push.KindClear) {
		t.Errorf("silent %v for kind %s", got.Silent, n.Kind)
	}
}

func wantInvalid(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, push.ErrInvalidToken) || push.Classify(err) != push.InvalidTarget {
		t.Fatalf("err %v (outcome %s), want ErrInvalidToken", err, push.Classify(err))
	}
}

func wantRetry(t *testing.T, err error, status int, after time.Duration) {
	t.Helper()
	var r *push.RetryError
	if !errors.As(err, &r) || push.Classify(err) != push.Retry {
		t.Fatalf("err %v, want *RetryError", err)
	}
	if r.Status != status || r.After != after || push.RetryAfter(err) != after {
		t.Fatalf("RetryError status %d after %s, want %d after %s (%v)", r.Status, r.After, status, after, err)
	}
}

func wantRefused(t *testing.T, err error, status int) *push.RefusedError {
	t.Helper()
	var r *push.RefusedError
	if !errors.As(err, &r) || push.Classify(err) != push.Refused {
		t.Fatalf("err %v, want *RefusedError", err)
	}
	if r.Status != status {
		t.Fatalf("RefusedError status %d, want %d (%v)", r.Status, status, err)
	}
	return r
}

// scriptedErrors runs the answers every provider can be scripted to give
// through send (which sends one notification to the scripted address).
func scriptedErrors(t *testing.T, srv interface {
	Answer(string, pushserver.Outcome)
	Next(pushserver.Outcome, int)
	SetRetryAfter(time.Duration)
}, address string, send func() error) {
	t.Run("invalid token", func(t *testing.T) {
		srv.Answer(address, pushserver.InvalidToken)
		defer srv.Answer(address, pushserver.OK)
		wantInvalid(t, send())
	})
	t.Run("rate limited", func(t *testing.T) {
		srv.SetRetryAfter(7 * time.Second)
		srv.Next(pushserver.RateLimited, 1)
		wantRetry(t, send(), 429, 7*time.Second)
	})
	t.Run("unavailable", func(t *testing.T) {
		srv.Next(pushserver.Unavailable, 1)
		wantRetry(t, send(), 503, 0)
	})
	t.Run("recovered", func(t *testing.T) {
		if err := send(); err != nil {
			t.Fatalf("send after the scripted answers: %v", err)
		}
	})
}
