package gateway

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

const (
	// loadTimeout bounds one membership load on the consumer's path; when
	// Cassandra does not answer in time the event reaches only its actor.
	loadTimeout = 2 * time.Second
	// staleReloadEvery is how often a conversation loaded from a view that
	// lagged behind the log is read again, until the view has caught up.
	staleReloadEvery = 100 * time.Millisecond
)

// convMembers is the cached membership of one conversation.
type convMembers struct {
	id      string
	members map[string]bool
	// seq is the highest seq this entry reflects: the view's last_seq when
	// loaded, then the seq of every event applied.
	seq int64
	// version is the highest Event.version of the events applied (0 until
	// one is): a floor for where the conversation stands in the log.
	version int64
	// stale: loaded from a view that had not seen every event before the
	// one that triggered the load; reloaded (at most every staleReloadEvery)
	// until it has.
	stale    bool
	loadedAt time.Time
	elem     *list.Element
}

// membership is the gateway's cache conversation → current members. An
// entry is loaded from the members view on first need and kept exact
// afterwards by applying the membership events that pass through the
// consumer. It holds at most max conversations, evicting the least recently
// used; an evicted conversation is loaded again when next needed.
//
// Only the events consumer calls it, so loads are in log order with the
// events they are applied to.
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
		e = &convMembers{id: conv, members: map[string]bool{}}
	case !load:
	case e == nil || e.stale && m.now().Sub(e.loadedAt) >= staleReloadEvery:
		if loaded := m.load(ctx, conv, ev.GetSeq()); loaded != nil {
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
	var removed string
	switch b := ev.GetBody().(type) {
	case *pb.Event_ConversationCreated:
		clear(e.members)
		e.members[ev.GetActorUserId()] = true
		for _, u := range b.ConversationCreated.GetMemberUserIds() {
			e.members[u] = true
		}
	case *pb.Event_MembersAdded:
		for _, u := range b.MembersAdded.GetUserIds() {
			e.members[u] = true
		}
	case *pb.Event_MemberRemoved:
		removed = b.MemberRemoved.GetUserId()
		delete(e.members, removed)
	}
	if s := ev.GetSeq(); s > e.seq {
		e.seq = s
	}
	e.version = max(e.version, ev.GetVersion())
	out := make([]string, 0, len(e.members)+1)
	for u := range e.members {
		out = append(out, u)
	}
	if removed != "" {
		out = append(out, removed)
	}
	slices.Sort(out)
	return out
}

// load reads conv's members from the view. seq is the seq of the event
// that needs them (0 for a receipt): a view whose last_seq is below seq−1
// has not applied everything before it, so the entry is marked stale.
func (m *membership) load(ctx context.Context, conv string, seq int64) *convMembers {
	if m.views == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	users, last, found, err := m.views.members(ctx, conv)
	if err != nil || !found {
		return nil
	}
	e := &convMembers{id: conv, members: make(map[string]bool, len(users)), seq: last, loadedAt: m.now()}
	for _, u := range users {
		e.members[u] = true
	}
	e.stale = seq > last+1
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
	out := make([]string, 0, len(e.members))
	for u := range e.members {
		out = append(out, u)
	}
	return out, true
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
