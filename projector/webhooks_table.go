package projector

import (
	"context"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// webhooksView: each user's webhooks, ((user_id), webhook_id), from the
// user's stream: WebhookCreated writes the whole row, WebhookDeleted
// deletes it, both at the stream's version clock, so the row is the
// stream's newest event of the webhook in any order of application. Read
// by the admin API (Webhooks).
type webhooksView struct {
	insert, remove, selectUser string
	rows                       jsonRows
}

func newWebhooks(keyspace string) webhooksView {
	return webhooksView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.webhooks (user_id, webhook_id, url, event_types, conversation_ids,
			member_conversations, created_by, created_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		remove: qualify(keyspace, `DELETE FROM ${keyspace}.webhooks USING TIMESTAMP ? WHERE user_id = ? AND webhook_id = ?`),
		selectUser: qualify(keyspace, `SELECT webhook_id, url, event_types, conversation_ids, member_conversations, created_by,
			created_at, version FROM ${keyspace}.webhooks WHERE user_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.webhooks`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.webhooks WHERE user_id = ?`), keyArity: 1,
		},
	}
}

func webhooksPart(user string) string { return "webhooks\x00" + user }

func (v webhooksView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	user, ver := ev.GetActorUserId(), ev.GetVersion()
	ts := versionTS(ver)
	switch b := ev.GetBody().(type) {
	case *pb.Event_WebhookCreated:
		w := b.WebhookCreated.GetWebhook()
		return []stmt{{v.insert, []any{user, w.GetWebhookId(), w.GetUrl(), w.GetEventTypes(), w.GetConversationIds(),
			w.GetMemberConversations(), ev.GetActorService(), ev.GetOccurredAt().AsTime(), ver, ts}, webhooksPart(user), "", ts}}, nil
	case *pb.Event_WebhookDeleted:
		return []stmt{{v.remove, []any{ts, user, b.WebhookDeleted.GetWebhookId()}, webhooksPart(user), "", ts}}, nil
	}
	return nil, nil
}

// Webhook is a row of the webhooks view.
type Webhook struct {
	Webhook   *pb.Webhook
	CreatedBy string // the service principal that created it
	CreatedAt time.Time
	Version   int64 // the user stream's version of the creation
}

// Webhooks reads user's webhooks, by id.
func (t *Tables) Webhooks(ctx context.Context, user string) ([]Webhook, error) {
	iter := t.s.Query(t.webhooks.selectUser, user).IterContext(ctx)
	var out []Webhook
	for {
		w := Webhook{Webhook: &pb.Webhook{}}
		if !iter.Scan(&w.Webhook.WebhookId, &w.Webhook.Url, &w.Webhook.EventTypes, &w.Webhook.ConversationIds,
			&w.Webhook.MemberConversations, &w.CreatedBy, &w.CreatedAt, &w.Version) {
			break
		}
		out = append(out, w)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read webhooks: %w", err)
	}
	return out, nil
}
