package ingest

import (
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// convState is everything the decider knows about one conversation. It is
// rebuilt from the changelog (parley.ingest.state) on partition assignment.
type convState struct {
	kind    pb.ConversationKind
	title   string
	lastSeq int64
	members map[string]*memberState
	// recent remembers the seq of the last DedupWindow sends, keyed by
	// sender + client_msg_id, oldest first in order.
	recent map[string]int64
	order  []string
}

type memberState struct {
	role                          pb.MemberRole
	joinedSeq, readSeq, delivered int64
}

func newConvState(kind pb.ConversationKind, title string) *convState {
	return &convState{kind: kind, title: title, members: map[string]*memberState{}, recent: map[string]int64{}}
}

func dedupKey(user, clientMsgID string) string { return user + "\x00" + clientMsgID }

// remember records a send and returns the dedup key it evicted, if any.
func (s *convState) remember(key string, seq int64, window int) (evicted string) {
	s.recent[key] = seq
	s.order = append(s.order, key)
	if len(s.order) > window {
		evicted = s.order[0]
		s.order[0] = ""
		s.order = s.order[1:]
		delete(s.recent, evicted)
	}
	return evicted
}

// delta is what one decision changed, so the changelog gets only that.
type delta struct {
	header  bool     // kind, title or lastSeq changed (or the conversation was created)
	members []string // members whose state changed or who were removed
	dedup   []string // dedup keys added or evicted
}

func (d *delta) member(u string) { d.members = append(d.members, u) }
