package replay

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

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
//     privileged member (the group's owner or an admin), and nothing edits
//     or reacts to it after; a ReactionAdded adds a reaction (user, emoji)
//     the message does not have, a ReactionRemoved removes one it has;
//   - a reply (MessageSent.reply_to_seq) names an earlier MessageSent of
//     the conversation, not recalled when the reply was sent;
//   - roles: a group has exactly one owner among its current members after
//     every event while it has members (the creator, then whoever an
//     OwnershipTransferred names); when the owner leaves, the very next
//     event of the conversation is its OwnershipTransferred (OWNER_LEFT) to
//     the admin who joined first, else the member who joined first (ties by
//     user id); only the owner changes roles (of members other than itself,
//     to ADMIN or MEMBER, and only to another role) and transfers ownership
//     (to another current member: it becomes an admin); the owner removes
//     anyone but itself, an admin plain members only, a plain member nobody;
//   - settings: only privileged members change them, a GroupSettingsChanged
//     carries only fields whose value changes (policies MEMBERS or ADMINS,
//     history_visibility ALL or SINCE_JOIN, a title not empty); while
//     announcement_only, only privileged members send; while who_may_add is
//     ADMINS, only they add members (the history visibility is query's: the
//     log says nothing of what members read);
//   - mutes: privileged members mute and unmute, nobody the owner, only the
//     owner an admin; an unmute is of a muted member; a muted member sends
//     nothing while muted (a MessageSent's occurred_at before the mute's
//     until, or any time for a mute without until, until unmuted or
//     removed);
//   - mentions: mention_user_ids are current members other than the sender,
//     without duplicates, and empty with mention_all; mention_all is for
//     groups, and only for privileged members while who_may_mention_all is
//     ADMINS;
//   - pins: a MessagePinned names a MessageSent neither recalled nor pinned,
//     a MessageUnpinned a pinned one (a recall unpins); while who_may_pin is
//     ADMINS only privileged members pin and unpin in a group (the number of
//     pins is not checked: its limit is the decider's setting);
//   - user streams (schemas.IsUserStreamID) hold only per-user events
//     (ConversationPrefsChanged, MessagesHidden, UserBlocked, UserUnblocked,
//     push targets, and bans: logcheck_push.go, logcheck_ban.go)
//     and the answers CommandRejected and MessageDeduplicated, all seq 0;
//     the per-user events take dense versions 1, 2, 3 … (a user stream has
//     no ConversationCreated), are the actor's own stream (the answers are
//     exempt: a command appended to another user's stream is refused there,
//     as that user), and block only users not blocked, unblock only blocked
//     ones; per-user events appear nowhere else;
//   - blocks: a DirectBlockChanged (seq 0, no version) stands in
//     DirectConversationID(blocker, blocked), by its blocker, and changes the
//     blocker's block (also before the conversation is created); while any
//     block stands there, nobody sends a MessageSent in it;
//   - forwards: a MessageForwarded (seq 0, no version) is by a current
//     member and names a MessageSent of its conversation, not recalled, and
//     another conversation as target; every MessageSent with forwarded_from
//     has a MessageForwarded with the same command_id in the origin
//     conversation naming the same seq and the MessageSent's conversation
//     as target, and carries copies of that message's attachments (checked
//     at the end, as the two are in different partitions; skipped when the
//     origin conversation was not read);
//   - joins: an InviteCreated is by a member who may add members, of an
//     invite id the group has not had; an InviteRevoked names a link not
//     revoked, by its creator or a privileged member; a MembersAdded with
//     an invite is the actor joining alone, not a member, by a link that
//     is neither revoked nor for approval, and a JoinRequested (by a
//     non-member, for itself, not pending already) names a link for
//     approval or, without one, a group whose join_requests is on; each
//     use counts the link's uses 1, 2, 3 … never past its max_uses; a
//     JoinRequestDeclined ends a pending request, by a member who may add
//     members, and a MembersAdded ends the requests of the users it adds;
//   - attachments: an AttachmentUploaded (seq 0, no version) records a
//     well-formed attachment owned by its actor, a current member, under
//     an id the conversation has not recorded; a MessageSent carries
//     attachments its sender recorded there before, each as recorded, not
//     sent before and not deleted — earlier uploads, or, for a forward
//     exactly the copies recorded right before it in the same decision —
//     and each is sent once; an AttachmentDeleted (seq 0, no version)
//     deletes a recorded attachment once, naming its digests and owner:
//     EXPIRED only one never sent (by its owner), RECALLED only one whose
//     message is recalled, and the recall of a message deletes every
//     attachment it carries in the same decision, so an attachment not
//     deleted always has a live message or is an upload not sent yet;
//   - closing and deleting: a ConversationClosed closes an open
//     conversation, a ConversationReopened reopens a closed one, each by a
//     service (Event.actor_service) or the group's owner; a
//     ConversationDeleted, by a service only, deletes a conversation once and
//     names its current members; a closed conversation has no event but
//     marks, forwards out of it, the expiry of unsent uploads, answers
//     (CommandRejected, MessageDeduplicated) and its reopening or deletion; a
//     deleted one none but answers and expiries (logcheck_close.go);
//   - no Withheld: it is what the gateway sends a device in place of an
//     event the device may not see, never an event of the log;
//   - every command decided by ingest has exactly one outcome event (a mark
//     that would not move, a recall of a recalled message, a reaction
//     already there or already gone, a role or a setting that would not
//     change, an unmute of a member not muted, a pin already there or an
//     unpin of none have none, nor a redundant block or unblock, an upload
//     sent again or an expiry of an upload sent, gone or too young; the
//     owner's leave has two: its MemberRemoved and the OwnershipTransferred
//     after it; a recall also the AttachmentDeleted of its message's
//     attachments, a forward the AttachmentUploaded of its copies before
//     its MessageSent), a two-stream command (a block, an unblock, a forward) at most one
//     in each of its two streams, its derived command (DirectBlock,
//     ForwardedMessage, with the same command_id) one in the stream it is
//     keyed by; and every event names a command of parley.commands (while
//     the topic still holds it).
//
// It also keeps, per conversation, last_seq and each member's read mark, so
// unread = last_seq − read_seq can be checked against the live views, per
// message its sender, edit count, recall, reactions and mentions, and per
// group its owner, which the live views are checked against too
// (checkActions, checkGovernance).
// Events of a conversation must be given in log order; conversations may
// interleave (it is safe for concurrent use).
type logCheck struct {
	mu       sync.Mutex
	convs    map[string]*convModel
	outcomes map[string][]where // command_id → its events
	commands map[string]command
	// derived are the commands ingest derived (DirectBlock,
	// ForwardedMessage), by command_id: they share it with their first step.
	derived map[string]command
	users   map[string]*userModel      // user streams
	blocks  map[string]map[string]bool // direct conversation → its blockers
	// forwarded holds the MessageForwarded events by command_id, forwards
	// the MessageSent events with forwarded_from, matched in finish.
	forwarded map[string]forward
	forwards  []forwardSent
	problems  []string
	events    int64
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
	// from is, for a derived command, the stream of its first step.
	from string
}

type convModel struct {
	lastSeq int64
	// lastVersion is the newest Event.version; versioned is false for a
	// conversation created before versions existed (its events carry 0).
	lastVersion int64
	versioned   bool
	group       bool
	members     map[string]*memberModel // current and former
	messages    map[int64]*messageModel // every MessageSent, by seq
	// mentioned holds the seqs of the messages that mention someone
	// (@user or @all), ascending.
	mentioned []int64
	settings  groupSettings
	// ownerLeft is the owner's MemberRemoved while members remain: the
	// conversation's next event must be its OwnershipTransferred
	// (OWNER_LEFT).
	ownerLeft *ownerLeft
	// ownerBroken says the group's owners were reported wrong and still
	// are: reported once, not after every event.
	ownerBroken bool
	// invites are the group's invitation links by id, requests its users
	// with a pending join request.
	invites  map[string]*inviteModel
	requests map[string]bool
	// attachments are the attachments recorded in the conversation, by id.
	attachments map[string]*attachmentModel
	// run is the AttachmentUploaded events of one command right before
	// the conversation's next event: the copies of a forward when that is
	// the command's MessageSent, else uploads (outcomes of their own).
	run []*attachmentModel
	// recalling is a recall of a message with attachments, awaiting their
	// AttachmentDeleted (the next events, of the same command).
	recalling *recalling
	// closed: a ConversationClosed not reopened since; deleted: a
	// ConversationDeleted (logcheck_close.go).
	closed, deleted bool
}

