package gateway

import (
	"context"
	"fmt"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// views reads the projector's Cassandra views: membership for fan-out and
// timeline rows for resume. The gateway only reads; every statement is
// single-partition.
type views interface {
	// members returns the current members of conv and the view's last_seq;
	// found is false when the conversation has no row yet.
	members(ctx context.Context, conv string) (members []string, lastSeq int64, found bool, err error)
	// membership is what the membership cache loads of conv: its current
	// members with their joined seqs, its kind and history visibility, and
	// where the views stand; found is false when it has no row yet.
	membership(ctx context.Context, conv string) (_ memberView, found bool, err error)
	// isMember says whether user is a current member of conv.
	isMember(ctx context.Context, conv, user string) (bool, error)
	// removedAt says whether user is a former member of conv, and the
	// version of the removal (0 for a log from before versions).
	removedAt(ctx context.Context, conv, user string) (version int64, former bool, err error)
	// joinFloor is what user may be sent of conv: when conv is a group
	// whose history visibility is since_join and user (a current or former
	// member) joined after the creation, from the version of the
	// MembersAdded that last added it, and nothing of the messages below
	// its joined seq; else everything (the zero floor).
	joinFloor(ctx context.Context, conv, user string) (floor, error)
	// conversations returns the conversations user is a current member of.
	conversations(ctx context.Context, user string) ([]string, error)
	// position is conversations.last_seq and last_version of conv, from
	// one read (0, 0 when there is no row).
	position(ctx context.Context, conv string) (lastSeq, version int64, err error)
	// lastVersion is conversations.last_version of conv (0 when none).
	lastVersion(ctx context.Context, conv string) (int64, error)
	// changes returns up to limit events with version > after, oldest
	// first, stopping at the first missing version (a row the projector has
	// not written yet), so what it returns is always contiguous from
	// after+1. top is the conversation's last version as the caller last
	// read it: the walk does not go beyond its bucket.
	changes(ctx context.Context, conv string, after, top int64, limit int) ([]*pb.Event, error)
	// message is the row of seq in conv of the messages view, for a
	// forward (found is false when there is none yet).
	message(ctx context.Context, conv string, seq int64) (sourceMessage, error)
	// blocked says whether user blocked other (the blocks view).
	blocked(ctx context.Context, user, other string) (bool, error)
}

// memberView is one read of a conversation's membership (views.membership).
type memberView struct {
	// joined holds every current member and its joined seq (0: a member
	// from the creation).
	joined map[string]int64
	// group, sinceJoin: conv is a group, whose history visibility is
	// since_join.
	group, sinceJoin bool
	// lastSeq and lastVersion are conversations.last_seq and last_version
	// as read before the members: the rows reflect at least these.
	lastSeq, lastVersion int64
}

// floor is what a member may be sent of a conversation (views.joinFloor):
// nothing of a message below seq, no version below version. The zero floor
// is everything.
type floor struct{ seq, version int64 }

// cassandraViews implements views with the projector's table readers,
// which own the CQL of every view table.
type cassandraViews struct {
	session *gocql.Session
	tables  *projector.Tables
}

func openViews(cass deploy.Cassandra, keyspace string) (*cassandraViews, error) {
	// The one session builder (ports of host:port contact points, timeouts,
	// consistency, authentication, TLS).
	c, err := cass.Cluster()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	c.Keyspace = keyspace
	s, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("gateway: cassandra session (hosts %v, keyspace %s): %w", cass.Hosts, keyspace, err)
	}
	t, err := projector.NewTables(s, keyspace)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return &cassandraViews{session: s, tables: t}, nil
}

func (v *cassandraViews) close() { v.session.Close() }

func (v *cassandraViews) members(ctx context.Context, conv string) ([]string, int64, bool, error) {
	last, found, err := v.tables.LastSeq(ctx, conv)
	if err != nil || !found {
		return nil, 0, false, err
	}
	rows, err := v.tables.Members(ctx, conv)
	if err != nil {
		return nil, 0, false, err
	}
	var out []string
	for _, m := range rows {
		if !m.Removed {
			out = append(out, m.UserID)
		}
	}
	return out, last, true, nil
}

// membership reads the conversations row first: the projector writes
// last_version after every other row of a change, so the members read
// after it reflect at least that version.
func (v *cassandraViews) membership(ctx context.Context, conv string) (memberView, bool, error) {
	c, found, err := v.tables.Conversation(ctx, conv)
	if err != nil || !found {
		return memberView{}, false, err
	}
	rows, err := v.tables.Members(ctx, conv)
	if err != nil {
		return memberView{}, false, err
	}
	mv := memberView{joined: make(map[string]int64, len(rows)), group: c.Kind == "group",
		sinceJoin: c.HistoryVisibility == "since_join", lastSeq: c.LastSeq, lastVersion: c.LastVersion}
	for _, m := range rows {
		if !m.Removed {
			mv.joined[m.UserID] = m.JoinedSeq
		}
	}
	return mv, true, nil
}

