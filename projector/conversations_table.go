package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// conversationsView: one row per conversation.
//
//   - kind, title, creator_user_id, created_at: ConversationCreated, at
//     creationTS; they never change.
//   - last_seq, updated_at: every timeline event, at seqTS(seq), so they
//     always describe the highest seq applied, together. ConversationCreated
//     writes last_seq 0 and its own time at creationTS, below any seq.
//   - last_message_seq, last_message_sender: every MessageSent, at
//     seqTS(seq): the newest message, whatever notices came after it. Null
//     until the first message.
//   - last_message_preview follows the message clock msgTS(seq, sub): every
//     MessageSent at sub 0, its edits at their number, its recall (null) at
//     recallSub. An edit or recall of an older message is below the newer
//     message's send, so only the newest message's own changes show.
//   - last_version: every event with a version, at versionTS(version): the
//     newest change applied. Null for a log from before versions.
//   - The group's settings follow the version clock: GroupSettingsChanged
//     writes each setting it carries (only those that changed) at
//     versionTS(version), one statement per column, so the newest change of
//     each setting wins whatever the order. title is one of them: a rename
//     rewrites the title ConversationCreated wrote at creationTS (the inbox
//     rows keep the creation-time title, see inbox_table.go). Null
//     settings are the defaults (announcement_only false, who_may_* the
//     members, history_visibility 'all'), filled in by readers.
//   - owner_user_id: a group's creator at creationTS (ConversationCreated),
//     then each OwnershipTransferred's to_user_id at versionTS(version).
//     Null for direct conversations.
//   - closed, closed_at, closed_by, closed_reason: ConversationClosed (true,
//     its time, Event.actor_service or else the actor, its reason) and
//     ConversationReopened (false and nulls), together at versionTS(version):
//     the newest of them wins. Null closed is open.
//   - deleted, deleted_at: ConversationDeleted at versionTS(version); never
//     written back.
type conversationsView struct {
	created, timeline, message, preview       string
	version, owner                            string
	closed, deleted                           string
	settings                                  map[string]string // column -> its UPDATE
	selectRow, selectLastSeq, selectKindTitle string
	selectLastVersion                         string
	rows                                      jsonRows
	// messages reads the send an edit changes, for its attachments.
	messages messagesView
}

const conversationColumns = `kind, title, creator_user_id, created_at, last_seq, updated_at,
	last_message_seq, last_message_preview, last_message_sender, last_version,
	description, avatar_url, announcement_only, who_may_add, who_may_mention_all, who_may_pin, history_visibility,
	owner_user_id, join_requests, closed, closed_at, closed_by, closed_reason, deleted, deleted_at`

// settingColumns are the conversations columns GroupSettingsChanged writes.
var settingColumns = []string{"title", "description", "avatar_url", "announcement_only", "who_may_add", "who_may_mention_all", "who_may_pin",
	"history_visibility", "join_requests"}

func newConversations(keyspace string) conversationsView {
	settings := make(map[string]string, len(settingColumns))
	for _, col := range settingColumns {
		settings[col] = qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET `+col+` = ? WHERE conversation_id = ?`)
	}
	return conversationsView{
		settings: settings,
		messages: newMessages(keyspace),
		owner: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET owner_user_id = ? WHERE conversation_id = ?`),
		closed: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET closed = ?, closed_at = ?, closed_by = ?, closed_reason = ? WHERE conversation_id = ?`),
		deleted: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET deleted = true, deleted_at = ? WHERE conversation_id = ?`),
		created: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET kind = ?, title = ?, creator_user_id = ?, created_at = ?, last_seq = 0, updated_at = ?
			WHERE conversation_id = ?`),
		timeline: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET last_seq = ?, updated_at = ?
			WHERE conversation_id = ?`),
		message: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET last_seq = ?, updated_at = ?, last_message_seq = ?, last_message_sender = ?
			WHERE conversation_id = ?`),
		preview: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET last_message_preview = ? WHERE conversation_id = ?`),
		version: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET last_version = ? WHERE conversation_id = ?`),
		selectLastVersion: qualify(keyspace, `SELECT last_version FROM ${keyspace}.conversations WHERE conversation_id = ?`),
		selectRow:         qualify(keyspace, `SELECT `+conversationColumns+` FROM ${keyspace}.conversations WHERE conversation_id = ?`),
		selectLastSeq:     qualify(keyspace, `SELECT last_seq FROM ${keyspace}.conversations WHERE conversation_id = ?`),
		selectKindTitle:   qualify(keyspace, `SELECT kind, title, writetime(title), creator_user_id FROM ${keyspace}.conversations WHERE conversation_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.conversations`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.conversations WHERE conversation_id = ?`), keyArity: 1,
		},
	}
}

// lastVersion plans conversations.last_version, a step of its own after
// every other write of the event (views): a reader that sees last_version
// = v and reads any row afterwards finds every change up to v in it, which
// is what a device that fetches a conversation's state and then continues
// from v relies on (gateway Resume, added and refetch).
func (v conversationsView) lastVersion() planner { return lastVersionView{v.version} }