// attachmentModel is what the log says about one attachment of a
// conversation.
type attachmentModel struct {
	att     *pb.Attachment
	at      where  // its AttachmentUploaded
	command string // the command that recorded it
	sentSeq int64  // the MessageSent that carries it (0: not sent)
	deleted pb.AttachmentDeletedReason
}

// recalling is a MessageRecalled whose message carries attachments not
// deleted yet.
type recalling struct {
	command string
	seq     int64
	at      where
	left    []string // the attachments its decision has not deleted yet
}

// inviteModel is what the log says about one invitation link.
type inviteModel struct {
	creator          string
	maxUses, uses    int32
	requiresApproval bool
	revoked          bool
}

type memberModel struct {
	read, delivered int64
	joined          int64 // the seq of the MembersAdded that (last) added it; 0 for the initial members
	current         bool
	// role while current: MEMBER_ROLE_OWNER (one per group: its creator,
	// then whoever an OwnershipTransferred names), MEMBER_ROLE_ADMIN or
	// MEMBER_ROLE_MEMBER (a member added, also one added back; both users
	// of a direct conversation).
	role pb.MemberRole
	// muted until mutedUntil (zero: until unmuted); an unmute, a removal
	// and a re-add end it.
	muted      bool
	mutedUntil time.Time
}

// privileged reports whether m is a current member that is the owner or an
// admin.
func (m *memberModel) privileged() bool {
	return m != nil && m.current && (m.role == pb.MemberRole_MEMBER_ROLE_OWNER || m.role == pb.MemberRole_MEMBER_ROLE_ADMIN)
}

// groupSettings are a group's settings by the log: ConversationCreated's
// title and the defaults, then each GroupSettingsChanged.
type groupSettings struct {
	title, description, avatarURL          string
	announcementOnly                       bool
	whoMayAdd, whoMayMentionAll, whoMayPin pb.GroupPolicy
	historyVisibility                      pb.HistoryVisibility
	joinRequests                           bool
}

// ownerLeft is the owner's MemberRemoved, awaiting its OwnershipTransferred.
type ownerLeft struct {
	user, command string
	at            where
}

// messageModel is what the log says about one message.
type messageModel struct {
	sender     string
	edits      int64  // MessageEdited events
	recalledBy string // "": not recalled
	reactions  map[reaction]bool
	mentions   []string // mention_user_ids
	mentionAll bool
	pinned     bool
	// attachments are the ids of the attachments it carries.
	attachments []string
}

// userModel is what the log says about one user stream.
type userModel struct {
	lastVersion int64
	blocked     map[string]bool
	push        pushModel         // logcheck_push.go
	ban         *pb.UserBanned    // the standing ban; nil when none (logcheck_ban.go)
	revoked     map[string]string // revoked device -> reason (logcheck_ban.go)
	webhooks    map[string]bool   // the webhook ids held (logcheck_ban.go)
}

// forward is a MessageForwarded: its source conversation, seq and target.
type forward struct {
	conv, target string
	seq          int64
}

// forwardSent is a MessageSent with forwarded_from.
type forwardSent struct {
	at          where
	command     string
	origin      *pb.ForwardOrigin
	attachments []*pb.Attachment
}

// reaction is one user's emoji on a message.
type reaction struct{ emoji, user string }

