package ingest

import (
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// convState is everything the decider knows about one conversation. It is
// rebuilt from the changelog (parley.ingest.state) on partition assignment.
type convState struct {
	kind    pb.ConversationKind
	title   string
	lastSeq int64
	// lastVersion is the version of the conversation's newest event that
	// changes a view (Event.version).
	lastVersion int64
	members     map[string]*memberState
	// dedup remembers, per sender, the client ids of their recent sends:
	// at most DedupPerSender each, each for at least DedupWindow after it
	// was received. Other senders' traffic never pushes an id out.
	dedup map[string]*senderDedup
}

type memberState struct {
	role                          pb.MemberRole
	joinedSeq, readSeq, delivered int64
}

// dedupEntry is one remembered send: its seq and when the command was
// received (Unix milliseconds).
type dedupEntry struct{ seq, at int64 }

// senderDedup is one sender's remembered sends in one conversation.
type senderDedup struct {
	ids map[string]dedupEntry
	// order lists the sends oldest first. An item whose entry is gone (swept
	// by time) or was replaced is stale and skipped.
	order []orderItem
}

type orderItem struct {
	id string
	at int64
}

func newConvState(kind pb.ConversationKind, title string) *convState {
	return &convState{kind: kind, title: title, members: map[string]*memberState{}, dedup: map[string]*senderDedup{}}
}

// lookup finds a remembered send of user.
func (s *convState) lookup(user, clientMsgID string) (dedupEntry, bool) {
	sd := s.dedup[user]
	if sd == nil {
		return dedupEntry{}, false
	}
	e, ok := sd.ids[clientMsgID]
	return e, ok
}

// remember records a send of user and returns the client ids it evicted
// because the sender passed perSender remembered sends (one at most, unless
// the limit was lowered since the state was written).
func (s *convState) remember(user, clientMsgID string, e dedupEntry, perSender int) (evicted []string) {
	sd := s.dedup[user]
	if sd == nil {
		sd = &senderDedup{ids: map[string]dedupEntry{}}
		s.dedup[user] = sd
	}
	sd.ids[clientMsgID] = e
	sd.order = append(sd.order, orderItem{clientMsgID, e.at})
	for len(sd.ids) > perSender && len(sd.order) > 0 {
		old := sd.order[0]
		sd.order[0] = orderItem{}
		sd.order = sd.order[1:]
		if cur, ok := sd.ids[old.id]; ok && cur.at == old.at {
			delete(sd.ids, old.id)
			evicted = append(evicted, old.id)
		}
	}
	sd.compact()
	return evicted
}

// forget drops user's send clientMsgID if it is still the one received at
// at, and reports whether it did (the time sweep; an entry evicted or
// replaced since is left alone).
func (s *convState) forget(user, clientMsgID string, at int64) bool {
	sd := s.dedup[user]
	if sd == nil {
		return false
	}
	cur, ok := sd.ids[clientMsgID]
	if !ok || cur.at != at {
		return false
	}
	delete(sd.ids, clientMsgID)
	for len(sd.order) > 0 {
		if c, ok := sd.ids[sd.order[0].id]; ok && c.at == sd.order[0].at {
			break
		}
		sd.order[0] = orderItem{}
		sd.order = sd.order[1:]
	}
	if len(sd.ids) == 0 {
		delete(s.dedup, user)
		return true
	}
	sd.compact()
	return true
}

// compact drops stale order items once they outnumber the live ones, so a
// sender's order stays proportional to what is remembered.
func (sd *senderDedup) compact() {
	if len(sd.order) <= 2*len(sd.ids)+16 {
		return
	}
	live := make([]orderItem, 0, len(sd.ids))
	for _, it := range sd.order {
		if c, ok := sd.ids[it.id]; ok && c.at == it.at {
			live = append(live, it)
		}
	}
	sd.order = live
}

// delta is what one decision changed, so the changelog gets only that.
type delta struct {
	header  bool       // kind, title, lastSeq or lastVersion changed (or the conversation was created)
	members []string   // members whose state changed or who were removed
	dedup   []dedupRef // remembered sends added or evicted
}

// dedupRef names one remembered send.
type dedupRef struct{ user, clientMsgID string }

func (d *delta) member(u string) { d.members = append(d.members, u) }

// partState is the decider's state of one partition: its conversations and
// the queue of remembered sends by the time they expire.
type partState struct {
	convs map[string]*convState
	// expiry lists remembered sends in the order they were received; the
	// sweep takes from its front those older than the window.
	expiry []expiryItem
	// clock is the newest receive time seen in the partition (Unix ms):
	// the sweep's "now", so that deciding a backlog late does not expire
	// what its resends still need.
	clock int64
}

type expiryItem struct {
	conv, user, clientMsgID string
	at                      int64
	// orphan: the send is no longer in memory but its changelog record may
	// still be (restored past a lowered cap); the sweep tombstones it.
	orphan bool
}

func newPartState() *partState { return &partState{convs: map[string]*convState{}} }

// track queues a remembered send for the time sweep.
func (p *partState) track(conv, user, clientMsgID string, at int64) {
	p.expiry = append(p.expiry, expiryItem{conv: conv, user: user, clientMsgID: clientMsgID, at: at})
	p.clock = max(p.clock, at)
}

// sweep forgets at most limit remembered sends received more than window
// before the partition's clock and returns them, for their tombstones. A
// send received out of order (an older timestamp queued after a newer one)
// waits until those before it are swept: it is kept longer, never shorter.
func (p *partState) sweep(window time.Duration, limit int) (gone []expiryItem) {
	cut := p.clock - window.Milliseconds()
	n := 0
	for n < len(p.expiry) && len(gone) < limit && p.expiry[n].at <= cut {
		it := p.expiry[n]
		n++
		st := p.convs[it.conv]
		if st == nil {
			continue
		}
		if it.orphan {
			// Sent again since: its record is the new send's now.
			if _, live := st.lookup(it.user, it.clientMsgID); live {
				continue
			}
		} else if !st.forget(it.user, it.clientMsgID, it.at) {
			continue
		}
		gone = append(gone, it)
	}
	if n > 0 {
		clear(p.expiry[:n])
		p.expiry = p.expiry[n:]
	}
	return gone
}
