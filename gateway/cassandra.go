package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// views reads the projector's Cassandra views: membership for fan-out and
// timeline rows for resume. The gateway only reads; every statement is
// single-partition.
type views interface {
	// members returns the current members of conv and the view's last_seq;
	// found is false when the conversation has no row yet.
	members(ctx context.Context, conv string) (members []string, lastSeq int64, found bool, err error)
	// isMember says whether user is a current member of conv.
	isMember(ctx context.Context, conv, user string) (bool, error)
	// conversations returns the conversations user is a current member of.
	conversations(ctx context.Context, user string) ([]string, error)
	// lastSeq is conversations.last_seq of conv (0 when there is no row).
	lastSeq(ctx context.Context, conv string) (int64, error)
	// timeline returns up to limit events with seq > after, oldest first,
	// stopping at the first missing seq (a row the projector has not
	// written yet), so what it returns is always contiguous from after+1.
	timeline(ctx context.Context, conv string, after int64, limit int) ([]*pb.Event, error)
}

// cassandraViews implements views on a gocql session.
type cassandraViews struct {
	session *gocql.Session
}

func openViews(hosts []string, keyspace string) (*cassandraViews, error) {
	c := gocql.NewCluster(hosts...)
	c.Keyspace = keyspace
	// LOCAL_QUORUM reads see every write the projector made at LOCAL_QUORUM.
	c.Consistency = gocql.LocalQuorum
	c.Timeout = 5 * time.Second
	c.ConnectTimeout = 5 * time.Second
	c.Logger = gocql.NewLogger(gocql.LogLevelNone)
	s, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("gateway: cassandra session (hosts %v, keyspace %s): %w", hosts, keyspace, err)
	}
	return &cassandraViews{session: s}, nil
}

func (v *cassandraViews) close() { v.session.Close() }

func (v *cassandraViews) members(ctx context.Context, conv string) ([]string, int64, bool, error) {
	last, err := v.lastSeqFound(ctx, conv)
	if err != nil || last < 0 {
		return nil, 0, false, err
	}
	iter := v.session.Query("SELECT user_id, removed FROM members WHERE conversation_id = ?", conv).IterContext(ctx)
	var out []string
	var user string
	var removed bool
	for iter.Scan(&user, &removed) {
		if !removed {
			out = append(out, user)
		}
	}
	if err := iter.Close(); err != nil {
		return nil, 0, false, fmt.Errorf("read members: %w", err)
	}
	return out, last, true, nil
}

func (v *cassandraViews) isMember(ctx context.Context, conv, user string) (bool, error) {
	var removed bool
	err := v.session.Query("SELECT removed FROM members WHERE conversation_id = ? AND user_id = ?", conv, user).
		ScanContext(ctx, &removed)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read members: %w", err)
	}
	return !removed, nil
}

func (v *cassandraViews) conversations(ctx context.Context, user string) ([]string, error) {
	iter := v.session.Query("SELECT conversation_id, removed FROM inbox WHERE user_id = ?", user).IterContext(ctx)
	var out []string
	var conv string
	var removed bool
	for iter.Scan(&conv, &removed) {
		if !removed {
			out = append(out, conv)
		}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("read inbox: %w", err)
	}
	return out, nil
}

func (v *cassandraViews) lastSeq(ctx context.Context, conv string) (int64, error) {
	last, err := v.lastSeqFound(ctx, conv)
	return max(last, 0), err
}

// lastSeqFound is conversations.last_seq, or -1 when there is no row.
func (v *cassandraViews) lastSeqFound(ctx context.Context, conv string) (int64, error) {
	var last int64
	err := v.session.Query("SELECT last_seq FROM conversations WHERE conversation_id = ?", conv).ScanContext(ctx, &last)
	if errors.Is(err, gocql.ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read conversations: %w", err)
	}
	return last, nil
}

func (v *cassandraViews) timeline(ctx context.Context, conv string, after int64, limit int) ([]*pb.Event, error) {
	top, err := v.lastSeq(ctx, conv)
	if err != nil {
		return nil, err
	}
	var out []*pb.Event
	next := after + 1
	for b := schemas.Bucket(next); b <= schemas.Bucket(top) && len(out) < limit; b++ {
		iter := v.session.Query(`SELECT seq, event FROM messages WHERE conversation_id = ? AND bucket = ? AND seq >= ?
			ORDER BY seq ASC LIMIT ?`, conv, b, next, limit-len(out)).IterContext(ctx)
		var seq int64
		var blob []byte
		gap := false
		for !gap && iter.Scan(&seq, &blob) {
			if seq != next {
				gap = true
				break
			}
			ev := &pb.Event{}
			if err := proto.Unmarshal(blob, ev); err != nil {
				_ = iter.Close()
				return out, fmt.Errorf("messages row %s/%d: %w", conv, seq, err)
			}
			out = append(out, ev)
			next++
			blob = nil
		}
		if err := iter.Close(); err != nil {
			return out, fmt.Errorf("read messages: %w", err)
		}
		if gap || next <= (b+1)*schemas.MessagesPerBucket-1 && len(out) < limit {
			// A missing row (projector behind) or the bucket ended early:
			// nothing contiguous lies beyond.
			break
		}
	}
	return out, nil
}