type lastVersionView struct{ cql string }

func (v lastVersionView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	ver := ev.GetVersion()
	if ver <= 0 {
		return nil, nil
	}
	id := ev.GetConversationId()
	return []stmt{upsert(v.cql, convPart(id), id, versionTS(ver), ver, id)}, nil
}

func (v conversationsView) plan(ctx context.Context, s *gocql.Session, ev *event) ([]stmt, error) {
	id, seq := ev.GetConversationId(), ev.GetSeq()
	switch ev.typ {
	case schemas.TypeConversationCreated:
		c := ev.GetConversationCreated()
		out := []stmt{upsert(v.created, convPart(id), id, creationTS, kindName(c.GetKind()), c.GetTitle(), ev.GetActorUserId(),
			ev.occurredAt(), ev.occurredAt(), id)}
		if c.GetKind() == pb.ConversationKind_CONVERSATION_KIND_GROUP {
			// The creator, listed first: the member createdRole makes owner.
			out = append(out, upsert(v.owner, convPart(id), id, creationTS, c.GetMemberUserIds()[0], id))
		}
		return out, nil
	case schemas.TypeOwnershipTransferred:
		return []stmt{upsert(v.owner, convPart(id), id, versionTS(ev.GetVersion()), ev.GetOwnershipTransferred().GetToUserId(), id)}, nil
	case schemas.TypeGroupSettingsChanged:
		return v.settingsChanged(id, versionTS(ev.GetVersion()), ev.GetGroupSettingsChanged().GetSettings()), nil
	case schemas.TypeConversationClosed:
		by := ev.GetActorService()
		if by == "" {
			by = ev.GetActorUserId()
		}
		return []stmt{upsert(v.closed, convPart(id), id, versionTS(ev.GetVersion()), true, ev.occurredAt(), by,
			ev.GetConversationClosed().GetReason(), id)}, nil
	case schemas.TypeConversationReopened:
		return []stmt{upsert(v.closed, convPart(id), id, versionTS(ev.GetVersion()), false, nil, nil, nil, id)}, nil
	case schemas.TypeConversationDeleted:
		return []stmt{upsert(v.deleted, convPart(id), id, versionTS(ev.GetVersion()), ev.occurredAt(), id)}, nil
	case schemas.TypeMessageSent:
		m := ev.GetMessageSent()
		return []stmt{upsert(v.message, convPart(id), id, seqTS(seq), seq, ev.occurredAt(), seq, ev.GetActorUserId(), id),
			upsert(v.preview, convPart(id), id, msgTS(seq, 0), preview(schemas.MessagePreviewText(m.GetText(), m.GetAttachments())), id)}, nil
	case schemas.TypeMessageEdited:
		// An edit changes the text (a caption) only: the preview keeps the
		// attachments of the send, read from its row (written by an
		// earlier step, or an earlier batch: the log has the send first).
		e := ev.GetMessageEdited()
		sent, err := v.messages.sentEvent(ctx, s, id, e.GetMessageSeq())
		if err != nil {
			return nil, err
		}
		text := schemas.MessagePreviewText(e.GetText(), sent.GetMessageSent().GetAttachments())
		return []stmt{upsert(v.preview, convPart(id), id, msgTS(e.GetMessageSeq(), int64(e.GetEditNumber())), preview(text), id)}, nil
	case schemas.TypeMessageRecalled:
		return []stmt{upsert(v.preview, convPart(id), id, msgTS(ev.GetMessageRecalled().GetMessageSeq(), recallSub), nil, id)}, nil
	case schemas.TypeMembersAdded, schemas.TypeMemberRemoved:
		return []stmt{upsert(v.timeline, convPart(id), id, seqTS(seq), seq, ev.occurredAt(), id)}, nil
	}
	return nil, nil
}

// settingsChanged writes each setting st carries, at ts.
func (v conversationsView) settingsChanged(id string, ts int64, st *pb.GroupSettings) []stmt {
	var out []stmt
	set := func(col string, val any) {
		out = append(out, upsert(v.settings[col], convPart(id), id, ts, val, id))
	}
	if st.Title != nil {
		set("title", st.GetTitle())
	}
	if st.Description != nil {
		set("description", st.GetDescription())
	}
	if st.AvatarUrl != nil {
		set("avatar_url", st.GetAvatarUrl())
	}
	if st.AnnouncementOnly != nil {
		set("announcement_only", st.GetAnnouncementOnly())
	}
	if st.WhoMayAdd != nil {
		set("who_may_add", policyName(st.GetWhoMayAdd()))
	}
	if st.WhoMayMentionAll != nil {
		set("who_may_mention_all", policyName(st.GetWhoMayMentionAll()))
	}
	if st.WhoMayPin != nil {
		set("who_may_pin", policyName(st.GetWhoMayPin()))
	}
	if st.HistoryVisibility != nil {
		set("history_visibility", visibilityName(st.GetHistoryVisibility()))
	}
	if st.JoinRequests != nil {
		set("join_requests", st.GetJoinRequests())
	}
	return out
}

