package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// bansView: the standing ban of each user, ((user_id)), from the user's
// stream: UserBanned writes the whole row (until null for a ban for good),
// UserUnbanned deletes it, both at the stream's version clock, so the row
// is the stream's newest ban event in any order of application. Read by
// query (Ban), which refuses a banned user's token.
type bansView struct {
	insert, remove, selectUser string
	rows                       jsonRows
}

func newBans(keyspace string) bansView {
	return bansView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.bans (user_id, until, reason, banned_by, version) VALUES (?, ?, ?, ?, ?)
			USING TIMESTAMP ?`),
		remove:     qualify(keyspace, `DELETE FROM ${keyspace}.bans USING TIMESTAMP ? WHERE user_id = ?`),
		selectUser: qualify(keyspace, `SELECT until, reason, banned_by, version FROM ${keyspace}.bans WHERE user_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.bans`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.bans WHERE user_id = ?`), keyArity: 1,
		},
	}
}

func bansPart(user string) string { return "bans\x00" + user }

func (v bansView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	user, ver := ev.GetActorUserId(), ev.GetVersion()
	ts := versionTS(ver)
	switch b := ev.GetBody().(type) {
	case *pb.Event_UserBanned:
		var until any
		if u := b.UserBanned.GetUntil(); u != nil {
			until = u.AsTime()
		}
		return []stmt{{v.insert, []any{user, until, nullable(b.UserBanned.GetReason()), ev.GetActorService(), ver, ts}, bansPart(user), "", ts}}, nil
	case *pb.Event_UserUnbanned:
		return []stmt{{v.remove, []any{ts, user}, bansPart(user), "", ts}}, nil
	}
	return nil, nil
}

// Ban is a row of the bans view: a user's standing ban.
type Ban struct {
	Until    time.Time // zero: for good
	Reason   string
	BannedBy string // the service principal that banned
	Version  int64  // the user stream's version of the ban
}

// Holds reports whether the ban stands at t.
func (b Ban) Holds(t time.Time) bool { return b.Until.IsZero() || t.Before(b.Until) }

// Ban reads user's standing ban (found false: none).
func (t *Tables) Ban(ctx context.Context, user string) (b Ban, found bool, err error) {
	var until *time.Time
	var reason *string
	err = t.s.Query(t.bans.selectUser, user).ScanContext(ctx, &until, &reason, &b.BannedBy, &b.Version)
	if errors.Is(err, gocql.ErrNotFound) {
		return Ban{}, false, nil
	}
	if err != nil {
		return Ban{}, false, fmt.Errorf("projector: read ban: %w", err)
	}
	if until != nil {
		b.Until = *until
	}
	if reason != nil {
		b.Reason = *reason
	}
	return b, true, nil
}
