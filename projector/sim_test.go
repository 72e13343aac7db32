package projector

import (
	"fmt"
	"math/rand/v2"
	"slices"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// sim produces a valid parley.events log the way ingest's decider would
// (dense seqs, forward-only marks, membership rules), and remembers what the
// views must say at the end.
type sim struct {
	rng   *rand.Rand
	convs []*simConv
	log   []*pb.Event
}

type simConv struct {
	id      string
	group   bool
	lastSeq int64
	owner   string
	members map[string]*simMember // current and former
	users   int                   // users ever created for this conversation
}

type simMember struct {
	read, delivered, joined, removedSeq int64
	removed                             bool
	reason                              string
}

func newSim(seed uint64, prefix string, conversations int) *sim {
	s := &sim{rng: rand.New(rand.NewPCG(seed, seed))}
	for i := range conversations {
		c := &simConv{id: fmt.Sprintf("%s-%d", prefix, i), group: i%4 != 3, members: map[string]*simMember{}}
		s.convs = append(s.convs, c)
		n := 2
		if c.group {
			n = 3 + s.rng.IntN(3)
		}
		users := make([]string, n)
		for j := range users {
			users[j] = c.newUser()
			c.members[users[j]] = &simMember{}
		}
		c.owner = users[0]
		if c.group {
			s.log = append(s.log, group(c.id, users[0], "title of "+c.id, users[1:]...))
		} else {
			s.log = append(s.log, created(c.id, users[0], pb.ConversationKind_CONVERSATION_KIND_DIRECT, "", users[1]))
		}
	}
	return s
}

func (c *simConv) newUser() string {
	c.users++
	return fmt.Sprintf("%s-u%d", c.id, c.users)
}

// current returns the current members, sorted (map order is random).
func (c *simConv) current() []string {
	var out []string
	for u, m := range c.members {
		if !m.removed {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

func (c *simConv) former() []string {
	var out []string
	for u, m := range c.members {
		if m.removed {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// step appends n random events (decisions of accepted and refused commands).
func (s *sim) step(n int) []*pb.Event {
	start := len(s.log)
	for len(s.log)-start < n {
		c := s.convs[s.rng.IntN(len(s.convs))]
		cur := c.current()
		u := cur[s.rng.IntN(len(cur))]
		m := c.members[u]
		switch r := s.rng.IntN(100); {
		case r < 50:
			c.lastSeq++
			m.read, m.delivered = c.lastSeq, c.lastSeq
			s.log = append(s.log, sent(c.id, c.lastSeq, u, fmt.Sprintf("message %d of %s: %s", c.lastSeq, u, "ünïcödé ✓")))
		case r < 62:
			if m.read < c.lastSeq {
				up := m.read + 1 + s.rng.Int64N(c.lastSeq-m.read)
				m.read, m.delivered = up, max(m.delivered, up)
				s.log = append(s.log, read(c.id, u, up))
			}
		case r < 72:
			if m.delivered < c.lastSeq {
				up := m.delivered + 1 + s.rng.Int64N(c.lastSeq-m.delivered)
				m.delivered = up
				s.log = append(s.log, delivered(c.id, u, up))
			}
		case r < 82:
			if !c.group {
				continue
			}
			var add []string
			if f := c.former(); len(f) > 0 && s.rng.IntN(2) == 0 {
				add = append(add, f[s.rng.IntN(len(f))]) // a re-add
			}
			add = append(add, c.newUser())
			c.lastSeq++
			for _, a := range add {
				c.members[a] = &simMember{read: c.lastSeq, delivered: c.lastSeq, joined: c.lastSeq,
					removedSeq: c.members[a].getRemovedSeq(), reason: c.members[a].getReason()}
			}
			s.log = append(s.log, added(c.id, c.lastSeq, u, add...))
		case r < 92:
			if !c.group || len(cur) < 2 {
				continue
			}
			target, actor := u, u // leaves
			if s.rng.IntN(2) == 0 && u != c.owner && !c.members[c.owner].removed {
				actor = c.owner // the owner removes u
			}
			c.lastSeq++
			t := c.members[target]
			t.removed, t.removedSeq, t.reason = true, c.lastSeq, "left"
			if actor != target {
				t.reason = "removed"
			}
			s.log = append(s.log, removed(c.id, c.lastSeq, actor, target))
		case r < 96:
			s.log = append(s.log, rejected(c.id, u))
		default:
			if c.lastSeq > 0 {
				s.log = append(s.log, deduplicated(c.id, u, c.lastSeq))
			}
		}
	}
	return s.log[start:]
}

func (m *simMember) getRemovedSeq() int64 {
	if m == nil {
		return 0
	}
	return m.removedSeq
}

func (m *simMember) getReason() string {
	if m == nil {
		return ""
	}
	return m.reason
}

// byConversation splits the log per conversation, in log order.
func (s *sim) byConversation() map[string][]*pb.Event {
	out := map[string][]*pb.Event{}
	for _, ev := range s.log {
		out[ev.GetConversationId()] = append(out[ev.GetConversationId()], ev)
	}
	return out
}

// shuffled returns the log with each conversation's events in a random
// order, conversations interleaved at random.
func (s *sim) shuffled() []*pb.Event {
	per := s.byConversation()
	var ids []string
	for id, evs := range per {
		s.rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []*pb.Event
	for len(out) < len(s.log) {
		id := ids[s.rng.IntN(len(ids))]
		if len(per[id]) > 0 {
			out = append(out, per[id][0])
			per[id] = per[id][1:]
		}
	}
	return out
}
