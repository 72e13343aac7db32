package push

import (
	"context"
	"strconv"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Kind says what a notification does on the device.
type Kind int

const (
	// KindMessage is a visible alert for a new message (or mention).
	KindMessage Kind = iota + 1
	// KindClear is a silent update: the new badge, and the conversation's
	// notification removed (read elsewhere, recalled).
	KindClear
)

// String is the kind's name as the providers deliver it in the data
// ("message", "clear"); "" for an unknown kind.
func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindClear:
		return "clear"
	}
	return ""
}

// Notification is one push to one device.
type Notification struct {
	// ID is stable per (event, device): a redelivery carries the same id,
	// so duplicates collapse on the device.
	ID string
	// Target is where it goes (provider, token or endpoint…).
	Target *pb.PushTarget
	// UserID is the user the device belongs to.
	UserID string
	// ConversationID is the conversation the notification is about.
	ConversationID string
	// Seq is the message's seq (KindMessage) or the read or recalled seq
	// (KindClear).
	Seq  int64
	Kind Kind
	// Title and Body are "" when the user's preview setting hides them.
	Title string
	Body  string
	// Badge is the user's exact unread total.
	Badge int64
	// Collapse is the collapse key (the conversation id), so that one
	// notification per conversation shows.
	Collapse string
	// Data are extra key/values delivered to the app. The keys of
	// DataKeys are always set by the client and override Data's.
	Data map[string]string
}

// The data keys every client adds to what the app receives.
const (
	DataNotificationID = "notification_id"
	DataConversationID = "conversation_id"
	DataSeq            = "seq"
	DataKind           = "kind"
	DataBadge          = "badge"
)

// Sender delivers notifications of one provider. It is safe for concurrent
// use.
type Sender interface {
	// Provider is the provider whose targets Send accepts.
	Provider() pb.PushProvider
	// Send delivers n and classifies the answer: nil when the provider
	// accepted it, else an error that Classify maps to an Outcome.
	Send(ctx context.Context, n *Notification) error
}

// appData is n.Data with the keys every client adds; never nil.
func appData(n *Notification) map[string]string {
	d := make(map[string]string, len(n.Data)+5)
	for k, v := range n.Data {
		d[k] = v
	}
	d[DataNotificationID] = n.ID
	d[DataConversationID] = n.ConversationID
	d[DataSeq] = strconv.FormatInt(n.Seq, 10)
	d[DataKind] = n.Kind.String()
	d[DataBadge] = strconv.FormatInt(n.Badge, 10)
	return d
}

// checkNotification refuses a notification no provider could deliver, or
// one for another provider than p.
func checkNotification(n *Notification, p pb.PushProvider) error {
	switch {
	case n == nil:
		return &RefusedError{Reason: "notification: missing"}
	case n.Target == nil:
		return &RefusedError{Reason: "notification: no target"}
	case n.Target.GetProvider() != p:
		return &RefusedError{Reason: "notification: target of provider " + n.Target.GetProvider().String() + ", sender of " + p.String()}
	case n.ID == "":
		return &RefusedError{Reason: "notification: no id"}
	case n.Kind != KindMessage && n.Kind != KindClear:
		return &RefusedError{Reason: "notification: unknown kind " + strconv.Itoa(int(n.Kind))}
	}
	return nil
}

// The four clients are Senders.
var (
	_ Sender = (*FCM)(nil)
	_ Sender = (*APNs)(nil)
	_ Sender = (*WebPush)(nil)
	_ Sender = (*Webhook)(nil)
)
