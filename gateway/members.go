package gateway

import (
	"container/list"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

const (
	// loadTimeout bounds one membership load on the consumer's path; when
	// Cassandra does not answer in time the event reaches only its actor.
	loadTimeout = 2 * time.Second
	// staleReloadEvery is how often a conversation loaded from a view that
	// lagged behind the log is read again, until the view has caught up.
	staleReloadEvery = 100 * time.Millisecond
	// maxPending bounds the membership changes an entry loaded from a
	// lagging view keeps to apply again over its reload; beyond it the
	// entry is dropped and loaded afresh on the conversation's next event.
	maxPending = 256
)

// convMembers is the cached membership of one conversation.
type convMembers struct {
	id string
	// joined holds every current member and its joined seq: 0 for the
	// members from the creation, else the seq of the MembersAdded that last
	// added it.
	joined map[string]int64
	// group, sinceJoin: a group whose history visibility is since_join, in
	// which a member added later may not see a message below its joined seq
	// (query/visibility.go), nor any change of one.
	group, sinceJoin bool
	// seq is the highest seq this entry reflects: the view's last_seq when
	// loaded, then the seq of every event applied.
	seq int64
	// version is the highest Event.version of the events applied (0 until
	// one is): a floor for where the conversation stands in the log.
	version int64
	// stale: loaded from a view that had not applied every event before the
	// one that triggered the load (need), so a change of that window may be
	// missing. Reloaded (at most every staleReloadEvery) until a view has;
	// the membership changes applied since the load (pending) are applied
	// again over each reload, so a reload loses none of them.
	stale    bool
	need     position
	pending  []*pb.Event
	loadedAt time.Time
	elem     *list.Element
}

// position is where an event stands in its conversation's log, or where
// the views stand.
type position struct{ seq, version int64 }

// at is ev's position.
func at(ev *pb.Event) position { return position{ev.GetSeq(), ev.GetVersion()} }

// covers reports whether views standing at p have applied every event
// before the one at q. Versions count every change; a log from before
// versions has only seqs, and there an event without a seq (a receipt)
// cannot tell.
func (p position) covers(q position) bool {
	if q.version > 0 {
		return q.version <= p.version+1
	}
	return q.seq <= p.seq+1
}

// newer reports whether ev is past views standing at p (a membership
// change a reload from them has not applied). An event of a log from
// before versions that has no seq cannot be placed: it counts as newer, and
// applying it again changes nothing.
func (p position) newer(ev *pb.Event) bool {
	if v := ev.GetVersion(); v > 0 {
		return v > p.version
	}
	return ev.GetSeq() == 0 || ev.GetSeq() > p.seq
}

// changesMembership reports whether ev changes what an entry holds: the
// members, their joined seqs, or the history visibility.
func changesMembership(ev *pb.Event) bool {
	switch ev.GetBody().(type) {
	case *pb.Event_ConversationCreated, *pb.Event_MembersAdded, *pb.Event_MemberRemoved, *pb.Event_GroupSettingsChanged:
		return true
	}
	return false
}

// change applies ev's membership change to e; it returns the user a
// MemberRemoved removes. Called with the cache's lock held, or on an entry
// not in the cache yet.
func (e *convMembers) change(ev *pb.Event) (removed string) {
	switch b := ev.GetBody().(type) {
	case *pb.Event_ConversationCreated:
		clear(e.joined)
		e.group = b.ConversationCreated.GetKind() == pb.ConversationKind_CONVERSATION_KIND_GROUP
		e.sinceJoin = false // a group starts with the default, all
		e.joined[ev.GetActorUserId()] = 0
		for _, u := range b.ConversationCreated.GetMemberUserIds() {
			e.joined[u] = 0
		}
	case *pb.Event_MembersAdded:
		for _, u := range b.MembersAdded.GetUserIds() {
			e.joined[u] = ev.GetSeq()
		}
	case *pb.Event_MemberRemoved:
		removed = b.MemberRemoved.GetUserId()
		delete(e.joined, removed)
	case *pb.Event_GroupSettingsChanged:
		if st := b.GroupSettingsChanged.GetSettings(); st.HistoryVisibility != nil {
			e.sinceJoin = st.GetHistoryVisibility() == pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN
		}
	}
	return removed
}

// sees reports whether user may be sent a change of the message at seq
// (an edit, recall, reaction or pin of it): query's rule
// (query/visibility.go). In a group whose history visibility is since_join
// a member added later sees nothing below its joined seq; members from the
// creation see everything, as everyone does in a direct conversation or
// with all. What the entry cannot answer is not guessed: a user it does not
// list, or a member added later while the entry may miss a change of the
// window it was loaded behind (a new join, the setting), does not see it.
// A nil entry (membership unknown) answers no for everyone.
func (e *convMembers) sees(user string, seq int64) bool {
	if e == nil {
		return false
	}
	if !e.group {
		return true
	}
	joined, listed := e.joined[user]
	switch {
	case listed && joined == 0:
		return true
	case e.stale:
		return false
	case !e.sinceJoin:
		return true
	case !listed:
		return false
	}
	return seq >= joined
}

// membership is the gateway's cache conversation → current members (with
// their joined seqs) and history visibility. An entry is loaded from the
// views on first need and kept exact afterwards by applying the membership
// and settings events that pass through the consumer. It holds at most max
// conversations, evicting the least recently used; an evicted conversation
// is loaded again when next needed.
//
// Only the events consumer calls apply, so loads are in log order with the
// events they are applied to; peek and withheld may be called by any
// goroutine.
type membership struct {
	mu    sync.Mutex
	views views // nil: no Cassandra, nothing is loaded
	max   int
	lru   *list.List // front = most recently used
	convs map[string]*convMembers
	now   func() time.Time
}

func newMembership(v views, max int) *membership {
	return &membership{views: v, max: max, lru: list.New(), convs: map[string]*convMembers{}, now: time.Now}
}

// apply updates the cache with ev and returns the members that get it
// (after the change, plus the removed user for a MemberRemoved), or nil
// when the membership is unknown (no views, or the load failed).
func (m *membership) apply(ctx context.Context, ev *pb.Event) []string {
	return m.applyLoad(ctx, ev, true)
}

// applyCached applies ev without loading anything from the views.
func (m *membership) applyCached(ev *pb.Event) {
	m.applyLoad(context.Background(), ev, false)
}

func (m *membership) applyLoad(ctx context.Context, ev *pb.Event, load bool) []string {
	conv := ev.GetConversationId()
	m.mu.Lock()
	e := m.convs[conv]
	m.mu.Unlock()
	switch {
	case e == nil && ev.GetConversationCreated() != nil:
		// Lists every member: no load needed.
		e = &convMembers{id: conv, joined: map[string]int64{}}
	case !load:
	case e == nil:
		e = m.load(ctx, conv, ev, nil)
	case e.stale && m.now().Sub(e.loadedAt) >= staleReloadEvery:
		if loaded := m.load(ctx, conv, ev, e); loaded != nil {
			e = loaded
		}
	}
	if e == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur := m.convs[conv]; cur != e {
		if cur != nil {
			m.lru.Remove(cur.elem)
		}
		m.convs[conv] = e
		e.elem = m.lru.PushFront(e)
		for m.lru.Len() > m.max {
			old := m.lru.Remove(m.lru.Back()).(*convMembers)
			delete(m.convs, old.id)
		}
	} else {
		m.lru.MoveToFront(e.elem)
	}
	removed := e.change(ev)
	if e.stale && changesMembership(ev) {
		if len(e.pending) >= maxPending {
			// Too much to apply again: the next event loads it afresh.
			m.lru.Remove(e.elem)
			delete(m.convs, conv)
		}
		e.pending = append(e.pending, ev)
	}
	if s := ev.GetSeq(); s > e.seq {
		e.seq = s
	}
	e.version = max(e.version, ev.GetVersion())
	out := make([]string, 0, len(e.joined)+1)
	for u := range e.joined {
		out = append(out, u)
	}
	if removed != "" {
		out = append(out, removed)
	}
	slices.Sort(out)
	return out
}

// load reads conv's membership from the views for ev, the event that needs
// it. Views that have not applied every event before ev make the entry
// stale. prev is the stale entry being reloaded (nil on a first load): its
// pending changes past the views are applied again, and it stays stale
// until views cover the event that first loaded it.
func (m *membership) load(ctx context.Context, conv string, ev *pb.Event, prev *convMembers) *convMembers {
	if m.views == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	mv, found, err := m.views.membership(ctx, conv)
	if err != nil || !found {
		return nil
	}
	views := position{mv.lastSeq, mv.lastVersion}
	e := &convMembers{id: conv, joined: mv.joined, group: mv.group, sinceJoin: mv.sinceJoin, seq: mv.lastSeq,
		loadedAt: m.now(), need: at(ev)}
	if e.joined == nil {
		e.joined = map[string]int64{}
	}
	if prev != nil {
		m.mu.Lock() // prev is in the cache: peek may read it meanwhile
		e.need, e.seq, e.version = prev.need, max(e.seq, prev.seq), prev.version
		pending := slices.Clone(prev.pending)
		m.mu.Unlock()
		for _, p := range pending {
			if views.newer(p) {
				e.change(p)
			}
		}
		e.pending = pending
	}
	e.stale = !views.covers(e.need)
	if !e.stale {
		e.pending = nil
	}
	return e
}

// peek returns conv's cached members without loading or reordering
// anything; any goroutine may call it.
func (m *membership) peek(conv string) ([]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.convs[conv]
	if e == nil {
		return nil, false
	}
	return slices.Collect(maps.Keys(e.joined)), true
}

// withheld returns the users among users who may not see ev (convMembers.sees),
// or nil when all of them may: ev changes an earlier message
// (schemas.MessageSeq) of a group whose history visibility is since_join.
// Events that change no message, and direct conversations, never read the
// cache.
func (m *membership) withheld(ev *pb.Event, users []string) map[string]bool {
	seq := schemas.MessageSeq(ev)
	if seq <= 0 || len(users) == 0 || schemas.IsDirectConversationID(ev.GetConversationId()) {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.convs[ev.GetConversationId()]
	var out map[string]bool
	for _, u := range users {
		if !e.sees(u, seq) {
			if out == nil {
				out = map[string]bool{}
			}
			out[u] = true
		}
	}
	return out
}

// size is the number of cached conversations.
func (m *membership) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.convs)
}

// logVersion is the highest version of conv this gateway has seen, 0 when
// conv is not cached.
func (m *membership) logVersion(conv string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.convs[conv]; e != nil {
		return e.version
	}
	return 0
}