func newLogCheck() *logCheck {
	return &logCheck{convs: map[string]*convModel{}, outcomes: map[string][]where{}, commands: map[string]command{},
		derived: map[string]command{}, users: map[string]*userModel{}, blocks: map[string]map[string]bool{},
		forwarded: map[string]forward{}}
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
	conv := c.convs[id]
	var left *ownerLeft           // the owner's MemberRemoved right before, awaiting this event
	var copies []*attachmentModel // a forward's copies, recorded right before its MessageSent
	if conv != nil {
		left, conv.ownerLeft = conv.ownerLeft, nil
		copies = c.settleAttachments(conv, typ, ev.GetCommandId())
	}
	// The owner's leave is decided into two events: the OwnershipTransferred
	// after its MemberRemoved belongs to the same outcome; so do the
	// AttachmentDeleted after a recall. An AttachmentUploaded is counted
	// once it is known not to be a forward's copy (settleAttachments).
	paired := left != nil && typ == schemas.TypeOwnershipTransferred && ev.GetCommandId() == left.command ||
		typ == schemas.TypeAttachmentDeleted && conv != nil && conv.recalling != nil && conv.recalling.command == ev.GetCommandId()
	deferred := typ == schemas.TypeAttachmentUploaded && conv != nil
	if ev.GetCommandId() == "" {
		c.problem("%s has no command_id", at)
	} else if !paired && !deferred {
		c.outcomes[ev.GetCommandId()] = append(c.outcomes[ev.GetCommandId()], at)
	}
	if typ == schemas.TypeWithheld {
		c.problem("%s: a Withheld is the gateway's stand-in for an event a device may not see, never an event of the log", at)
		return
	}
	if typ == schemas.TypeServiceReadRecorded {
		// An audit record, on any stream: it changes nothing.
		if ev.GetVersion() != 0 || ev.GetSeq() != 0 || ev.GetActorService() == "" {
			c.problem("%s: version %d, seq %d, service %q; want 0, 0 and the service that read", at, ev.GetVersion(), ev.GetSeq(), ev.GetActorService())
		}
		return
	}
	if schemas.IsUserStreamID(id) {
		c.userEvent(at, ev)
		return
	}
	if typ == schemas.TypeDirectBlockChanged {
		c.directBlock(at, conv, ev)
		return
	}
	if typ == schemas.TypeConversationCreated {
		if conv != nil {
			c.problem("%s: the conversation was created before", at)
			return
		}
		cc := ev.GetConversationCreated()
		conv = &convModel{members: map[string]*memberModel{}, messages: map[int64]*messageModel{},
			lastVersion: ev.GetVersion(), versioned: ev.GetVersion() != 0, group: cc.GetKind() == pb.ConversationKind_CONVERSATION_KIND_GROUP,
			settings: groupSettings{title: cc.GetTitle(), whoMayAdd: pb.GroupPolicy_GROUP_POLICY_MEMBERS,
				whoMayMentionAll: pb.GroupPolicy_GROUP_POLICY_MEMBERS, whoMayPin: pb.GroupPolicy_GROUP_POLICY_MEMBERS,
				historyVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_ALL}}
		c.convs[id] = conv
		if conv.versioned && ev.GetVersion() != 1 {
			c.problem("%s: version %d, want 1 (the first event of a conversation)", at, ev.GetVersion())
		}
		for _, u := range cc.GetMemberUserIds() {
			conv.members[u] = &memberModel{current: true, role: pb.MemberRole_MEMBER_ROLE_MEMBER}
		}
		if m := conv.members[ev.GetActorUserId()]; m != nil && conv.group {
			m.role = pb.MemberRole_MEMBER_ROLE_OWNER
		}
		if ev.GetSeq() != 0 {
			c.problem("%s: seq %d, want 0", at, ev.GetSeq())
		}
		c.checkOwner(at, conv)
		return
	}
	if conv == nil {
		if typ != schemas.TypeCommandRejected { // refusals of commands on unknown conversations are fine
			c.problem("%s comes before the conversation's ConversationCreated", at)
		}
		return
	}
	if left != nil && ev.GetOwnershipTransferred().GetReason() != pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_OWNER_LEFT {
		c.problem("%s: the owner %s left (%s) and members remain, but this is not its OwnershipTransferred (OWNER_LEFT)", at, left.user, left.at)
		conv.ownerBroken = true // the group is left without an owner: said once, here
	}
	switch v := ev.GetVersion(); {
	case typ == schemas.TypeCommandRejected || typ == schemas.TypeMessageDeduplicated:
		if v != 0 {
			c.problem("%s: version %d, want 0 (an answer to the sender only)", at, v)
		}
	case typ == schemas.TypeMessageForwarded:
		if v != 0 {
			c.problem("%s: version %d, want 0 (neither projected nor delivered)", at, v)
		}
	case typ == schemas.TypeAttachmentUploaded || typ == schemas.TypeAttachmentDeleted:
		if v != 0 {
			c.problem("%s: version %d, want 0 (an attachment's record is no change members resume from)", at, v)
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
	c.lifecycle(at, conv, ev)
	switch typ {
	case schemas.TypeMessageSent:
		m := c.current(at, conv, actor)
		if m != nil {
			m.read, m.delivered = max(m.read, ev.GetSeq()), max(m.delivered, ev.GetSeq())
		}
		c.sent(at, conv, ev, m)
		if ids := c.sentAttachments(at, conv, ev, copies); len(ids) > 0 {
			if msg := conv.messages[ev.GetSeq()]; msg != nil && msg.attachments == nil {
				msg.attachments = ids
			}
		}
		if bs := c.blocks[id]; len(bs) > 0 {
			c.problem("%s: %s sends while %v block(s) stand in the direct conversation", at, actor, slices.Sorted(maps.Keys(bs)))
		}
		if o := ev.GetMessageSent().GetForwardedFrom(); o != nil {
			c.forwards = append(c.forwards, forwardSent{at: at, command: ev.GetCommandId(), origin: o,
				attachments: ev.GetMessageSent().GetAttachments()})
		}
	case schemas.TypeMessageForwarded:
		c.forwardedEvent(at, conv, ev)
	case schemas.TypeAttachmentUploaded:
		c.attachmentUploaded(at, conv, ev)
	case schemas.TypeAttachmentDeleted:
		c.attachmentDeleted(at, conv, ev)
	case schemas.TypeConversationPrefsChanged, schemas.TypeMessagesHidden, schemas.TypeUserBlocked, schemas.TypeUserUnblocked,
		schemas.TypePushTargetRegistered, schemas.TypePushTargetUnregistered, schemas.TypeUserBanned, schemas.TypeUserUnbanned,
		schemas.TypeDeviceRevoked, schemas.TypeDeviceRestored,
		schemas.TypeWebhookCreated, schemas.TypeWebhookDeleted:
		c.problem("%s: a per-user event outside a user stream", at)
	case schemas.TypeMembersAdded:
		if ma := ev.GetMembersAdded(); ma.GetInvite() != nil {
			c.joinedByLink(at, conv, ev)
		} else if conv.settings.whoMayAdd == pb.GroupPolicy_GROUP_POLICY_ADMINS && !conv.members[actor].privileged() {
			c.problem("%s: %s adds members while who_may_add is ADMINS, but is neither the owner nor an admin", at, actor)
		}
		for _, u := range ev.GetMembersAdded().GetUserIds() {
			delete(conv.requests, u) // an addition ends a request
			if m := conv.members[u]; m != nil && m.current {
				c.problem("%s: %s is a member already", at, u)
			}
			conv.members[u] = &memberModel{read: ev.GetSeq(), delivered: ev.GetSeq(), joined: ev.GetSeq(), current: true,
				role: pb.MemberRole_MEMBER_ROLE_MEMBER}
		}
		c.checkOwner(at, conv)
	case schemas.TypeMemberRemoved:
		c.removed(at, conv, ev)
		c.checkOwner(at, conv)
	case schemas.TypeReadUpTo:
		up := ev.GetReadUpTo().GetUpToSeq()
		if m := c.current(at, conv, actor); m != nil {
			if up <= m.read || up > conv.lastSeq {
				c.problem("%s: read mark of %s moves from %d to %d (last seq %d): marks only move forward, up to the last seq",
					at, actor, m.read, up, conv.lastSeq)
			}
			m.read, m.delivered = max(m.read, up), max(m.delivered, up)
		}
	case schemas.TypeDeliveredUpTo:
		up := ev.GetDeliveredUpTo().GetUpToSeq()
		if m := c.current(at, conv, actor); m != nil {
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
		c.action(at, conv, ev, c.current(at, conv, actor))
	case schemas.TypeMemberRoleChanged:
		c.roleChanged(at, conv, ev)
		c.checkOwner(at, conv)
	case schemas.TypeOwnershipTransferred:
		c.transferred(at, conv, ev, left)
		c.checkOwner(at, conv)
	case schemas.TypeGroupSettingsChanged:
		c.settingsChanged(at, conv, ev)
	case schemas.TypeMemberMuted, schemas.TypeMemberUnmuted:
		c.mute(at, conv, ev)
	case schemas.TypeMessagePinned, schemas.TypeMessageUnpinned:
		c.pin(at, conv, ev, c.current(at, conv, actor))
	case schemas.TypeInviteCreated, schemas.TypeInviteRevoked, schemas.TypeJoinRequested, schemas.TypeJoinRequestDeclined:
		c.join(at, conv, ev)
	}
}

// mayAdd reports whether u is a current member allowed to add members.
func (conv *convModel) mayAdd(u string) bool {
	m := conv.members[u]
	return m != nil && m.current && (conv.settings.whoMayAdd != pb.GroupPolicy_GROUP_POLICY_ADMINS || m.privileged())
}

// use checks one use of an invitation link: it exists, is not revoked, is
// for approval or not as want says, and this use is the next one within
// its max_uses.
func (c *logCheck) use(at where, conv *convModel, u *pb.InviteUse, approval bool) {
	inv := conv.invites[u.GetInviteId()]
	switch {
	case inv == nil:
		c.problem("%s: link %s is not the group's", at, u.GetInviteId())
		return
	case inv.revoked:
		c.problem("%s: link %s is revoked", at, u.GetInviteId())
	case inv.requiresApproval != approval:
		c.problem("%s: link %s requires_approval %v", at, u.GetInviteId(), inv.requiresApproval)
	case u.GetUses() != inv.uses+1:
		c.problem("%s: use %d of link %s after use %d (uses count 1, 2, 3 …)", at, u.GetUses(), u.GetInviteId(), inv.uses)
	case inv.maxUses > 0 && u.GetUses() > inv.maxUses:
		c.problem("%s: use %d of link %s past its max_uses %d", at, u.GetUses(), u.GetInviteId(), inv.maxUses)
	}
	inv.uses = max(inv.uses, u.GetUses())
}

// joinedByLink checks a MembersAdded with an invite: the actor joining by
// itself.
func (c *logCheck) joinedByLink(at where, conv *convModel, ev *pb.Event) {
	actor, ma := ev.GetActorUserId(), ev.GetMembersAdded()
	if !slices.Equal(ma.GetUserIds(), []string{actor}) {
		c.problem("%s: a join by link adds %v, want the actor %s alone", at, ma.GetUserIds(), actor)
	}
	if !conv.group {
		c.problem("%s: a join by link to a direct conversation", at)
	}
	c.use(at, conv, ma.GetInvite(), false)
}

// join checks the events of links and requests.
func (c *logCheck) join(at where, conv *convModel, ev *pb.Event) {
	actor := ev.GetActorUserId()
	if !conv.group {
		c.problem("%s: in a direct conversation (groups only)", at)
		return
	}
	if conv.invites == nil {
		conv.invites, conv.requests = map[string]*inviteModel{}, map[string]bool{}
	}
	switch b := ev.GetBody().(type) {
	case *pb.Event_InviteCreated:
		id := b.InviteCreated.GetInviteId()
		if !conv.mayAdd(actor) {
			c.problem("%s: %s creates a link but may not add members", at, actor)
		}
		if schemas.CheckInviteID("invite_id", id) != nil {
			c.problem("%s: invite id %q is not 16 hex digits", at, id)
		}
		if conv.invites[id] != nil {
			c.problem("%s: link %s exists already", at, id)
			return
		}
		conv.invites[id] = &inviteModel{creator: actor, maxUses: b.InviteCreated.GetMaxUses(), requiresApproval: b.InviteCreated.GetRequiresApproval()}
	case *pb.Event_InviteRevoked:
		id := b.InviteRevoked.GetInviteId()
		inv := conv.invites[id]
		switch {
		case inv == nil:
			c.problem("%s: link %s is not the group's", at, id)
			return
		case inv.revoked:
			c.problem("%s: link %s is revoked already", at, id)
		case actor != inv.creator && !conv.members[actor].privileged():
			c.problem("%s: %s revokes link %s, neither its creator nor privileged", at, actor, id)
		}
		inv.revoked = true
	case *pb.Event_JoinRequested:
		jr := b.JoinRequested
		switch m := conv.members[actor]; {
		case jr.GetUserId() != actor:
			c.problem("%s: %s asks for %s (a request is for oneself)", at, actor, jr.GetUserId())
		case m != nil && m.current:
			c.problem("%s: %s asks to join but is a member", at, actor)
		case conv.requests[actor]:
			c.problem("%s: %s asks again while its request is pending", at, actor)
		}
		if jr.GetInvite() != nil {
			c.use(at, conv, jr.GetInvite(), true)
		} else if !conv.settings.joinRequests {
			c.problem("%s: a request without a link while join_requests is off", at)
		}
		conv.requests[actor] = true
	case *pb.Event_JoinRequestDeclined:
		u := b.JoinRequestDeclined.GetUserId()
		if !conv.mayAdd(actor) {
			c.problem("%s: %s declines a request but may not add members", at, actor)
		}
		if !conv.requests[u] {
			c.problem("%s: %s has no pending request", at, u)
		}
		delete(conv.requests, u)
	}
}

// userEvent checks an event of a user stream.
func (c *logCheck) userEvent(at where, ev *pb.Event) {
	u := c.users[at.conv]
	if u == nil {
		u = &userModel{blocked: map[string]bool{}}
		c.users[at.conv] = u
	}
	if ev.GetSeq() != 0 {
		c.problem("%s: seq %d, want 0 (a user stream has no timeline)", at, ev.GetSeq())
	}
	v := ev.GetVersion()
	switch at.typ {
	case schemas.TypeCommandRejected, schemas.TypeMessageDeduplicated:
		if v != 0 {
			c.problem("%s: version %d, want 0 (an answer to the sender only)", at, v)
		}
		return // answered as the stream's user, whoever asked
	case schemas.TypeConversationPrefsChanged, schemas.TypeMessagesHidden, schemas.TypeUserBlocked, schemas.TypeUserUnblocked,
		schemas.TypePushTargetRegistered, schemas.TypePushTargetUnregistered, schemas.TypeUserBanned, schemas.TypeUserUnbanned,
		schemas.TypeDeviceRevoked, schemas.TypeDeviceRestored,
		schemas.TypeWebhookCreated, schemas.TypeWebhookDeleted:
	default:
		c.problem("%s: not an event of a user stream (only per-user events and answers)", at)
		return
	}
	if actor := ev.GetActorUserId(); schemas.UserStreamID(actor) != at.conv {
		c.problem("%s: actor %s does not own the user stream (its stream is %s)", at, actor, schemas.UserStreamID(actor))
	}
	if v != u.lastVersion+1 {
		c.problem("%s: version %d after version %d (versions must be dense)", at, v, u.lastVersion)
	}
	u.lastVersion = max(u.lastVersion, v)
	switch b := ev.GetBody().(type) {
	case *pb.Event_UserBlocked:
		if b.UserBlocked.GetUserId() == ev.GetActorUserId() {
			c.problem("%s: %s blocks itself", at, ev.GetActorUserId())
		}
		if u.blocked[b.UserBlocked.GetUserId()] {
			c.problem("%s: %s is blocked already (a block only when new)", at, b.UserBlocked.GetUserId())
		}
		u.blocked[b.UserBlocked.GetUserId()] = true
	case *pb.Event_UserUnblocked:
		if !u.blocked[b.UserUnblocked.GetUserId()] {
			c.problem("%s: %s is not blocked (an unblock only of a blocked user)", at, b.UserUnblocked.GetUserId())
		}
		delete(u.blocked, b.UserUnblocked.GetUserId())
	case *pb.Event_PushTargetRegistered, *pb.Event_PushTargetUnregistered:
		c.pushEvent(at, u, ev) // logcheck_push.go
	case *pb.Event_UserBanned, *pb.Event_UserUnbanned:
		c.banEvent(at, u, ev) // logcheck_ban.go
	case *pb.Event_DeviceRevoked, *pb.Event_DeviceRestored:
		c.revocationEvent(at, u, ev) // logcheck_ban.go
	case *pb.Event_WebhookCreated, *pb.Event_WebhookDeleted:
		c.webhookEvent(at, u, ev) // logcheck_ban.go
	}
}

// directBlock checks a DirectBlockChanged (conv nil: the direct
// conversation is not created yet, which a block does not need).
func (c *logCheck) directBlock(at where, conv *convModel, ev *pb.Event) {
	b := ev.GetDirectBlockChanged()
	blocker, blocked := b.GetBlockerUserId(), b.GetBlockedUserId()
	if v := ev.GetVersion(); v != 0 {
		c.problem("%s: version %d, want 0 (neither projected nor delivered)", at, v)
	}
	if ev.GetSeq() != 0 {
		c.problem("%s: seq %d, want 0 (not a timeline event)", at, ev.GetSeq())
	}
	if blocker == blocked || at.conv != schemas.DirectConversationID(blocker, blocked) {
		c.problem("%s: a block of %s by %s stands in their direct conversation %s only", at, blocked, blocker,
			schemas.DirectConversationID(blocker, blocked))
		return
	}
	if conv != nil && conv.group {
		c.problem("%s: a block in a group", at)
	}
	if ev.GetActorUserId() != blocker {
		c.problem("%s: actor %s, but the blocker is %s", at, ev.GetActorUserId(), blocker)
	}
	bs := c.blocks[at.conv]
	if bs == nil {
		bs = map[string]bool{}
		c.blocks[at.conv] = bs
	}
	if bs[blocker] == b.GetBlocked() {
		c.problem("%s: the block by %s is %v already (a change only when it changes)", at, blocker, b.GetBlocked())
	}
	if b.GetBlocked() {
		bs[blocker] = true
	} else {
		delete(bs, blocker)
	}
}

// forwardedEvent checks a MessageForwarded: by a current member, of a
// MessageSent of conv not recalled, to another conversation.
func (c *logCheck) forwardedEvent(at where, conv *convModel, ev *pb.Event) {
	f := ev.GetMessageForwarded()
	c.current(at, conv, ev.GetActorUserId())
	switch msg := conv.messages[f.GetSeq()]; {
	case msg == nil:
		c.problem("%s: seq %d is not a MessageSent of the conversation", at, f.GetSeq())
	case msg.recalledBy != "":
		c.problem("%s: message %d was recalled by %s before: nothing forwards it after", at, f.GetSeq(), msg.recalledBy)
	}
	if t := f.GetTargetConversationId(); t == at.conv || schemas.CheckConversationID("target_conversation_id", t) != nil {
		c.problem("%s: target %q is not another conversation", at, t)
	}
	if _, ok := c.forwarded[ev.GetCommandId()]; !ok {
		c.forwarded[ev.GetCommandId()] = forward{conv: at.conv, target: f.GetTargetConversationId(), seq: f.GetSeq()}
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
		if actor != msg.sender && !member.privileged() {
			c.problem("%s: %s recalls message %d of %s: only its sender, the owner or an admin recalls", at, actor, seq, msg.sender)
		}
		if s := b.MessageRecalled.GetSenderUserId(); s != "" && s != msg.sender { // "": the decider no longer remembered the sender
			c.problem("%s: sender_user_id %s, but message %d was sent by %s", at, s, seq, msg.sender)
		}
		msg.recalledBy, msg.reactions, msg.pinned = actor, nil, false // a recall unpins
		var live []string
		for _, id := range msg.attachments {
			if a := conv.attachments[id]; a != nil && a.deleted == pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_UNSPECIFIED {
				live = append(live, id)
			}
		}
		if len(live) > 0 {
			conv.recalling = &recalling{command: ev.GetCommandId(), seq: seq, at: at, left: live}
		}
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

// settleAttachments settles, before an event of conv of type typ and
// command (none at the end of the log), what the events before it left
// open: a recall awaiting the deletion of its message's attachments, and
// the run of AttachmentUploaded of one command — the copies of a forward
// when this event is the command's MessageSent (returned), else uploads,
// each its command's outcome.
func (c *logCheck) settleAttachments(conv *convModel, typ, command string) []*attachmentModel {
	if r := conv.recalling; r != nil && (typ != schemas.TypeAttachmentDeleted || command != r.command) {
		if len(r.left) > 0 {
			c.problem("%s: message %d is recalled, but its attachment(s) %v are not deleted with it (served without a live message)",
				r.at, r.seq, r.left)
		}
		conv.recalling = nil
	}
	run := conv.run
	switch {
	case len(run) == 0:
		return nil
	case typ == schemas.TypeAttachmentUploaded && command == run[0].command:
		return nil // the run goes on
	}
	conv.run = nil
	if typ == schemas.TypeMessageSent && command == run[0].command {
		return run
	}
	for _, a := range run {
		if a.command != "" {
			c.outcomes[a.command] = append(c.outcomes[a.command], a.at)
		}
	}
	return nil
}

// attachmentUploaded checks an AttachmentUploaded: a well-formed
// attachment, owned by its actor, a current member, under an id the
// conversation has not recorded.
func (c *logCheck) attachmentUploaded(at where, conv *convModel, ev *pb.Event) {
	a, actor := ev.GetAttachmentUploaded().GetAttachment(), ev.GetActorUserId()
	rec := &attachmentModel{att: a, at: at, command: ev.GetCommandId()}
	conv.run = append(conv.run, rec)
	if err := schemas.CheckAttachment(a); err != nil {
		c.problem("%s: not a well-formed attachment: %v", at, err)
		return
	}
	id := a.GetAttachmentId()
	if a.GetOwnerUserId() != actor {
		c.problem("%s: attachment %s is owned by %s but recorded by %s (an attachment is its uploader's)", at, id, a.GetOwnerUserId(), actor)
	}
	c.current(at, conv, actor)
	if prev := conv.attachments[id]; prev != nil {
		c.problem("%s: attachment id %s is recorded in the conversation already (%s)", at, id, prev.at)
		return
	}
	if conv.attachments == nil {
		conv.attachments = map[string]*attachmentModel{}
	}
	conv.attachments[id] = rec
}

// sentAttachments checks the attachments of a MessageSent and returns
// their ids: recorded in the conversation by its sender, as recorded, not
// sent or deleted before; a forward's are exactly copies, the
// AttachmentUploaded of its own decision right before it.
func (c *logCheck) sentAttachments(at where, conv *convModel, ev *pb.Event, copies []*attachmentModel) []string {
	ms, actor := ev.GetMessageSent(), ev.GetActorUserId()
	forward := ms.GetForwardedFrom() != nil
	if len(copies) > 0 && !forward {
		c.problem("%s: %d attachment(s) recorded by its command right before it, but it is not a forward (only a forward records copies)",
			at, len(copies))
	}
	var ids []string
	for _, a := range ms.GetAttachments() {
		id := a.GetAttachmentId()
		if slices.Contains(ids, id) {
			c.problem("%s: carries attachment %s twice", at, id)
			continue
		}
		ids = append(ids, id)
		rec := conv.attachments[id]
		switch {
		case rec == nil:
			c.problem("%s: attachment %s was not recorded in the conversation before (no AttachmentUploaded)", at, id)
			continue
		case forward && !slices.Contains(copies, rec):
			c.problem("%s: a forward carries attachment %s, which is not a copy recorded with it (%s)", at, id, rec.at)
		case rec.att.GetOwnerUserId() != actor:
			c.problem("%s: attachment %s is %s's: only its owner sends it", at, id, rec.att.GetOwnerUserId())
		case rec.sentSeq != 0:
			c.problem("%s: attachment %s was sent before, in message %d (an attachment is sent once)", at, id, rec.sentSeq)
		case rec.deleted != pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_UNSPECIFIED:
			c.problem("%s: attachment %s was deleted before (%s)", at, id, deletedName(rec.deleted))
		case !proto.Equal(rec.att, a):
			c.problem("%s: attachment %s is not as its AttachmentUploaded recorded it (%s)", at, id, rec.at)
		}
		if rec.sentSeq == 0 {
			rec.sentSeq = ev.GetSeq()
		}
	}
	for _, r := range copies {
		if id := r.att.GetAttachmentId(); !slices.Contains(ids, id) {
			c.problem("%s: attachment %s, recorded with this forward (%s), is not in its MessageSent", at, id, r.at)
		}
	}
	return ids
}

// attachmentDeleted checks an AttachmentDeleted: of a recorded attachment
// not deleted yet, naming its digests and owner; EXPIRED only of one never
// sent, by its owner; RECALLED only of one whose message is recalled.
func (c *logCheck) attachmentDeleted(at where, conv *convModel, ev *pb.Event) {
	d := ev.GetAttachmentDeleted()
	id := d.GetAttachmentId()
	if r := conv.recalling; r != nil && r.command == ev.GetCommandId() {
		r.left = slices.DeleteFunc(r.left, func(s string) bool { return s == id })
	}
	rec := conv.attachments[id]
	switch {
	case rec == nil:
		c.problem("%s: attachment %s is not recorded in the conversation (no AttachmentUploaded before)", at, id)
		return
	case rec.deleted != pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_UNSPECIFIED:
		c.problem("%s: attachment %s was deleted before (%s): an attachment is deleted once", at, id, deletedName(rec.deleted))
		return
	}
	a := rec.att
	if d.GetSha256() != a.GetSha256() || d.GetThumbnailSha256() != a.GetThumbnail().GetSha256() || d.GetOwnerUserId() != a.GetOwnerUserId() {
		c.problem("%s: sha256 %s, thumbnail_sha256 %q, owner %s, but attachment %s was recorded with %s, %q, %s", at,
			d.GetSha256(), d.GetThumbnailSha256(), d.GetOwnerUserId(), id, a.GetSha256(), a.GetThumbnail().GetSha256(), a.GetOwnerUserId())
	}
	switch d.GetReason() {
	case pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_EXPIRED:
		switch {
		case rec.sentSeq != 0:
			c.problem("%s: attachment %s expires, but it was sent in message %d: only an upload never sent expires", at, id, rec.sentSeq)
		case ev.GetActorUserId() != a.GetOwnerUserId():
			c.problem("%s: attachment %s expires as %s's, but its owner is %s", at, id, ev.GetActorUserId(), a.GetOwnerUserId())
		case !proto.Equal(d.GetUploadedAt(), a.GetUploadedAt()):
			c.problem("%s: uploaded_at %v, but attachment %s was uploaded at %v", at, d.GetUploadedAt().AsTime(), id, a.GetUploadedAt().AsTime())
		}
	case pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_RECALLED:
		msg := conv.messages[rec.sentSeq]
		switch {
		case rec.sentSeq == 0:
			c.problem("%s: attachment %s deleted as recalled, but it was never sent", at, id)
		case d.GetRecalledSeq() != rec.sentSeq:
			c.problem("%s: recalled_seq %d, but attachment %s was sent in message %d", at, d.GetRecalledSeq(), id, rec.sentSeq)
		case msg == nil || msg.recalledBy == "":
			c.problem("%s: attachment %s deleted as recalled, but its message %d is not recalled (an attachment of a live message stays)",
				at, id, rec.sentSeq)
		}
	default:
		c.problem("%s: reason %v, want EXPIRED or RECALLED", at, d.GetReason())
	}
	rec.deleted = d.GetReason()
}

// deletedName is how the views name a deletion's reason ("expired",
// "recalled").
func deletedName(r pb.AttachmentDeletedReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ATTACHMENT_DELETED_REASON_"))
}

// current returns the member u of conv, reporting a problem (and
// returning nil) when it is not a current one.
func (c *logCheck) current(at where, conv *convModel, u string) *memberModel {
	m := conv.members[u]
	if m == nil || !m.current {
		c.problem("%s: %s is not a member", at, u)
		return nil
	}
	return m
}

// sent checks a MessageSent beyond its seq: whether its sender (member, nil
// when not a current one) may send, its reply and its mentions.
func (c *logCheck) sent(at where, conv *convModel, ev *pb.Event, member *memberModel) {
	actor, ms, seq := ev.GetActorUserId(), ev.GetMessageSent(), ev.GetSeq()
	if member != nil {
		switch {
		case conv.settings.announcementOnly && !member.privileged():
			c.problem("%s: %s sends in an announcement-only group but is neither the owner nor an admin", at, actor)
		case member.muted && member.mutedUntil.IsZero():
			c.problem("%s: %s sends while muted (until unmuted)", at, actor)
		case member.muted && ev.GetOccurredAt() != nil && ev.GetOccurredAt().AsTime().Before(member.mutedUntil):
			// The decider compares the command's receive time, which is at
			// most the event's occurred_at, with until.
			c.problem("%s: %s sends at %s while muted until %s", at, actor,
				ev.GetOccurredAt().AsTime().UTC().Format(time.RFC3339Nano), member.mutedUntil.UTC().Format(time.RFC3339Nano))
		}
	}
	if r := ms.GetReplyToSeq(); r != 0 {
		switch to := conv.messages[r]; {
		case to == nil || r >= seq:
			c.problem("%s: reply_to_seq %d is not an earlier MessageSent of the conversation", at, r)
		case to.recalledBy != "":
			c.problem("%s: reply to message %d, recalled before by %s", at, r, to.recalledBy)
		}
	}
	seen := map[string]bool{}
	for _, u := range ms.GetMentionUserIds() {
		switch m := conv.members[u]; {
		case seen[u]:
			c.problem("%s: mentions %s twice (mention_user_ids are deduplicated)", at, u)
		case u == actor:
			c.problem("%s: %s mentions itself (a sender's own mention is dropped)", at, u)
		case m == nil || !m.current:
			c.problem("%s: mentions %s, who is not a member", at, u)
		}
		seen[u] = true
	}
	if ms.GetMentionAll() {
		if len(ms.GetMentionUserIds()) > 0 {
			c.problem("%s: mention_all with mention_user_ids %v (with @all nobody is named)", at, ms.GetMentionUserIds())
		}
		if !conv.group {
			c.problem("%s: mention_all in a direct conversation (groups only)", at)
		} else if conv.settings.whoMayMentionAll == pb.GroupPolicy_GROUP_POLICY_ADMINS && member != nil && !member.privileged() {
			c.problem("%s: %s mentions @all while who_may_mention_all is ADMINS, but is neither the owner nor an admin", at, actor)
		}
	}
	if conv.messages[seq] == nil {
		conv.messages[seq] = &messageModel{sender: actor, mentions: slices.Clone(ms.GetMentionUserIds()), mentionAll: ms.GetMentionAll()}
		if (ms.GetMentionAll() || len(ms.GetMentionUserIds()) > 0) && (len(conv.mentioned) == 0 || conv.mentioned[len(conv.mentioned)-1] < seq) {
			conv.mentioned = append(conv.mentioned, seq)
		}
	}
}

// removed checks a MemberRemoved: who may remove whom; the owner's leave
// awaits its OwnershipTransferred when members remain.
func (c *logCheck) removed(at where, conv *convModel, ev *pb.Event) {
	actor, u := ev.GetActorUserId(), ev.GetMemberRemoved().GetUserId()
	m := c.current(at, conv, u)
	if m == nil {
		return
	}
	if u != actor {
		switch a := conv.members[actor]; {
		case a == nil || !a.current:
			c.problem("%s: %s removes %s but is not a member", at, actor, u)
		case m.role == pb.MemberRole_MEMBER_ROLE_OWNER:
			c.problem("%s: %s removes the owner %s: nobody removes the owner (it leaves)", at, actor, u)
		case a.role == pb.MemberRole_MEMBER_ROLE_OWNER:
		case a.role == pb.MemberRole_MEMBER_ROLE_ADMIN && m.role == pb.MemberRole_MEMBER_ROLE_MEMBER:
		case a.role == pb.MemberRole_MEMBER_ROLE_ADMIN:
			c.problem("%s: the admin %s removes the admin %s: an admin removes plain members only", at, actor, u)
		default:
			c.problem("%s: %s removes %s but is a plain member: only the owner and admins remove members", at, actor, u)
		}
	}
	owner := m.role == pb.MemberRole_MEMBER_ROLE_OWNER
	m.current, m.role, m.muted, m.mutedUntil = false, pb.MemberRole_MEMBER_ROLE_UNSPECIFIED, false, time.Time{}
	if owner && conv.size() > 0 {
		conv.ownerLeft = &ownerLeft{user: u, command: ev.GetCommandId(), at: at}
	}
}

// roleChanged checks a MemberRoleChanged: by the owner, of another current
// member, to ADMIN or MEMBER, and a change.
func (c *logCheck) roleChanged(at where, conv *convModel, ev *pb.Event) {
	actor, rc := ev.GetActorUserId(), ev.GetMemberRoleChanged()
	a := c.current(at, conv, actor)
	if a == nil {
		return
	}
	if a.role != pb.MemberRole_MEMBER_ROLE_OWNER {
		c.problem("%s: %s sets the role of %s but is not the owner: only the owner sets roles", at, actor, rc.GetUserId())
		return
	}
	m := c.current(at, conv, rc.GetUserId())
	if m == nil {
		return
	}
	switch r := rc.GetRole(); {
	case m.role == pb.MemberRole_MEMBER_ROLE_OWNER:
		c.problem("%s: the role of the owner %s changes: the owner's role changes only by a transfer", at, rc.GetUserId())
	case r != pb.MemberRole_MEMBER_ROLE_ADMIN && r != pb.MemberRole_MEMBER_ROLE_MEMBER:
		c.problem("%s: role %v, want ADMIN or MEMBER", at, r)
	case r == m.role:
		c.problem("%s: %s is %s already (a role change only when it changes)", at, rc.GetUserId(), roleName(r))
	default:
		m.role = r
	}
}

// transferred checks an OwnershipTransferred: a transfer by the owner to
// another current member, or, right after the owner's MemberRemoved (left),
// the pick of its successor.
func (c *logCheck) transferred(at where, conv *convModel, ev *pb.Event, left *ownerLeft) {
	actor, t := ev.GetActorUserId(), ev.GetOwnershipTransferred()
	from, to := t.GetFromUserId(), t.GetToUserId()
	switch t.GetReason() {
	case pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_TRANSFERRED:
		a := c.current(at, conv, actor)
		switch {
		case a == nil:
			return
		case a.role != pb.MemberRole_MEMBER_ROLE_OWNER:
			c.problem("%s: %s transfers the ownership but is not the owner", at, actor)
			return
		case from != actor:
			c.problem("%s: from_user_id %s, but the owner %s transfers", at, from, actor)
			return
		case to == actor:
			c.problem("%s: the owner %s transfers the ownership to itself", at, actor)
			return
		}
		if m := c.current(at, conv, to); m != nil {
			a.role, m.role = pb.MemberRole_MEMBER_ROLE_ADMIN, pb.MemberRole_MEMBER_ROLE_OWNER
			m.muted, m.mutedUntil = false, time.Time{} // the owner is never muted
		}
	case pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_OWNER_LEFT:
		if left == nil {
			c.problem("%s: reason OWNER_LEFT, but not right after the owner's MemberRemoved", at)
			return
		}
		if from != left.user {
			c.problem("%s: from_user_id %s, but the owner who left is %s", at, from, left.user)
		}
		if ev.GetCommandId() != left.command {
			c.problem("%s: command_id %s, but the owner's MemberRemoved is of command %s (both are one decision)", at, ev.GetCommandId(), left.command)
		}
		if want := conv.successor(); to != want {
			c.problem("%s: to_user_id %s, want %s (the admin who joined first, else the member who joined first, ties by user id)", at, to, want)
		}
		if m := c.current(at, conv, to); m != nil {
			m.role = pb.MemberRole_MEMBER_ROLE_OWNER
			m.muted, m.mutedUntil = false, time.Time{}
		}
	default:
		c.problem("%s: reason %v, want TRANSFERRED or OWNER_LEFT", at, t.GetReason())
	}
}

// successor is who takes over a group whose owner left: the admin with the
// lowest joined seq, else the member with the lowest, ties by user id ("":
// no member remains).
func (conv *convModel) successor() string {
	best, bestAdmin := "", false
	var bestJoined int64
	for _, u := range slices.Sorted(maps.Keys(conv.members)) {
		m := conv.members[u]
		if !m.current {
			continue
		}
		admin := m.role == pb.MemberRole_MEMBER_ROLE_ADMIN
		if best == "" || (admin && !bestAdmin) || (admin == bestAdmin && m.joined < bestJoined) {
			best, bestAdmin, bestJoined = u, admin, m.joined
		}
	}
	return best
}

// size is the number of current members of conv.
func (conv *convModel) size() int {
	n := 0
	for _, m := range conv.members {
		if m.current {
			n++
		}
	}
	return n
}

// owners lists the current members of conv whose role is owner.
func (conv *convModel) owners() []string {
	var out []string
	for u, m := range conv.members {
		if m.current && m.role == pb.MemberRole_MEMBER_ROLE_OWNER {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// checkOwner checks, after an event that may change roles or members, that
// a group with members has exactly one owner among them (not between the
// owner's MemberRemoved and its OwnershipTransferred).
func (c *logCheck) checkOwner(at where, conv *convModel) {
	if !conv.group || conv.ownerLeft != nil {
		return
	}
	members, owners := conv.size(), conv.owners()
	broken := members > 0 && len(owners) != 1
	if broken && !conv.ownerBroken {
		c.problem("%s: %d owner(s) %v among %d member(s): a group has exactly one owner while it has members", at, len(owners), owners, members)
	}
	conv.ownerBroken = broken
}

// settingsChanged checks a GroupSettingsChanged: in a group, by a
// privileged member, carrying only valid values that change.
func (c *logCheck) settingsChanged(at where, conv *convModel, ev *pb.Event) {
	actor, s := ev.GetActorUserId(), ev.GetGroupSettingsChanged().GetSettings()
	if !conv.group {
		c.problem("%s: settings of a direct conversation (groups only)", at)
		return
	}
	if a := c.current(at, conv, actor); a == nil {
		return
	} else if !a.privileged() {
		c.problem("%s: %s changes the settings but is neither the owner nor an admin", at, actor)
		return
	}
	cur := &conv.settings
	var set int
	var unchanged []string
	text := func(name string, v *string, to *string) {
		if v == nil {
			return
		}
		set++
		if *v == *to {
			unchanged = append(unchanged, fmt.Sprintf("%s %q", name, *v))
		}
		*to = *v
	}
	policy := func(name string, v *pb.GroupPolicy, to *pb.GroupPolicy) {
		if v == nil {
			return
		}
		set++
		switch {
		case *v != pb.GroupPolicy_GROUP_POLICY_MEMBERS && *v != pb.GroupPolicy_GROUP_POLICY_ADMINS:
			c.problem("%s: %s %v, want MEMBERS or ADMINS", at, name, *v)
			return
		case *v == *to:
			unchanged = append(unchanged, name+" "+policyName(*v))
		}
		*to = *v
	}
	if s.Title != nil && s.GetTitle() == "" {
		c.problem("%s: an empty title", at)
		set++
	} else {
		text("title", s.Title, &cur.title)
	}
	text("description", s.Description, &cur.description)
	text("avatar_url", s.AvatarUrl, &cur.avatarURL)
	if s.AnnouncementOnly != nil {
		set++
		if s.GetAnnouncementOnly() == cur.announcementOnly {
			unchanged = append(unchanged, fmt.Sprintf("announcement_only %v", cur.announcementOnly))
		}
		cur.announcementOnly = s.GetAnnouncementOnly()
	}
	policy("who_may_add", s.WhoMayAdd, &cur.whoMayAdd)
	policy("who_may_mention_all", s.WhoMayMentionAll, &cur.whoMayMentionAll)
	policy("who_may_pin", s.WhoMayPin, &cur.whoMayPin)
	if v := s.HistoryVisibility; v != nil {
		set++
		if *v != pb.HistoryVisibility_HISTORY_VISIBILITY_ALL && *v != pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN {
			c.problem("%s: history_visibility %v, want ALL or SINCE_JOIN", at, *v)
		} else {
			if *v == cur.historyVisibility {
				unchanged = append(unchanged, "history_visibility "+strings.TrimPrefix(v.String(), "HISTORY_VISIBILITY_"))
			}
			cur.historyVisibility = *v
		}
	}
	if s.JoinRequests != nil {
		set++
		if s.GetJoinRequests() == cur.joinRequests {
			unchanged = append(unchanged, fmt.Sprintf("join_requests %v", cur.joinRequests))
		}
		cur.joinRequests = s.GetJoinRequests()
	}
	if set == 0 {
		c.problem("%s: no setting in it (a change only when something changes)", at)
	}
	if len(unchanged) > 0 {
		c.problem("%s: %s unchanged (it carries only the settings whose value changes)", at, strings.Join(unchanged, ", "))
	}
}

// mute checks a MemberMuted or MemberUnmuted: by a privileged member, of a
// current member, never the owner, an admin only by the owner; an unmute of
// a muted member. (Whether a mute with until had expired when its unmute
// was decided is not known from the log: the decider compares the
// command's receive time, not in the event.)
func (c *logCheck) mute(at where, conv *convModel, ev *pb.Event) {
	actor, u, verb := ev.GetActorUserId(), ev.GetMemberMuted().GetUserId(), "mutes"
	unmute := ev.GetMemberUnmuted() != nil
	if unmute {
		u, verb = ev.GetMemberUnmuted().GetUserId(), "unmutes"
	}
	a, m := c.current(at, conv, actor), c.current(at, conv, u)
	switch {
	case a == nil || m == nil:
		return
	case !a.privileged():
		c.problem("%s: %s %s %s but is neither the owner nor an admin", at, actor, verb, u)
		return
	case m.role == pb.MemberRole_MEMBER_ROLE_OWNER:
		c.problem("%s: %s %s the owner %s: nobody mutes the owner", at, actor, verb, u)
		return
	case m.role == pb.MemberRole_MEMBER_ROLE_ADMIN && a.role != pb.MemberRole_MEMBER_ROLE_OWNER:
		c.problem("%s: the admin %s %s the admin %s: only the owner mutes an admin", at, actor, verb, u)
		return
	}
	if unmute {
		if !m.muted {
			c.problem("%s: %s is not muted (an unmute only of a muted member)", at, u)
		}
		m.muted, m.mutedUntil = false, time.Time{}
		return
	}
	m.muted, m.mutedUntil = true, time.Time{}
	if t := ev.GetMemberMuted().GetUntil(); t != nil {
		m.mutedUntil = t.AsTime()
	}
}

// pin checks a MessagePinned or MessageUnpinned by Event.actor_user_id
// (member, nil when it is not a current one).
func (c *logCheck) pin(at where, conv *convModel, ev *pb.Event, member *memberModel) {
	actor, seq, verb := ev.GetActorUserId(), ev.GetMessagePinned().GetMessageSeq(), "pins"
	pin := ev.GetMessagePinned() != nil
	if !pin {
		seq, verb = ev.GetMessageUnpinned().GetMessageSeq(), "unpins"
	}
	if member != nil && conv.group && conv.settings.whoMayPin == pb.GroupPolicy_GROUP_POLICY_ADMINS && !member.privileged() {
		c.problem("%s: %s %s while who_may_pin is ADMINS, but is neither the owner nor an admin", at, actor, verb)
	}
	switch msg := conv.messages[seq]; {
	case msg == nil:
		c.problem("%s: message_seq %d is not a MessageSent of the conversation", at, seq)
	case msg.recalledBy != "":
		c.problem("%s: message %d was recalled by %s before: a recall unpins, and nothing pins it after", at, seq, msg.recalledBy)
	case pin && msg.pinned:
		c.problem("%s: message %d is pinned already (a pin only when new)", at, seq)
	case !pin && !msg.pinned:
		c.problem("%s: message %d is not pinned (an unpin only of a pinned message)", at, seq)
	default:
		msg.pinned = pin
	}
}

// unreadMentions counts the mentions of u in conv above its read mark by
// the log: messages not recalled that name it, or that mention @all after
// it joined (but its own). ok is false when u is not a current member.
func (conv *convModel) unreadMentions(u string) (n, read int64, ok bool) {
	m := conv.members[u]
	if m == nil || !m.current {
		return 0, 0, false
	}
	i, _ := slices.BinarySearch(conv.mentioned, m.read+1)
	for _, seq := range conv.mentioned[i:] {
		msg := conv.messages[seq]
		if msg == nil || msg.recalledBy != "" {
			continue
		}
		if (msg.mentionAll && seq > m.joined && msg.sender != u) || slices.Contains(msg.mentions, u) {
			n++
		}
	}
	return n, m.read, true
}

func roleName(r pb.MemberRole) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "MEMBER_ROLE_"))
}

func policyName(p pb.GroupPolicy) string { return strings.TrimPrefix(p.String(), "GROUP_POLICY_") }

// command records one command of parley.commands; decided says ingest had
// committed past it when the check started, so its outcome must be in the
// events read.
func (c *logCheck) command(partition int32, offset int64, cmd *pb.Command, decided bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := where{partition, offset, schemas.CommandType(cmd), cmd.GetConversationId()}
	if at.typ == schemas.TypeDirectBlock || at.typ == schemas.TypeForwardedMessage {
		// Derived by ingest: it shares its command_id with its first step.
		if prev, ok := c.derived[cmd.GetCommandId()]; ok {
			c.problem("command %s is derived twice in the commands topic: %s and %s", cmd.GetCommandId(), prev.where, at)
			return
		}
		from := schemas.UserStreamID(cmd.GetDirectBlock().GetBlockerUserId())
		if at.typ == schemas.TypeForwardedMessage {
			from = cmd.GetForwardedMessage().GetOrigin().GetConversationId()
		}
		c.derived[cmd.GetCommandId()] = command{at, decided, from}
		return
	}
	if prev, ok := c.commands[cmd.GetCommandId()]; ok {
		c.problem("command %s appears twice in the commands topic: %s and %s", cmd.GetCommandId(), prev.where, at)
		return
	}
	c.commands[cmd.GetCommandId()] = command{where: at, decided: decided}
}

// finish checks outcomes against commands. commandsComplete says the
// commands topic still holds every command ever appended (nothing deleted
// by retention), so an event whose command is missing is a problem.
func (c *logCheck) finish(commandsComplete bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(c.convs)) {
		if l := c.convs[id].ownerLeft; l != nil {
			c.problem("%s: the owner %s left and members remain, but no OwnershipTransferred (OWNER_LEFT) follows", l.at, l.user)
		}
		c.settleAttachments(c.convs[id], "", "")
	}
	for _, f := range c.forwards {
		o := f.origin
		if c.convs[o.GetConversationId()] == nil {
			continue // the origin conversation was not read
		}
		switch fw, ok := c.forwarded[f.command]; {
		case !ok || fw.conv != o.GetConversationId():
			c.problem("%s: forwarded from %s seq %d, but %s has no MessageForwarded of command %s", f.at,
				o.GetConversationId(), o.GetSeq(), o.GetConversationId(), f.command)
		case fw.seq != o.GetSeq() || fw.target != f.at.conv:
			c.problem("%s: forwarded from %s seq %d, but its MessageForwarded names seq %d to %s", f.at,
				o.GetConversationId(), o.GetSeq(), fw.seq, fw.target)
		case !c.copiesOf(o, f.attachments):
			c.problem("%s: forwarded from %s seq %d, but its attachments are not copies of the message's (the same bytes, kind, type, name and size, in order)",
				f.at, o.GetConversationId(), o.GetSeq())
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.outcomes)) {
		evs := c.outcomes[id]
		if len(evs) > 1 && !twoStreams(evs) && !pushReplaced(evs) {
			c.problem("command %s has %d outcome events: %v", id, len(evs), evs)
		}
		_, first := c.commands[id]
		_, derived := c.derived[id] // its first step's stream may not have been read
		if !first && !derived && commandsComplete {
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
		case schemas.TypeSetMemberRole, schemas.TypeUpdateGroupSettings, schemas.TypeUnmuteMember,
			schemas.TypePinMessage, schemas.TypeUnpinMessage:
			continue // nor a role or settings that would not change, an unmute of a member not muted, a pin there or gone
		case schemas.TypeBlockUser, schemas.TypeUnblockUser, schemas.TypeRegisterPushTarget, schemas.TypeUnregisterPushTarget:
			continue // nor a block of a blocked user or an unblock of one not blocked, nor a push target there or gone
		case schemas.TypeBanUser, schemas.TypeUnbanUser:
			continue // nor the same ban again, nor an unban of a user not banned
		case schemas.TypeCreateInvite, schemas.TypeRevokeInvite, schemas.TypeJoinConversation, schemas.TypeDecideJoinRequest:
			continue // nor a link's create again, a revoke of a revoked link, a member's join, a request pending, an approval of a member
		case schemas.TypeUploadAttachment, schemas.TypeExpireAttachment:
			continue // nor an upload recorded already, an expiry of an upload sent, gone or too young
		case schemas.TypeCloseConversation, schemas.TypeReopenConversation, schemas.TypeDeleteConversation:
			continue // nor a close of a closed conversation, a reopening of an open one, a deletion of a deleted one
		}
		c.problem("command %s (%s) was decided but has no outcome event", id, cmd.where)
	}
	for _, id := range slices.Sorted(maps.Keys(c.derived)) {
		cmd := c.derived[id]
		read := c.users[cmd.from] != nil || c.convs[cmd.from] != nil // not when only some conversations are checked
		if _, ok := c.commands[id]; !ok && commandsComplete && read {
			c.problem("derived command %s (%s) has no first step in the commands topic", id, cmd.where)
		}
		if cmd.decided && !slices.ContainsFunc(c.outcomes[id], func(w where) bool { return w.conv == cmd.conv }) {
			c.problem("derived command %s (%s) was decided but has no outcome event in %s", id, cmd.where, cmd.conv)
		}
	}
	return c.problems
}

// copiesOf says whether atts are copies of the attachments of the message
// o names: the same but for their id, owner and upload time.
func (c *logCheck) copiesOf(o *pb.ForwardOrigin, atts []*pb.Attachment) bool {
	conv := c.convs[o.GetConversationId()]
	msg := conv.messages[o.GetSeq()]
	if msg == nil {
		return len(atts) == 0 // the MessageForwarded names no message: reported there
	}
	if len(msg.attachments) != len(atts) {
		return false
	}
	strip := func(a *pb.Attachment) *pb.Attachment {
		a = proto.Clone(a).(*pb.Attachment)
		a.AttachmentId, a.OwnerUserId, a.UploadedAt = "", "", nil
		return a
	}
	for i, id := range msg.attachments {
		rec := conv.attachments[id]
		if rec == nil || !proto.Equal(strip(rec.att), strip(atts[i])) {
			return false
		}
	}
	return true
}

// twoStreams says whether evs, the outcomes of one command, are those of a
// two-stream decision: two, in different streams, the first step's
// (UserBlocked, UserUnblocked or MessageForwarded) and one of its derived
// command's.
func twoStreams(evs []where) bool {
	if len(evs) != 2 || evs[0].conv == evs[1].conv {
		return false
	}
	first := func(w where) bool {
		switch w.typ {
		case schemas.TypeUserBlocked, schemas.TypeUserUnblocked, schemas.TypeMessageForwarded:
			return true
		}
		return false
	}
	return first(evs[0]) != first(evs[1])
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
