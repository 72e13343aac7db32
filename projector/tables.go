package projector

import (
	"context"
	"fmt"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
)

// Tables is the read side of the views of one keyspace: the gateway and
// query read the tables the projector writes through it, so each table's
// CQL, reads and writes, lives in one file (<table>_table.go). Every read
// is single-partition and uses no driver page state. It is safe for
// concurrent use.
//
// Errors are the driver's, wrapped with the table read; a missing row is
// not an error (found is false).
type Tables struct {
	s             *gocql.Session
	keyspace      string
	conversations conversationsView
	members       membersView
	inbox         inboxView
	messages      messagesView
	changes       changesView
	edits         editsView
	reactions     reactionsView
	pins          pinsView
	mentions      mentionsView
	replies       repliesView
	prefs         prefsView
	hidden        hiddenView
	blocks        blocksView
	invites       invitesView
	joinRequests  joinRequestsView
	attachments   attachmentsView
	pushTargets   pushTargetsView
	bans          bansView
	revocations   revocationsView
	webhooks      webhooksView
	checkpoints   checkpoints
}

// NewTables reads the views of keyspace (already migrated by
// schemas.Migrate) on s, which need not be bound to it: statements name
// their tables in full.
func NewTables(s *gocql.Session, keyspace string) (*Tables, error) {
	if err := schemas.CheckKeyspace(keyspace); err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	return &Tables{
		s: s, keyspace: keyspace,
		conversations: newConversations(keyspace),
		members:       newMembers(keyspace),
		inbox:         newInbox(keyspace),
		messages:      newMessages(keyspace),
		changes:       newChanges(keyspace),
		edits:         newEdits(keyspace),
		reactions:     newReactions(keyspace),
		pins:          newPins(keyspace),
		mentions:      newMentions(keyspace),
		replies:       newReplies(keyspace),
		prefs:         newPrefs(keyspace),
		hidden:        newHidden(keyspace),
		blocks:        newBlocks(keyspace),
		invites:       newInvites(keyspace),
		joinRequests:  newJoinRequests(keyspace),
		attachments:   newAttachments(keyspace),
		pushTargets:   newPushTargets(keyspace),
		bans:          newBans(keyspace),
		revocations:   newRevocations(keyspace),
		webhooks:      newWebhooks(keyspace),
		checkpoints:   newCheckpoints(keyspace),
	}, nil
}

// Keyspace is the keyspace t reads.
func (t *Tables) Keyspace() string { return t.keyspace }

// checkedTables are the tables a reader needs, each owned by one file.
var checkedTables = []string{"conversations", "members", "inbox", "messages", "changes", "message_edits", "reactions",
	"pins", "mentions", "mentions_all", "replies", "conversation_prefs", "hidden_messages", "history_cleared", "blocks",
	"invites", "join_requests", "attachments", "attachment_blobs", "owner_attachments", "attachment_uploads", "push_targets", "bans", "device_revocations", "webhooks"}

// Check reads one row of every view, so a keyspace is known to hold them
// (and to be readable) before requests go to it.
func (t *Tables) Check(ctx context.Context) error {
	for _, name := range checkedTables {
		if err := t.s.Query(qualify(t.keyspace, "SELECT * FROM ${keyspace}."+name+" LIMIT 1")).ExecContext(ctx); err != nil {
			return fmt.Errorf("projector: the %s view of %s cannot be read: %w", name, t.keyspace, err)
		}
	}
	return nil
}

// jsonRows are a table's whole-row reads for audits: every row, or the rows
// of one key (its partition key, or a row of inbox).
type jsonRows struct {
	all, byKey string
	keyArity   int
}

// RowsJSON reads whole rows of one view as Cassandra's JSON (SELECT JSON *),
// for audits that compare rows column by column: every row of table when key
// is empty, else the rows of one key — conversations and members:
// conversation id; inbox: user id, conversation id; messages, changes and
// reactions: conversation id, bucket; message_edits: conversation id,
// message seq; pins and mentions_all: conversation id; mentions: user id;
// replies: conversation id, reply_to_seq; conversation_prefs, blocks,
// push_targets, bans, device_revocations and webhooks: user id; hidden_messages and history_cleared: user id, conversation id;
// invites, join_requests and attachments: conversation id;
// attachment_blobs: sha256; owner_attachments: owner user id;
// attachment_uploads: hour.
func (t *Tables) RowsJSON(ctx context.Context, table string, key ...any) (*gocql.Iter, error) {
	var r jsonRows
	switch table {
	case "conversations":
		r = t.conversations.rows
	case "members":
		r = t.members.rows
	case "inbox":
		r = t.inbox.rows
	case "messages":
		r = t.messages.rows
	case "changes":
		r = t.changes.rows
	case "message_edits":
		r = t.edits.rows
	case "reactions":
		r = t.reactions.rows
	case "pins":
		r = t.pins.rows
	case "mentions":
		r = t.mentions.rows
	case "mentions_all":
		r = t.mentions.rowsAll
	case "replies":
		r = t.replies.rows
	case "conversation_prefs":
		r = t.prefs.rows
	case "hidden_messages":
		r = t.hidden.rows
	case "history_cleared":
		r = t.hidden.rowsCleared
	case "blocks":
		r = t.blocks.rows
	case "invites":
		r = t.invites.rows
	case "attachments":
		r = t.attachments.rows
	case "attachment_blobs":
		r = t.attachments.blobRows
	case "owner_attachments":
		r = t.attachments.ownerRows
	case "attachment_uploads":
		r = t.attachments.hourRows
	case "join_requests":
		r = t.joinRequests.rows
	case "push_targets":
		r = t.pushTargets.rows
	case "bans":
		r = t.bans.rows
	case "device_revocations":
		r = t.revocations.rows
	case "webhooks":
		r = t.webhooks.rows
	default:
		return nil, fmt.Errorf("projector: RowsJSON: no view %q", table)
	}
	switch len(key) {
	case 0:
		return t.s.Query(r.all).PageSize(5000).IterContext(ctx), nil
	case r.keyArity:
		return t.s.Query(r.byKey, key...).PageSize(5000).IterContext(ctx), nil
	}
	return nil, fmt.Errorf("projector: RowsJSON: %s is read by %d key columns, got %d", table, r.keyArity, len(key))
}
