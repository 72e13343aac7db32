package ingest

import (
	"net/url"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Outgoing webhooks (projector/notify/README.md, "Webhooks"). A webhook is
// decided on its owner's user stream, like the owner's other settings, and
// written in the same transaction to the compacted webhooks topic (key =
// schemas.WebhookKey, the WebhookCreated event; a deletion, the
// tombstone), which the dispatcher follows.

const (
	// maxWebhooks caps the webhooks of one user.
	maxWebhooks = 16
	// maxWebhookURLBytes bounds Webhook.url.
	maxWebhookURLBytes = 2048
	// maxWebhookTypes and maxWebhookConversations bound the filters.
	maxWebhookTypes         = 32
	maxWebhookConversations = 100
)

// decideWebhook decides a CreateWebhook or DeleteWebhook on the stream of
// Command.user_id (checkStream made sure of the key).
func decideWebhook(st *convState, cmd *pb.Command, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if cmd.GetServicePrincipal() == "" {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only a service manages webhooks (the admin API), not a device")
	}
	ev := cloneBase(base)
	switch b := cmd.GetBody().(type) {
	case *pb.Command_CreateWebhook:
		w := b.CreateWebhook.GetWebhook()
		if rej := checkWebhook(w); rej != nil {
			return st, nil, d, rej
		}
		if cur, ok := st.webhook(w.GetWebhookId()); ok {
			if proto.Equal(cur, w) {
				return st, nil, d, nil // this very webhook stands: NO_CHANGE to the service (decide)
			}
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_WEBHOOK_EXISTS, "webhook %s exists, with another definition; delete it first", w.GetWebhookId())
		}
		if st != nil && len(st.webhooks) >= maxWebhooks {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_LIMIT_REACHED, "%s holds %d webhooks, the most a user may", cmd.GetUserId(), maxWebhooks)
		}
		st = st.orNew()
		if st.webhooks == nil {
			st.webhooks = map[string]*pb.Webhook{}
		}
		w = proto.Clone(w).(*pb.Webhook)
		st.webhooks[w.GetWebhookId()] = w
		ev.Body = &pb.Event_WebhookCreated{WebhookCreated: &pb.WebhookCreated{Webhook: w}}
		d.webhooks = append(d.webhooks, w.GetWebhookId())
	case *pb.Command_DeleteWebhook:
		id := b.DeleteWebhook.GetWebhookId()
		if _, ok := st.webhook(id); !ok {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "%s holds no webhook %s", cmd.GetUserId(), schemas.Clip(id))
		}
		delete(st.webhooks, id)
		ev.Body = &pb.Event_WebhookDeleted{WebhookDeleted: &pb.WebhookDeleted{WebhookId: id}}
		d.webhooks = append(d.webhooks, id)
	}
	return st, []*pb.Event{ev}, d, nil
}

// checkWebhook refuses a webhook the dispatcher could not serve.
func checkWebhook(w *pb.Webhook) *rejection {
	if w == nil {
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "CreateWebhook without a webhook")
	}
	if err := schemas.CheckID("webhook_id", w.GetWebhookId()); err != nil {
		return idRejection(err)
	}
	raw := w.GetUrl()
	if len(raw) > maxWebhookURLBytes {
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "url is %d bytes, at most %d", len(raw), maxWebhookURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "url must be an absolute http or https URL without credentials or fragment, got %q", schemas.Clip(raw))
	}
	if len(w.GetEventTypes()) > maxWebhookTypes {
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "at most %d event types", maxWebhookTypes)
	}
	for _, t := range w.GetEventTypes() {
		if !schemas.IsEventType(t) {
			return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%q is no event type", schemas.Clip(t))
		}
	}
	if len(w.GetConversationIds()) > maxWebhookConversations {
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "at most %d conversations", maxWebhookConversations)
	}
	for _, c := range w.GetConversationIds() {
		if err := schemas.CheckConversationID("conversation_ids", c); err != nil {
			return idRejection(err)
		}
	}
	if len(w.GetConversationIds()) == 0 && !w.GetMemberConversations() {
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a webhook needs conversation_ids or member_conversations")
	}
	return nil
}

func (s *convState) webhook(id string) (*pb.Webhook, bool) {
	if s == nil {
		return nil, false
	}
	w, ok := s.webhooks[id]
	return w, ok
}

// webhookRecord is the webhooks topic's record of a webhook event, whose
// encoding is v: the event itself for a WebhookCreated, the tombstone
// (nil) for a WebhookDeleted; ok false for any other event.
func webhookRecord(ev *pb.Event, v []byte) (key string, value []byte, ok bool) {
	switch b := ev.GetBody().(type) {
	case *pb.Event_WebhookCreated:
		return schemas.WebhookKey(ev.GetActorUserId(), b.WebhookCreated.GetWebhook().GetWebhookId()), v, true
	case *pb.Event_WebhookDeleted:
		return schemas.WebhookKey(ev.GetActorUserId(), b.WebhookDeleted.GetWebhookId()), nil, true
	}
	return "", nil, false
}