func (v *cassandraViews) isMember(ctx context.Context, conv, user string) (bool, error) {
	return v.tables.IsMember(ctx, conv, user)
}

func (v *cassandraViews) removedAt(ctx context.Context, conv, user string) (int64, bool, error) {
	m, found, err := v.tables.Member(ctx, conv, user)
	if err != nil || !found || !m.Removed {
		return 0, false, err
	}
	return m.RemovedVersion, true, nil
}

// joinFloor follows query's rule (query/visibility.go): the floor is the
// member's joined seq, the seq of the MembersAdded whose messages row holds
// the event, and so its version. The row is written with the members row,
// from the same event; while it is missing the floor is unknown, which is
// an error (the conversation fails alone, and resumes again).
func (v *cassandraViews) joinFloor(ctx context.Context, conv, user string) (floor, error) {
	m, found, err := v.tables.Member(ctx, conv, user)
	if err != nil || !found || m.JoinedSeq <= 0 {
		return floor{}, err
	}
	c, _, err := v.tables.Conversation(ctx, conv)
	if err != nil || c.Kind != "group" || c.HistoryVisibility != "since_join" {
		return floor{}, err
	}
	row, found, err := v.tables.MessageAt(ctx, conv, m.JoinedSeq)
	if err != nil {
		return floor{}, err
	}
	if !found {
		return floor{}, fmt.Errorf("no messages row at the joined seq %d of %s yet", m.JoinedSeq, schemas.Clip(user))
	}
	ev := &pb.Event{}
	if err := proto.Unmarshal(row.Event, ev); err != nil {
		return floor{}, fmt.Errorf("messages row %s/%d: %w", schemas.Clip(conv), m.JoinedSeq, err)
	}
	return floor{seq: m.JoinedSeq, version: ev.GetVersion()}, nil
}

func (v *cassandraViews) conversations(ctx context.Context, user string) ([]string, error) {
	rows, err := v.tables.Inbox(ctx, user)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		if !r.Gone() {
			out = append(out, r.ConversationID)
		}
	}
	return out, nil
}

func (v *cassandraViews) position(ctx context.Context, conv string) (int64, int64, error) {
	c, _, err := v.tables.Conversation(ctx, conv)
	return c.LastSeq, c.LastVersion, err
}

func (v *cassandraViews) lastVersion(ctx context.Context, conv string) (int64, error) {
	return v.tables.LastVersion(ctx, conv)
}

func (v *cassandraViews) changes(ctx context.Context, conv string, after, top int64, limit int) ([]*pb.Event, error) {
	rows, err := v.tables.ChangesAfter(ctx, conv, after, top, limit)
	out := make([]*pb.Event, 0, len(rows))
	for _, r := range rows {
		ev := &pb.Event{}
		if err := proto.Unmarshal(r.Event, ev); err != nil {
			return out, fmt.Errorf("changes row %s/%d: %w", schemas.Clip(conv), r.Version, err)
		}
		out = append(out, ev)
	}
	return out, err
}

func (v *cassandraViews) message(ctx context.Context, conv string, seq int64) (sourceMessage, error) {
	m, found, err := v.tables.MessageAt(ctx, conv, seq)
	if err != nil || !found {
		return sourceMessage{}, err
	}
	out := sourceMessage{found: true, isMessage: m.Type == schemas.TypeMessageSent, text: m.Text, contentType: m.ContentType,
		sender: m.ActorUserID, sentAt: m.OccurredAt, recalled: m.RecalledBy != ""}
	if out.isMessage && !out.recalled {
		ev := &pb.Event{}
		if err := proto.Unmarshal(m.Event, ev); err != nil {
			return sourceMessage{}, fmt.Errorf("message %s/%d does not decode: %w", conv, seq, err)
		}
		out.attachments = ev.GetMessageSent().GetAttachments()
	}
	return out, nil
}

// blocked reads the blocks view the projector writes from UserBlocked and
// UserUnblocked. The one statement the gateway holds itself: the table's
// reader (projector.Tables) comes with the projector's blocks view.
func (v *cassandraViews) blocked(ctx context.Context, user, other string) (bool, error) {
	return v.tables.Blocked(ctx, user, other)
}