// kindTitle reads what ConversationCreated wrote of id (empty when it has
// not been applied yet), for the inbox's copy of it. renamed says the
// title is a rename's (written above creationTS), not the creation's: the
// creation's title is then in the creator's inbox row (see inbox_table.go).
func (v conversationsView) kindTitle(ctx context.Context, s *gocql.Session, id string) (kind, title, creator string, renamed bool, err error) {
	var written *int64
	err = s.Query(v.selectKindTitle, id).ScanContext(ctx, &kind, &title, &written, &creator)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return "", "", "", false, fmt.Errorf("projector: read conversation %s: %w", id, err)
	}
	return kind, title, creator, written != nil && *written > creationTS, nil
}

// Conversation is a row of the conversations view.
type Conversation struct {
	ID                 string
	Kind, Title        string // "direct" or "group"; title empty for direct
	CreatorUserID      string
	CreatedAt          time.Time
	LastSeq            int64 // the highest timeline seq applied (0 right after creation)
	UpdatedAt          time.Time
	LastMessageSeq     int64 // 0 before the first message
	LastMessagePreview string
	LastMessageSender  string
	// LastVersion is the newest change the views hold, written after every
	// row of it: state read after this row reflects every change up to it
	// (0 for a log from before versions).
	LastVersion int64
	// A group's settings as GroupSettingsChanged set them; zero values
	// (WhoMay… "", HistoryVisibility "") are the defaults: no description
	// or avatar, everyone sends, adds, mentions @all and pins, and members
	// added later see the whole history. Title above is the newest
	// rename's.
	Description, AvatarURL                 string
	AnnouncementOnly                       bool
	WhoMayAdd, WhoMayMentionAll, WhoMayPin string // "members", "admins", or "" (the default: members)
	HistoryVisibility                      string // "all", "since_join", or "" (the default: all)
	// JoinRequests: anyone may ask to join (GroupSettings.join_requests).
	JoinRequests bool
	// OwnerUserID is a group's current owner ("" for a direct conversation,
	// and for a group projected before owners were).
	OwnerUserID string
	// Closed: read-only (ConversationClosed) since ClosedAt, by ClosedBy
	// (a service principal, or the group's owner), for ClosedReason.
	Closed                 bool
	ClosedAt               time.Time
	ClosedBy, ClosedReason string
	// Deleted: ConversationDeleted at DeletedAt; readers serve nothing of
	// it.
	Deleted   bool
	DeletedAt time.Time
}

// LastActivity is when the conversation last changed: the time of the event
// at last_seq, or its creation when nothing happened since.
func (c *Conversation) LastActivity() time.Time {
	if !c.UpdatedAt.IsZero() {
		return c.UpdatedAt
	}
	return c.CreatedAt
}

// Conversation reads the conversations row of id; found is false when the
// projector has written none (yet).
func (t *Tables) Conversation(ctx context.Context, id string) (c Conversation, found bool, err error) {
	c.ID = id
	var version *int64
	err = t.s.Query(t.conversations.selectRow, id).ScanContext(ctx,
		&c.Kind, &c.Title, &c.CreatorUserID, &c.CreatedAt, &c.LastSeq, &c.UpdatedAt,
		&c.LastMessageSeq, &c.LastMessagePreview, &c.LastMessageSender, &version,
		&c.Description, &c.AvatarURL, &c.AnnouncementOnly, &c.WhoMayAdd, &c.WhoMayMentionAll, &c.WhoMayPin,
		&c.HistoryVisibility, &c.OwnerUserID, &c.JoinRequests, &c.Closed, &c.ClosedAt, &c.ClosedBy, &c.ClosedReason,
		&c.Deleted, &c.DeletedAt)
	if version != nil {
		c.LastVersion = *version
	}
	if errors.Is(err, gocql.ErrNotFound) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("projector: read conversations: %w", err)
	}
	return c, true, nil
}

// LastVersion is conversations.last_version of id: the newest change the
// views hold (0 when there is no row, or none with a version yet).
func (t *Tables) LastVersion(ctx context.Context, id string) (int64, error) {
	var last *int64
	err := t.s.Query(t.conversations.selectLastVersion, id).ScanContext(ctx, &last)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projector: read conversations: %w", err)
	}
	if last == nil {
		return 0, nil
	}
	return *last, nil
}

// LastSeq reads conversations.last_seq of id: the highest timeline seq
// applied, whose messages row is written before it (see views). found is
// false when there is no row.
func (t *Tables) LastSeq(ctx context.Context, id string) (last int64, found bool, err error) {
	err = t.s.Query(t.conversations.selectLastSeq, id).ScanContext(ctx, &last)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("projector: read conversations: %w", err)
	}
	return last, true, nil
}
