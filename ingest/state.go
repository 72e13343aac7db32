package ingest

import (
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// convState is everything the decider knows about one conversation. It is
// rebuilt from the changelog (parley.ingest.state) on partition assignment.
//
// Memory: the header and members, plus about 300 bytes per remembered send
// (dedup, bySeq and the partition's expiry queue; README.md, "State and
// restore"). The three sets below are nil until first used: notices and
// recalled hold one small map entry per member notice or recalled message,
// which are rare next to messages; reactions hold one entry per reacted
// message, emoji and user, so they scale with the reactions given, not with
// the messages. pins hold one entry per pinned message (at most
// Limits.MaxPins).
type convState struct {
	kind    pb.ConversationKind
	title   string
	lastSeq int64
	// lastVersion is the version of the conversation's newest event that
	// changes a view (Event.version).
	lastVersion int64
	// settings are a group's settings besides its title; the zero value is
	// every default.
	settings groupSettings
	members  map[string]*memberState
	// dedup remembers, per sender, the client ids of their recent sends:
	// at most DedupPerSender each, each for at least DedupWindow after it
	// was received. Other senders' traffic never pushes an id out.
	dedup map[string]*senderDedup
	// bySeq indexes the remembered sends by seq: seq -> (sender, client
	// id). It is how an edit or a recall learns who sent a message and
	// when, so both work only while the send is remembered. Kept with
	// dedup wherever an entry is remembered, evicted or forgotten; not
	// persisted, rebuilt from the remembered sends on restore.
	bySeq map[int64]dedupRef
	// notices are the seqs of timeline items that are not messages
	// (MembersAdded, MemberRemoved): nothing can be edited, recalled, pinned,
	// reacted or replied to there.
	notices map[int64]struct{}
	// recalled maps a recalled message's seq to who recalled it.
	recalled map[int64]string
	// reactions: message seq -> emoji -> the users who reacted with it.
	// A message without reactions has no entry.
	reactions map[int64]map[string]map[string]struct{}
	// pins are the pinned messages' seqs. A recall drops its message's pin.
	pins map[int64]struct{}
	// blocked (a user stream): the users its user blocks (BlockUser), at
	// most Limits.MaxBlocksPerUser. nil until the first block.
	blocked map[string]struct{}
	// blockers (a direct conversation): blocker -> blocked, for every block
	// that stands between its two users (DirectBlock). Kept whether or not
	// the conversation exists yet: a state with kind UNSPECIFIED holds the
	// blocks (and a user stream's state) of a stream never created.
	blockers map[string]string
	// invites (a group): invite id -> the link, revoked and expired ones
	// included (at most Limits.MaxInvites open at once). nil until the
	// first link.
	invites map[string]*inviteState
	// requests (a group): user -> its pending join request (at most
	// Limits.MaxJoinRequests). nil until the first request.
	requests map[string]*joinRequest
	// uploads (a conversation): attachment id -> an attachment uploaded and
	// not sent yet (at most Limits.MaxPendingAttachments). nil until the
	// first upload.
	uploads map[string]*upload
	// sent (a group): message seq -> the attachments of a message
	// not recalled whose send is no longer remembered (evicted by
	// DedupPerSender or swept after DedupWindow). While the send is
	// remembered they ride with its dedup entry instead; they move here
	// when it goes (keepSent), so a recall deletes them whatever the dedup
	// memory holds. One entry per such message with attachments, kept
	// until its recall: about 200 bytes with one attachment, 80 more per
	// further one (BenchmarkSentAttachmentBytes). nil until the first.
	sent map[int64]sentMessage
	// push (a user stream): device id -> its push target (at most
	// Limits.MaxPushTargets). nil until the first registration.
	push map[string]*pb.PushTarget
	// ban (a user stream): the user's standing ban (BanUser); nil when
	// none.
	ban *banState
	// webhooks (a user stream): webhook id -> the user's webhook (at most
	// maxWebhooks). nil until the first.
	webhooks map[string]*pb.Webhook
	// revoked (a user stream): device id -> why it was revoked
	// (RevokeDevice). nil until the first.
	revoked map[string]string
	// closed: the conversation is read-only (CloseConversation) until
	// reopened; deleted: it was deleted (DeleteConversation), for good.
	// Both are kept in the header record.
	closed, deleted bool
}

// exists reports whether s is a created conversation: not nil, and not the
// state of a user stream or of the blocks of a direct conversation nobody
// created yet.
func (s *convState) exists() bool {
	return s != nil && s.kind != pb.ConversationKind_CONVERSATION_KIND_UNSPECIFIED
}

// isBlocked reports whether a user stream's user blocked u.
func (s *convState) isBlocked(u string) bool {
	if s == nil {
		return false
	}
	_, ok := s.blocked[u]
	return ok
}

// hasBlocker reports whether blocker's block stands in a direct
// conversation.
func (s *convState) hasBlocker(blocker string) bool {
	if s == nil {
		return false
	}
	_, ok := s.blockers[blocker]
	return ok
}

// orNew returns s, or the empty state of a stream not created (a user
// stream, or a direct conversation's blocks) when s is nil.
func (s *convState) orNew() *convState {
	if s == nil {
		return newConvState(pb.ConversationKind_CONVERSATION_KIND_UNSPECIFIED, "")
	}
	return s
}

type memberState struct {
	role                          pb.MemberRole
	joinedSeq, readSeq, delivered int64
	// mutedUntil is when the member's mute ends (Unix ms): 0 when not
	// muted, mutedForever until an UnmuteMember. A mute that ended stays
	// here, harmless, until the next mute, unmute or removal.
	mutedUntil int64
}

// mutedForever is memberState.mutedUntil (and memberRec.Mute) of a mute
// without an end.
const mutedForever = -1

// muted reports whether the member may not send at receive time at (Unix
// ms): muted forever, or until a time still ahead.
func (m *memberState) muted(at int64) bool {
	return m.mutedUntil == mutedForever || at < m.mutedUntil
}

// privileged: the group's owner or an admin (never a direct conversation's
// members, both MEMBER).
func (m *memberState) privileged() bool {
	return m.role == pb.MemberRole_MEMBER_ROLE_OWNER || m.role == pb.MemberRole_MEMBER_ROLE_ADMIN
}

// groupSettings are what GroupSettings holds besides the title, each at its
// default when zero: no description or avatar, anyone sends, every policy
// GROUP_POLICY_MEMBERS (the admins* fields are true for
// GROUP_POLICY_ADMINS), and the history visible to members added later
// (sinceJoin is true for HISTORY_VISIBILITY_SINCE_JOIN).
type groupSettings struct {
	description, avatarURL                 string
	announcementOnly                       bool
	adminsAdd, adminsMentionAll, adminsPin bool
	sinceJoin                              bool
	joinRequests                           bool
}

// dedupEntry is one remembered send: its seq and when the command was
// received (Unix milliseconds), and what few sends have besides.
type dedupEntry struct {
	seq, at int64
	// x is nil for a text/plain message never edited, most of them: an
	// entry then costs 24 bytes. It is never changed in place (copies of
	// the entry share it): an edit puts a new one (with).
	x *sendExtra
}

// sendExtra is what an edit needs to know of a message beyond its seq and
// receive time.
type sendExtra struct {
	// ct is the message's content type as last sent or edited; "" is
	// text/plain.
	ct string
	// editIDs are the client ids of the message's most recent edits
	// (at most maxEditIDs, newest last): a retry of one is deduplicated.
	editIDs []string
	// edits counts the message's edits (MessageEdited.edit_number of the
	// last one).
	edits int32
	// atts are the attachments the message sent (their deletion follows
	// its recall).
	atts []sentAttachment
	// noTime: restored from a record written before receive times were
	// kept; at is then the restore's time and says nothing about when the
	// message was sent, so its sender may no longer edit or recall it.
	noTime bool
}

// extra returns e's extra fields (their zero values when it has none).
func (e dedupEntry) extra() sendExtra {
	if e.x == nil {
		return sendExtra{}
	}
	return *e.x
}

// with returns e with extra fields x (none when x is zero).
func (e dedupEntry) with(x sendExtra) dedupEntry {
	if x.ct == "" && len(x.editIDs) == 0 && x.edits == 0 && len(x.atts) == 0 && !x.noTime {
		e.x = nil
	} else {
		e.x = &x
	}
	return e
}

// maxEditIDs bounds the edit ids remembered per message: a device retries
// an edit within seconds, long before 16 newer edits of the same message.
const maxEditIDs = 16

// sameSend reports whether two entries are the same remembered send (the
// same message received at the same time); edits do not change that.
func (e dedupEntry) sameSend(o dedupEntry) bool { return e.seq == o.seq && e.at == o.at }

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

// isMessage reports whether seq is a message of the timeline (not a member
// notice, not past its end).
func (s *convState) isMessage(seq int64) bool {
	if seq < 1 || seq > s.lastSeq {
		return false
	}
	_, notice := s.notices[seq]
	return !notice
}

func (s *convState) addNotice(seq int64) {
	if s.notices == nil {
		s.notices = map[int64]struct{}{}
	}
	s.notices[seq] = struct{}{}
}

func (s *convState) isRecalled(seq int64) bool {
	_, ok := s.recalled[seq]
	return ok
}

// recall marks seq recalled by who and drops its reactions and its pin.
func (s *convState) recall(seq int64, who string) {
	if s.recalled == nil {
		s.recalled = map[int64]string{}
	}
	s.recalled[seq] = who
	delete(s.reactions, seq)
	delete(s.pins, seq)
}

func (s *convState) isPinned(seq int64) bool {
	_, ok := s.pins[seq]
	return ok
}

func (s *convState) pin(seq int64) {
	if s.pins == nil {
		s.pins = map[int64]struct{}{}
	}
	s.pins[seq] = struct{}{}
}

// successor is who owns the group when its owner has left: the admin who
// joined first, else the member who joined first, ties by user id; "" when
// nobody is left.
func (s *convState) successor() string {
	var best string
	var bm *memberState
	rank := func(m *memberState) int {
		if m.role == pb.MemberRole_MEMBER_ROLE_ADMIN {
			return 0
		}
		return 1
	}
	for u, m := range s.members {
		if bm == nil || rank(m) < rank(bm) ||
			rank(m) == rank(bm) && (m.joinedSeq < bm.joinedSeq || m.joinedSeq == bm.joinedSeq && u < best) {
			best, bm = u, m
		}
	}
	return best
}

// sender returns the remembered send at seq.
func (s *convState) sender(seq int64) (dedupRef, dedupEntry, bool) {
	ref, ok := s.bySeq[seq]
	if !ok {
		return dedupRef{}, dedupEntry{}, false
	}
	e, ok := s.lookup(ref.user, ref.clientMsgID)
	return ref, e, ok && e.seq == seq
}

// hasReaction reports whether user reacted to seq with emoji.
func (s *convState) hasReaction(seq int64, emoji, user string) bool {
	_, ok := s.reactions[seq][emoji][user]
	return ok
}

// addReaction adds user's emoji to seq.
func (s *convState) addReaction(seq int64, emoji, user string) {
	if s.reactions == nil {
		s.reactions = map[int64]map[string]map[string]struct{}{}
	}
	byEmoji := s.reactions[seq]
	if byEmoji == nil {
		byEmoji = map[string]map[string]struct{}{}
		s.reactions[seq] = byEmoji
	}
	users := byEmoji[emoji]
	if users == nil {
		users = map[string]struct{}{}
		byEmoji[emoji] = users
	}
	users[user] = struct{}{}
}

// removeReaction takes user's emoji off seq, dropping what becomes empty.
func (s *convState) removeReaction(seq int64, emoji, user string) {
	byEmoji := s.reactions[seq]
	users := byEmoji[emoji]
	delete(users, user)
	if len(users) == 0 {
		delete(byEmoji, emoji)
	}
	if len(byEmoji) == 0 {
		delete(s.reactions, seq)
	}
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
// the limit was lowered since the state was written), and the seqs of
// those whose attachments moved to s.sent (keepSent).
func (s *convState) remember(user, clientMsgID string, e dedupEntry, perSender int) (evicted []string, kept []int64) {
	sd := s.dedup[user]
	if sd == nil {
		sd = &senderDedup{ids: map[string]dedupEntry{}}
		s.dedup[user] = sd
	}
	if prev, ok := sd.ids[clientMsgID]; ok {
		s.unindex(prev.seq, user, clientMsgID)
		if prev.seq != e.seq && s.keepSent(user, prev) {
			kept = append(kept, prev.seq)
		}
	}
	sd.ids[clientMsgID] = e
	if s.bySeq == nil {
		s.bySeq = map[int64]dedupRef{}
	}
	s.bySeq[e.seq] = dedupRef{user, clientMsgID}
	sd.order = append(sd.order, orderItem{clientMsgID, e.at})
	for len(sd.ids) > perSender && len(sd.order) > 0 {
		old := sd.order[0]
		sd.order[0] = orderItem{}
		sd.order = sd.order[1:]
		if cur, ok := sd.ids[old.id]; ok && cur.at == old.at {
			delete(sd.ids, old.id)
			s.unindex(cur.seq, user, old.id)
			evicted = append(evicted, old.id)
			if s.keepSent(user, cur) {
				kept = append(kept, cur.seq)
			}
		}
	}
	sd.compact()
	return evicted, kept
}

// sentMessage is what the recall of a message whose send is no longer
// remembered needs to delete its attachments: their owner (the message's
// sender) and their ids and digests.
type sentMessage struct {
	sender string
	atts   []sentAttachment
}

// keepSent moves the attachments of user's send e, which is no longer
// remembered, into s.sent, unless its message was recalled (a record
// written before recalls dropped them may still carry them), and reports
// whether it did: the caller writes the sent record. Only a group keeps
// them: a message whose send is forgotten is recalled by the group's owner
// or an admin only, and a direct conversation has neither.
func (s *convState) keepSent(user string, e dedupEntry) bool {
	if e.x == nil || len(e.x.atts) == 0 || s.isRecalled(e.seq) || s.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP {
		return false
	}
	if s.sent == nil {
		s.sent = map[int64]sentMessage{}
	}
	s.sent[e.seq] = sentMessage{sender: user, atts: e.x.atts}
	return true
}

// forget drops user's send clientMsgID if it is still the one received at
// at, and reports whether it did (the time sweep; an entry evicted or
// replaced since is left alone), and the seq of the message when its
// attachments moved to s.sent (keepSent; 0 otherwise).
func (s *convState) forget(user, clientMsgID string, at int64) (forgotten bool, kept int64) {
	sd := s.dedup[user]
	if sd == nil {
		return false, 0
	}
	cur, ok := sd.ids[clientMsgID]
	if !ok || cur.at != at {
		return false, 0
	}
	delete(sd.ids, clientMsgID)
	s.unindex(cur.seq, user, clientMsgID)
	if s.keepSent(user, cur) {
		kept = cur.seq
	}
	for len(sd.order) > 0 {
		if c, ok := sd.ids[sd.order[0].id]; ok && c.at == sd.order[0].at {
			break
		}
		sd.order[0] = orderItem{}
		sd.order = sd.order[1:]
	}
	if len(sd.ids) == 0 {
		delete(s.dedup, user)
		return true, kept
	}
	sd.compact()
	return true, kept
}

// update replaces the entry of a remembered send in place (an edit): its
// seq and receive time, hence its place in the order and in the expiry
// queue, stay.
func (s *convState) update(user, clientMsgID string, e dedupEntry) {
	if sd := s.dedup[user]; sd != nil {
		if cur, ok := sd.ids[clientMsgID]; ok && cur.sameSend(e) {
			sd.ids[clientMsgID] = e
		}
	}
}

// unindex drops seq from bySeq if it still names user's clientMsgID.
func (s *convState) unindex(seq int64, user, clientMsgID string) {
	if s.bySeq[seq] == (dedupRef{user, clientMsgID}) {
		delete(s.bySeq, seq)
	}
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
	header   bool     // kind, title, lastSeq or lastVersion changed (or the conversation was created)
	settings bool     // the group's settings (besides the title) changed
	members  []string // members whose state changed or who were removed
	// dedup are remembered sends added or evicted; the added ones are
	// queued for the time sweep.
	dedup []dedupRef
	// edited are remembered sends an edit rewrote: their records change,
	// their place in the expiry queue does not.
	edited    []dedupRef
	notices   []int64  // seqs that became member notices
	recalled  []int64  // messages recalled
	reactions []int64  // messages whose reactions changed (or were dropped by a recall)
	pins      []int64  // messages pinned or unpinned (or unpinned by a recall)
	blocked   []string // a user stream: users blocked or unblocked
	blockers  []string // a direct conversation: blockers whose block began or ended
	invites   []string // a group: invitation links created, used or revoked
	requests  []string // a group: users whose join request began or ended
	uploads   []string // attachments uploaded, sent or expired
	sent      []int64  // messages whose attachments moved to convState.sent, or left it by their recall
	push      []string // a user stream: devices whose push target was registered or removed
	ban       bool     // a user stream: the user's ban began, changed or ended
	webhooks  []string // a user stream: webhooks created or deleted
	revoked   []string // a user stream: devices revoked or restored
	// derived are the commands the decision appends to the commands topic
	// (the second step of a two-stream decision), in the same transaction
	// as its events and changelog records. Not changelog state.
	derived []*pb.Command
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
	// owed are the messages whose sent record (convState.sent) the next
	// transaction writes: moved there by the time sweep, or by a restore
	// whose lowered cap dropped their sends (their dedup records, which
	// carried the attachments, are then tombstoned later by the sweep).
	owed []seqRef
}

// seqRef names one message of a conversation.
type seqRef struct {
	conv string
	seq  int64
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
// The attachments of a forgotten send move to its conversation's sent
// attachments, and their record is owed (p.owed) to the same transaction.
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
		} else {
			forgotten, kept := st.forget(it.user, it.clientMsgID, it.at)
			if !forgotten {
				continue
			}
			if kept != 0 {
				p.owed = append(p.owed, seqRef{it.conv, kept})
			}
		}
		gone = append(gone, it)
	}
	if n > 0 {
		clear(p.expiry[:n])
		p.expiry = p.expiry[n:]
	}
	return gone
}
