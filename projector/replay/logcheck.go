package replay

import (
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// logCheck checks the invariants the decider promises about parley.events,
// from the events alone (and parley.commands for the outcomes), without
// looking at the views:
//
//   - every conversation starts with one ConversationCreated (seq 0);
//   - timeline events take dense seqs 1, 2, 3 …, other events seq 0;
//   - read and delivered marks only move forward (a ReadUpTo or
//     DeliveredUpTo above the member's mark, at most the last seq), and only
//     current members send, read or are removed;
//   - message actions (MessageEdited, MessageRecalled, ReactionAdded,
//     ReactionRemoved) take seq 0 and a version, name a MessageSent of the
//     conversation by message_seq, and are sent by a current member; only
//     the message's sender edits it, with edit numbers 1, 2, 3 … per
//     message; a message is recalled at most once, by its sender or by a
//     group's owner (its creator, while a member since), and nothing edits
//     or reacts to it after; a ReactionAdded adds a reaction (user, emoji)
//     the message does not have, a ReactionRemoved removes one it has;
//   - a reply (MessageSent.reply_to_seq) names an earlier MessageSent of
//     the conversation, not recalled when the reply was sent;
//   - every command decided by ingest has exactly one outcome event (a mark
//     that would not move, a recall of a recalled message, a reaction
//     already there or already gone have none), and every event names a
//     command of parley.commands (while the topic still holds it).
//
// It also keeps, per conversation, last_seq and each member's read mark, so
// unread = last_seq − read_seq can be checked against the live views, and
// per message its sender, edit count, recall and reactions, which the live
// views are checked against too (checkActions).
// Events of a conversation must be given in log order; conversations may
// interleave (it is safe for concurrent use).
type logCheck struct {
	mu       sync.Mutex
	convs    map[string]*convModel
	outcomes map[string][]where // command_id → its events
	commands map[string]command
	problems []string
	events   int64
}

type where struct {
	partition int32
	offset    int64
	typ, conv string
}

func (w where) String() string {
	return fmt.Sprintf("%s of %s at partition %d offset %d", w.typ, w.conv, w.partition, w.offset)
}

type command struct {
	where
	decided bool // before ingest's committed offset when the check started
}

type convModel struct {
	lastSeq int64
	// lastVersion is the newest Event.version; versioned is false for a
	// conversation created before versions existed (its events carry 0).
	lastVersion int64
	versioned   bool
	members     map[string]*memberModel // current and former
	messages    map[int64]*messageModel // every MessageSent, by seq
}

type memberModel struct {
	read, delivered int64
	current         bool
	// owner: the creator of a group, until it leaves or is removed (a
	// member added back is a plain member; nothing promotes one).
	owner bool
}

// messageModel is what the log says about one message.
type messageModel struct {
	sender     string
	edits      int64  // MessageEdited events
	recalledBy string // "": not recalled
	reactions  map[reaction]bool
}

// reaction is one user's emoji on a message.
type reaction struct{ emoji, user string }

func newLogCheck() *logCheck {
	return &logCheck{convs: map[string]*convModel{}, outcomes: map[string][]where{}, commands: map[string]command{}}
}

func (c *logCheck) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// undecodable records a record of parley.events that is not an Event.
func (c *logCheck) undecodable(partition int32, offset int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problem("partition %d offset %d does not decode as parley.v1.Event: %v", partition, offset, err)
}

// event checks one event of parley.events.
func (c *logCheck) event(partition int32, offset int64, ev *pb.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events++
	typ, id := schemas.EventType(ev), ev.GetConversationId()
	at := where{partition, offset, typ, id}
	if ev.GetCommandId() == "" {
		c.problem("%s has no command_id", at)
	} else {
		c.outcomes[ev.GetCommandId()] = append(c.outcomes[ev.GetCommandId()], at)
	}
	conv := c.convs[id]
	if typ == schemas.TypeConversationCreated {
		if conv != nil {
			c.problem("%s: the conversation was created before", at)
			return
		}
		conv = &convModel{members: map[string]*memberModel{}, messages: map[int64]*messageModel{},
			lastVersion: ev.GetVersion(), versioned: ev.GetVersion() != 0}
		c.convs[id] = conv
		if conv.versioned && ev.GetVersion() != 1 {
			c.problem("%s: version %d, want 1 (the first event of a conversation)", at, ev.GetVersion())
		}
		cc := ev.GetConversationCreated()
		for _, u := range cc.GetMemberUserIds() {
			conv.members[u] = &memberModel{current: true}
		}
		if m := conv.members[ev.GetActorUserId()]; m != nil && cc.GetKind() == pb.ConversationKind_CONVERSATION_KIND_GROUP {
			m.owner = true
		}
		if ev.GetSeq() != 0 {
			c.problem("%s: seq %d, want 0", at, ev.GetSeq())
		}
		return
	}
	if conv == nil {
		if typ != schemas.TypeCommandRejected { // refusals of commands on unknown conversations are fine
			c.problem("%s comes before the conversation's ConversationCreated", at)
		}
		return
	}
	switch v := ev.GetVersion(); {
	case typ == schemas.TypeCommandRejected || typ == schemas.TypeMessageDeduplicated:
		if v != 0 {
			c.problem("%s: version %d, want 0 (an answer to the sender only)", at, v)
		}
	case !conv.versioned:
		if v != 0 {
			c.problem("%s: version %d in a conversation created without versions", at, v)
		}
	case v != conv.lastVersion+1:
		c.problem("%s: version %d after version %d (versions must be dense)", at, v, conv.lastVersion)
		conv.lastVersion = max(conv.lastVersion, v)
	default:
		conv.lastVersion = v
	}
	if schemas.IsTimelineEvent(typ) {
		if ev.GetSeq() != conv.lastSeq+1 {
			c.problem("%s: seq %d after seq %d (seqs must be dense)", at, ev.GetSeq(), conv.lastSeq)
		}
		conv.lastSeq = max(conv.lastSeq, ev.GetSeq())
	} else if ev.GetSeq() != 0 {
		c.problem("%s: seq %d, want 0 (not a timeline event)", at, ev.GetSeq())
	}
	actor := ev.GetActorUserId()
	current := func(u string) *memberModel {
		m := conv.members[u]
		if m == nil || !m.current {
			c.problem("%s: %s is not a member", at, u)
			return nil
		}
		return m
	}
	switch typ {
	case schemas.TypeMessageSent:
		if m := current(actor); m != nil {
			m.read, m.delivered = max(m.read, ev.GetSeq()), max(m.delivered, ev.GetSeq())
		}
		if r := ev.GetMessageSent().GetReplyToSeq(); r != 0 {
			switch to := conv.messages[r]; {
			case to == nil || r >= ev.GetSeq():
				c.problem("%s: reply_to_seq %d is not an earlier MessageSent of the conversation", at, r)
			case to.recalledBy != "":
				c.problem("%s: reply to message %d, recalled before by %s", at, r, to.recalledBy)
			}
		}
		if conv.messages[ev.GetSeq()] == nil {
			conv.messages[ev.GetSeq()] = &messageModel{sender: actor}
		}
	case schemas.TypeMembersAdded:
		for _, u := range ev.GetMembersAdded().GetUserIds() {
			if m := conv.members[u]; m != nil && m.current {
				c.problem("%s: %s is a member already", at, u)
			}
			conv.members[u] = &memberModel{read: ev.GetSeq(), delivered: ev.GetSeq(), current: true}
		}
	case schemas.TypeMemberRemoved:
		if m := current(ev.GetMemberRemoved().GetUserId()); m != nil {
			m.current, m.owner = false, false
		}
	case schemas.TypeReadUpTo:
		up := ev.GetReadUpTo().GetUpToSeq()
		if m := current(actor); m != nil {
			if up <= m.read || up > conv.lastSeq {
				c.problem("%s: read mark of %s moves from %d to %d (last seq %d): marks only move forward, up to the last seq",
					at, actor, m.read, up, conv.lastSeq)
			}
			m.read, m.delivered = max(m.read, up), max(m.delivered, up)
		}
	case schemas.TypeDeliveredUpTo:
		up := ev.GetDeliveredUpTo().GetUpToSeq()
		if m := current(actor); m != nil {
			if up <= m.delivered || up > conv.lastSeq {
				c.problem("%s: delivered mark of %s moves from %d to %d (last seq %d): marks only move forward, up to the last seq",
					at, actor, m.delivered, up, conv.lastSeq)
			}
			m.delivered = max(m.delivered, up)
		}
	case schemas.TypeMessageDeduplicated:
		if s := ev.GetMessageDeduplicated().GetOriginalSeq(); s < 1 || s > conv.lastSeq {
			c.problem("%s: original seq %d outside 1..%d", at, s, conv.lastSeq)
		}
	case schemas.TypeMessageEdited, schemas.TypeMessageRecalled, schemas.TypeReactionAdded, schemas.TypeReactionRemoved:
		c.action(at, conv, ev, current(actor))
	}
}

// action checks a message action: an edit, a recall or a reaction by
// Event.actor_user_id (member, nil when it is not a current one).
func (c *logCheck) action(at where, conv *convModel, ev *pb.Event, member *memberModel) {
	actor := ev.GetActorUserId()
	var seq int64
	switch b := ev.GetBody().(type) {
	case *pb.Event_MessageEdited:
		seq = b.MessageEdited.GetMessageSeq()
	case *pb.Event_MessageRecalled:
		seq = b.MessageRecalled.GetMessageSeq()
	case *pb.Event_ReactionAdded:
		seq = b.ReactionAdded.GetMessageSeq()
	case *pb.Event_ReactionRemoved:
		seq = b.ReactionRemoved.GetMessageSeq()
	}
	msg := conv.messages[seq]
	if msg == nil {
		c.problem("%s: message_seq %d is not a MessageSent of the conversation", at, seq)
		return
	}
	if msg.recalledBy != "" {
		if at.typ == schemas.TypeMessageRecalled {
			c.problem("%s: message %d recalled a second time (first by %s)", at, seq, msg.recalledBy)
		} else {
			c.problem("%s: message %d was recalled by %s before: no edit or reaction after a recall", at, seq, msg.recalledBy)
		}
		return
	}
	switch b := ev.GetBody().(type) {
	case *pb.Event_MessageEdited:
		if actor != msg.sender {
			c.problem("%s: %s edits message %d of %s: only the sender edits", at, actor, seq, msg.sender)
		}
		if n := int64(b.MessageEdited.GetEditNumber()); n != msg.edits+1 {
			c.problem("%s: edit_number %d of message %d after %d edit(s) (edit numbers must be dense per message)", at, n, seq, msg.edits)
		}
		msg.edits++
	case *pb.Event_MessageRecalled:
		if actor != msg.sender && (member == nil || !member.owner) {
			c.problem("%s: %s recalls message %d of %s: only its sender or a group owner recalls", at, actor, seq, msg.sender)
		}
		if s := b.MessageRecalled.GetSenderUserId(); s != "" && s != msg.sender { // "": the decider no longer remembered the sender
			c.problem("%s: sender_user_id %s, but message %d was sent by %s", at, s, seq, msg.sender)
		}
		msg.recalledBy, msg.reactions = actor, nil
	case *pb.Event_ReactionAdded:
		r := reaction{b.ReactionAdded.GetEmoji(), actor}
		if msg.reactions[r] {
			c.problem("%s: %s has reacted %q to message %d already (an add only when new)", at, actor, r.emoji, seq)
		}
		if msg.reactions == nil {
			msg.reactions = map[reaction]bool{}
		}
		msg.reactions[r] = true
	case *pb.Event_ReactionRemoved:
		r := reaction{b.ReactionRemoved.GetEmoji(), actor}
		if !msg.reactions[r] {
			c.problem("%s: %s has no reaction %q on message %d to remove (a removal only when there)", at, actor, r.emoji, seq)
		}
		delete(msg.reactions, r)
	}
}

// command records one command of parley.commands; decided says ingest had
// committed past it when the check started, so its outcome must be in the
// events read.
func (c *logCheck) command(partition int32, offset int64, cmd *pb.Command, decided bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := where{partition, offset, schemas.CommandType(cmd), cmd.GetConversationId()}
	if prev, ok := c.commands[cmd.GetCommandId()]; ok {
		c.problem("command %s appears twice in the commands topic: %s and %s", cmd.GetCommandId(), prev.where, at)
		return
	}
	c.commands[cmd.GetCommandId()] = command{at, decided}
}

// finish checks outcomes against commands. commandsComplete says the
// commands topic still holds every command ever appended (nothing deleted
// by retention), so an event whose command is missing is a problem.
func (c *logCheck) finish(commandsComplete bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(c.outcomes)) {
		evs := c.outcomes[id]
		if len(evs) > 1 {
			c.problem("command %s has %d outcome events: %v", id, len(evs), evs)
		}
		if _, ok := c.commands[id]; !ok && commandsComplete {
			c.problem("%s names command %s, which is not in the commands topic", evs[0], id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.commands)) {
		cmd := c.commands[id]
		if !cmd.decided || len(c.outcomes[id]) > 0 {
			continue
		}
		switch cmd.typ {
		case schemas.TypeMarkRead, schemas.TypeMarkDelivered:
			continue // a mark that does not move yields no event
		case schemas.TypeRecallMessage, schemas.TypeAddReaction, schemas.TypeRemoveReaction:
			continue // nor does a recall of a recalled message, or a reaction already there (or gone)
		}
		c.problem("command %s (%s) was decided but has no outcome event", id, cmd.where)
	}
	return c.problems
}

// unread is the unread count of a current member by the log; ok is false
// when u is not a current member of conversation id.
func (c *logCheck) unread(id, u string) (lastSeq, read int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conv := c.convs[id]
	if conv == nil {
		return 0, 0, false
	}
	m := conv.members[u]
	if m == nil || !m.current {
		return conv.lastSeq, 0, false
	}
	return conv.lastSeq, m.read, true
}
