package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// blocksView: the users one user blocked, ((user_id), blocked_user_id),
// from its stream: UserBlocked inserts the row (blocked_at = its time),
// UserUnblocked deletes it, both at the user stream's version clock (every
// cell of the table is on it). The decider emits a block only of a user not
// blocked and an unblock only of one blocked, so the rows are the blocks
// minus the unblocks in any order of application: a block replayed after
// its unblock stays below the deletion, a block again later is above it.
type blocksView struct {
	insert, remove  string
	selectUser, one string
	rows            jsonRows
}

func newBlocks(keyspace string) blocksView {
	return blocksView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.blocks (user_id, blocked_user_id, blocked_at)
			VALUES (?, ?, ?) USING TIMESTAMP ?`),
		remove: qualify(keyspace, `DELETE FROM ${keyspace}.blocks USING TIMESTAMP ?
			WHERE user_id = ? AND blocked_user_id = ?`),
		selectUser: qualify(keyspace, `SELECT blocked_user_id, blocked_at FROM ${keyspace}.blocks WHERE user_id = ?`),
		one:        qualify(keyspace, `SELECT blocked_user_id FROM ${keyspace}.blocks WHERE user_id = ? AND blocked_user_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.blocks`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.blocks WHERE user_id = ?`), keyArity: 1,
		},
	}
}

func blocksPart(user string) string { return "blocks\x00" + user }

func (v blocksView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	user, ts := ev.GetActorUserId(), versionTS(ev.GetVersion())
	switch b := ev.GetBody().(type) {
	case *pb.Event_UserBlocked:
		other := b.UserBlocked.GetUserId()
		return []stmt{{v.insert, []any{user, other, ev.occurredAt(), ts}, blocksPart(user), "", ts}}, nil
	case *pb.Event_UserUnblocked:
		return []stmt{upsert(v.remove, blocksPart(user), "", ts, user, b.UserUnblocked.GetUserId())}, nil
	}
	return nil, nil
}

// Block is a row of the blocks view: a user the reader blocked.
type Block struct {
	UserID    string
	BlockedAt time.Time
}

// Blocks reads the users user blocked, by user id (one partition).
func (t *Tables) Blocks(ctx context.Context, user string) ([]Block, error) {
	iter := t.s.Query(t.blocks.selectUser, user).IterContext(ctx)
	var out []Block
	var b Block
	for iter.Scan(&b.UserID, &b.BlockedAt) {
		out = append(out, b)
		b = Block{}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read blocks: %w", err)
	}
	return out, nil
}

// Blocked reports whether user blocked other (one row).
func (t *Tables) Blocked(ctx context.Context, user, other string) (bool, error) {
	var id string
	err := t.s.Query(t.blocks.one, user, other).ScanContext(ctx, &id)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("projector: read blocks: %w", err)
	}
	return true, nil
}
