package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	pb "github.com/parley-im/parley/schemas/parleyv1"
	"google.golang.org/protobuf/proto"
)

// The changelog (parley.ingest.state, compacted) holds the decider's state as
// small records, one per fact, so a decision writes only what it changed:
//
//	c\x00<conv>                        -> headerRec    (kind, title, last seq, last version, closed, deleted)
//	g\x00<conv>                        -> settingsRec  (a group's settings besides its title; tombstone
//	                                                    when all are back at their defaults)
//	m\x00<conv>\x00<user>              -> memberRec    (role, marks, mute; tombstone when removed)
//	d\x00<conv>\x00<user>\x00<client>  -> dedupRec     (tombstone when forgotten; rewritten by an edit)
//	n\x00<conv>\x00<seq>               -> {}           (the timeline item at seq is a member notice; kept)
//	x\x00<conv>\x00<seq>               -> recallRec    (the message at seq is recalled; kept)
//	r\x00<conv>\x00<seq>               -> reactionsRec (the message's reactions; tombstone when none are
//	                                                    left or the message is recalled)
//	p\x00<conv>\x00<seq>               -> {}           (the message at seq is pinned; tombstone when
//	                                                    unpinned or recalled)
//	b\x00<u:stream>\x00<user>          -> {}           (the stream's user blocks user; tombstone when
//	                                                    unblocked)
//	k\x00<d:conv>\x00<blocker>         -> blockerRec   (blocker's block stands in the direct
//	                                                    conversation, created or not; tombstone when lifted)
//	i\x00<conv>\x00<invite id>         -> inviteRec    (an invitation link; kept when revoked)
//	q\x00<conv>\x00<user>              -> requestRec   (user's pending join request; tombstone when
//	                                                    approved, declined, or the user is added)
//	a\x00<conv>\x00<attachment id>     -> uploadRec    (an attachment uploaded and not sent; tombstone
//	                                                    when sent or expired)
//	t\x00<u:stream>\x00<device>         -> pushRec      (the device's push target; tombstone when
//	                                                    unregistered)
//	z\x00<u:stream>                    -> banRec       (the stream's user is banned; tombstone when
//	                                                    unbanned)
//	v\x00<u:stream>\x00<device>        -> revokedRec   (the device is revoked; tombstone when
//	                                                    restored)
//	w\x00<u:stream>\x00<webhook id>     -> webhookRec   (one of the stream's user's webhooks; tombstone
//	                                                    when deleted)
//	s\x00<conv>\x00<seq>               -> sentMsgRec   (the attachments of a group's message whose send is
//	                                                    no longer remembered; tombstone when recalled)
//
// <seq> is decimal. Notices and recalls are never tombstoned: a seq stays a
// notice, a recall is final. They are rare (one per membership change or
// recall); a reactions record exists only for a message that has some, a
// pin record only for a pinned message.
//
// The settings have a record of their own, not fields of the header: the
// header is rewritten by every event (its last seq and version), and a
// description and an avatar URL (up to 3 KiB together) would ride along
// with every message; the settings record is written only when a
// GroupSettingsChanged changes one of them.
//
// Records go to the same partition number as the command they were decided
// from, inside the same transaction as the events; compaction keeps the
// newest value per key, so restore time follows the live state, not the age
// of the log.
//
// Values are JSON objects with short names. They evolve by adding optional
// fields only: a reader ignores fields it does not know, and a field missing
// from an older record takes a documented meaning (dedupRec.At,
// dedupRec.ContentType).
const (
	prefixHeader    = "c"
	prefixMember    = "m"
	prefixDedup     = "d"
	prefixNotice    = "n"
	prefixRecalled  = "x"
	prefixReactions = "r"
	prefixSettings  = "g"
	prefixPin       = "p"
	prefixBlocked   = "b"
	prefixBlocker   = "k"
	prefixInvite    = "i"
	prefixRequest   = "q"
	prefixUpload    = "a"
	prefixPush      = "t"
	prefixSent      = "s"
	prefixBan       = "z"
	prefixWebhook   = "w"
	prefixRevoked   = "v"
	sep             = "\x00"
)

type headerRec struct {
	Kind    int32  `json:"k"`
	Title   string `json:"t,omitempty"`
	LastSeq int64  `json:"s"`
	// LastVersion: records written before versions existed have none (0);
	// the conversation's next event then takes version 1.
	LastVersion int64 `json:"v,omitempty"`
	// Closed, Deleted: absent (and in older records) while the
	// conversation is open.
	Closed  bool `json:"cl,omitempty"`
	Deleted bool `json:"dl,omitempty"`
}

type memberRec struct {
	Role      int32 `json:"r"`
	Joined    int64 `json:"j"`
	Read      int64 `json:"rd"`
	Delivered int64 `json:"dl"`
	// Mute: the member is muted until this time (Unix ms), or forever when
	// -1 (mutedForever); absent (and in older records) when not muted.
	Mute int64 `json:"mu,omitempty"`
}

// settingsRec is a group's settings besides its title; an absent field is
// its default (no description, no avatar, not announcement-only, policy
// GROUP_POLICY_MEMBERS, history visibility ALL). A policy is written as its
// GroupPolicy number, only when GROUP_POLICY_ADMINS (2); any other value
// reads as MEMBERS. The history visibility is written as its
// HistoryVisibility number, only when HISTORY_VISIBILITY_SINCE_JOIN (2);
// any other value (and every older record, which has none) reads as ALL.
type settingsRec struct {
	Description       string `json:"d,omitempty"`
	AvatarURL         string `json:"a,omitempty"`
	AnnouncementOnly  bool   `json:"ao,omitempty"`
	WhoMayAdd         int32  `json:"pa,omitempty"`
	WhoMayMentionAll  int32  `json:"pm,omitempty"`
	WhoMayPin         int32  `json:"pp,omitempty"`
	HistoryVisibility int32  `json:"hv,omitempty"`
	JoinRequests      bool   `json:"jr,omitempty"`
}

func policyRec(admins bool) int32 {
	if admins {
		return int32(pb.GroupPolicy_GROUP_POLICY_ADMINS)
	}
	return 0
}

func settingsRecOf(g groupSettings) settingsRec {
	return settingsRec{Description: g.description, AvatarURL: g.avatarURL, AnnouncementOnly: g.announcementOnly,
		WhoMayAdd: policyRec(g.adminsAdd), WhoMayMentionAll: policyRec(g.adminsMentionAll), WhoMayPin: policyRec(g.adminsPin),
		HistoryVisibility: visibilityRec(g.sinceJoin), JoinRequests: g.joinRequests}
}

func visibilityRec(sinceJoin bool) int32 {
	if sinceJoin {
		return int32(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)
	}
	return 0
}

func (r settingsRec) settings() groupSettings {
	admins := int32(pb.GroupPolicy_GROUP_POLICY_ADMINS)
	return groupSettings{description: r.Description, avatarURL: r.AvatarURL, announcementOnly: r.AnnouncementOnly,
		adminsAdd: r.WhoMayAdd == admins, adminsMentionAll: r.WhoMayMentionAll == admins, adminsPin: r.WhoMayPin == admins,
		sinceJoin:    r.HistoryVisibility == int32(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN),
		joinRequests: r.JoinRequests}
}

// pinRec marks a message pinned; it has no fields.
type pinRec struct{}

type dedupRec struct {
	Seq int64 `json:"s"`
	// At is when the send was received (Unix ms). Records written before
	// the time window existed have none: they are restored as received at
	// the restore, so they are kept one more window and then swept.
	At int64 `json:"t,omitempty"`
	// ContentType of the message, written only when not text/plain: a
	// record without one (and every older record) is text/plain.
	ContentType string `json:"c,omitempty"`
	// Edits and EditIDs (the newest last): none in older records.
	Edits   int32    `json:"n,omitempty"`
	EditIDs []string `json:"e,omitempty"`
	// Atts are the attachments the message sent: none in older records.
	Atts []sentRec `json:"a,omitempty"`
}

// sentRec is an attachment a remembered send sent (sentAttachment).
type sentRec struct {
	ID        string `json:"i"`
	SHA256    string `json:"s"`
	Thumbnail string `json:"t,omitempty"`
}

// sentMsgRec is what a recall needs of a message whose send is no longer
// remembered (sentMessage): its sender, the attachments' owner, and the
// attachments, as its dedup record carried them before it was evicted or
// swept: about 225 bytes of value and 45 of key with one attachment, 185
// more per further one.
type sentMsgRec struct {
	Sender string    `json:"u"`
	Atts   []sentRec `json:"a"`
}

// uploadRec is an attachment uploaded and not sent (upload): Attachment is
// the protobuf-encoded parley.v1.Attachment.
type uploadRec struct {
	At         int64  `json:"t"`
	Attachment []byte `json:"a"`
}

// pushRec is a device's push target: Target is the protobuf-encoded
// parley.v1.PushTarget (registered_at included).
type pushRec struct {
	Target []byte `json:"p"`
}

// revokedRec is one revoked device of a user stream.
type revokedRec struct {
	Reason string `json:"r,omitempty"`
}

// banRec is a user stream's standing ban (banState).
type banRec struct {
	Until  int64  `json:"u,omitempty"` // Unix ms; absent: for good
	Reason string `json:"r,omitempty"`
}

// webhookRec is a user's webhook: Webhook is the protobuf-encoded
// parley.v1.Webhook.
type webhookRec struct {
	Webhook []byte `json:"w"`
}

// blockedRec marks a user blocked by a user stream's user; it has no fields.
type blockedRec struct{}

// blockerRec is a block standing in a direct conversation: its blocker is
// in the key, Blocked is the other user.
type blockerRec struct {
	Blocked string `json:"b"`
}

// inviteRec is an invitation link of a group (inviteState).
type inviteRec struct {
	Hash     string `json:"h"`
	Creator  string `json:"c"`
	Expires  int64  `json:"e,omitempty"` // Unix ms; absent: never
	MaxUses  int32  `json:"m,omitempty"`
	Uses     int32  `json:"u,omitempty"`
	Approval bool   `json:"a,omitempty"`
	Revoked  bool   `json:"r,omitempty"`
}

// requestRec is a pending join request (joinRequest).
type requestRec struct {
	Invite string `json:"i,omitempty"`
	At     int64  `json:"t"`
}

// noticeRec marks a seq as a member notice; it has no fields.
type noticeRec struct{}

// recallRec marks a message recalled, by User.
type recallRec struct {
	User string `json:"u"`
}

// reactionsRec is one message's reactions: emoji -> the users who reacted
// with it, sorted (json.Marshal sorts the emoji).
type reactionsRec map[string][]string

func seqChangelogKey(prefix, conv string, seq int64) string {
	return prefix + sep + conv + sep + strconv.FormatInt(seq, 10)
}

func dedupChangelogKey(conv, user, clientMsgID string) string {
	return prefixDedup + sep + conv + sep + user + sep + clientMsgID
}

func record(topic string, partition int32, key string, v any) *kgo.Record {
	r := &kgo.Record{Topic: topic, Partition: partition, Key: []byte(key)}
	if v != nil {
		r.Value, _ = json.Marshal(v) // plain structs: cannot fail
	}
	return r
}

// changelogRecords renders a decision's delta as changelog records.
func changelogRecords(topic string, partition int32, conv string, st *convState, d delta) []*kgo.Record {
	var out []*kgo.Record
	if d.header {
		out = append(out, record(topic, partition, prefixHeader+sep+conv, headerRec{Kind: int32(st.kind), Title: st.title, LastSeq: st.lastSeq, LastVersion: st.lastVersion,
			Closed: st.closed, Deleted: st.deleted}))
	}
	if d.settings {
		var v any
		if st.settings != (groupSettings{}) {
			v = settingsRecOf(st.settings)
		}
		out = append(out, record(topic, partition, prefixSettings+sep+conv, v))
	}
	for _, u := range d.members {
		var v any
		if m := st.members[u]; m != nil {
			v = memberRec{Role: int32(m.role), Joined: m.joinedSeq, Read: m.readSeq, Delivered: m.delivered, Mute: m.mutedUntil}
		}
		out = append(out, record(topic, partition, prefixMember+sep+conv+sep+u, v))
	}
	for _, refs := range [][]dedupRef{d.dedup, d.edited} {
		for _, r := range refs {
			var v any
			if e, ok := st.lookup(r.user, r.clientMsgID); ok {
				x := e.extra()
				v = dedupRec{Seq: e.seq, At: e.at, ContentType: x.ct, Edits: x.edits, EditIDs: x.editIDs, Atts: sentRecs(x.atts)}
			}
			out = append(out, record(topic, partition, dedupChangelogKey(conv, r.user, r.clientMsgID), v))
		}
	}
	for _, seq := range d.notices {
		out = append(out, record(topic, partition, seqChangelogKey(prefixNotice, conv, seq), noticeRec{}))
	}
	for _, seq := range d.recalled {
		out = append(out, record(topic, partition, seqChangelogKey(prefixRecalled, conv, seq), recallRec{User: st.recalled[seq]}))
	}
	for _, seq := range d.reactions {
		var v any
		if byEmoji := st.reactions[seq]; len(byEmoji) > 0 {
			rec := make(reactionsRec, len(byEmoji))
			for emoji, users := range byEmoji {
				rec[emoji] = slices.Sorted(maps.Keys(users))
			}
			v = rec
		}
		out = append(out, record(topic, partition, seqChangelogKey(prefixReactions, conv, seq), v))
	}
	for _, seq := range d.pins {
		var v any
		if st.isPinned(seq) {
			v = pinRec{}
		}
		out = append(out, record(topic, partition, seqChangelogKey(prefixPin, conv, seq), v))
	}
	for _, u := range d.blocked {
		var v any
		if st.isBlocked(u) {
			v = blockedRec{}
		}
		out = append(out, record(topic, partition, prefixBlocked+sep+conv+sep+u, v))
	}
	for _, u := range d.blockers {
		var v any
		if b, ok := st.blockers[u]; ok {
			v = blockerRec{Blocked: b}
		}
		out = append(out, record(topic, partition, prefixBlocker+sep+conv+sep+u, v))
	}
	for _, id := range d.invites {
		var v any
		if i := st.invites[id]; i != nil {
			v = inviteRec{Hash: i.hash, Creator: i.creator, Expires: i.expires, MaxUses: i.maxUses, Uses: i.uses,
				Approval: i.approval, Revoked: i.revoked}
		}
		out = append(out, record(topic, partition, prefixInvite+sep+conv+sep+id, v))
	}
	for _, u := range d.requests {
		var v any
		if r := st.requests[u]; r != nil {
			v = requestRec{Invite: r.invite, At: r.at}
		}
		out = append(out, record(topic, partition, prefixRequest+sep+conv+sep+u, v))
	}
	for _, id := range d.uploads {
		var v any
		if u := st.uploads[id]; u != nil {
			b, err := proto.Marshal(u.att)
			if err != nil {
				panic(err) // a checked Attachment always marshals
			}
			v = uploadRec{At: u.at, Attachment: b}
		}
		out = append(out, record(topic, partition, prefixUpload+sep+conv+sep+id, v))
	}
	out = appendSentRecords(out, topic, partition, conv, st, d.sent)
	for _, dev := range d.push {
		var v any
		if t := st.push[dev]; t != nil {
			b, err := proto.Marshal(t)
			if err != nil {
				panic(err) // a checked PushTarget always marshals
			}
			v = pushRec{Target: b}
		}
		out = append(out, record(topic, partition, prefixPush+sep+conv+sep+dev, v))
	}
	if d.ban {
		var v any
		if b := st.ban; b != nil {
			v = banRec{Until: b.until, Reason: b.reason}
		}
		out = append(out, record(topic, partition, prefixBan+sep+conv, v))
	}
	for _, dev := range d.revoked {
		var v any
		if r, ok := st.revoked[dev]; ok {
			v = revokedRec{Reason: r}
		}
		out = append(out, record(topic, partition, prefixRevoked+sep+conv+sep+dev, v))
	}
	for _, id := range d.webhooks {
		var v any
		if w := st.webhooks[id]; w != nil {
			b, err := proto.Marshal(w)
			if err != nil {
				panic(err) // a checked Webhook always marshals
			}
			v = webhookRec{Webhook: b}
		}
		out = append(out, record(topic, partition, prefixWebhook+sep+conv+sep+id, v))
	}
	return out
}

func sentRecs(atts []sentAttachment) []sentRec {
	if len(atts) == 0 {
		return nil
	}
	out := make([]sentRec, len(atts))
	for i, a := range atts {
		id, sum, thumbnail := a.text()
		out[i] = sentRec{ID: id, SHA256: sum, Thumbnail: thumbnail}
	}
	return out
}

func sentAttachments(recs []sentRec) ([]sentAttachment, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	out := make([]sentAttachment, len(recs))
	for i, r := range recs {
		a, err := newSentAttachment(r.ID, r.SHA256, r.Thumbnail)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// appendSentRecords appends the sent records of conv's messages seqs: the
// attachments st.sent holds for each, or a tombstone.
func appendSentRecords(out []*kgo.Record, topic string, partition int32, conv string, st *convState, seqs []int64) []*kgo.Record {
	for _, seq := range seqs {
		var v any
		if m, ok := st.sent[seq]; ok {
			v = sentMsgRec{Sender: m.sender, Atts: sentRecs(m.atts)}
		}
		out = append(out, record(topic, partition, seqChangelogKey(prefixSent, conv, seq), v))
	}
	return out
}

// sweepRecords are the tombstones of remembered sends the time sweep forgot,
// and the sent records the partition owes (ps.owed: attachments the sweep or
// the restore moved out of the dedup memory), which it clears.
func sweepRecords(topic string, partition int32, ps *partState, gone []expiryItem) []*kgo.Record {
	out := make([]*kgo.Record, 0, len(gone)+len(ps.owed))
	for _, it := range gone {
		out = append(out, record(topic, partition, dedupChangelogKey(it.conv, it.user, it.clientMsgID), nil))
	}
	for _, o := range ps.owed {
		if st := ps.convs[o.conv]; st != nil {
			out = appendSentRecords(out, topic, partition, o.conv, st, []int64{o.seq})
		}
	}
	clear(ps.owed)
	ps.owed = ps.owed[:0]
	return out
}

// stateBuilder applies changelog records in log order.
type stateBuilder struct {
	convs map[string]*convState
	dedup map[string]map[dedupRef]dedupEntry // conv -> remembered sends
}

func newStateBuilder() *stateBuilder {
	return &stateBuilder{convs: map[string]*convState{}, dedup: map[string]map[dedupRef]dedupEntry{}}
}

func (b *stateBuilder) conv(id string) *convState {
	st := b.convs[id]
	if st == nil {
		st = newConvState(pb.ConversationKind_CONVERSATION_KIND_UNSPECIFIED, "")
		b.convs[id] = st
	}
	return st
}

func (b *stateBuilder) apply(key, value []byte) error {
	parts := strings.SplitN(string(key), sep, 4)
	if len(parts) < 2 {
		return fmt.Errorf("ingest: changelog key %q has no conversation", key)
	}
	conv := parts[1]
	switch {
	case parts[0] == prefixHeader && len(parts) == 2:
		if value == nil {
			delete(b.convs, conv)
			return nil
		}
		var h headerRec
		if err := json.Unmarshal(value, &h); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		st := b.conv(conv)
		st.kind, st.title, st.lastSeq, st.lastVersion = pb.ConversationKind(h.Kind), h.Title, h.LastSeq, h.LastVersion
		st.closed, st.deleted = h.Closed, h.Deleted
	case parts[0] == prefixSettings && len(parts) == 2:
		st := b.conv(conv)
		if value == nil {
			st.settings = groupSettings{}
			return nil
		}
		var g settingsRec
		if err := json.Unmarshal(value, &g); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		st.settings = g.settings()
	case parts[0] == prefixMember && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.members, parts[2])
			return nil
		}
		var m memberRec
		if err := json.Unmarshal(value, &m); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		st.members[parts[2]] = &memberState{role: pb.MemberRole(m.Role), joinedSeq: m.Joined, readSeq: m.Read, delivered: m.Delivered,
			mutedUntil: m.Mute}
	case parts[0] == prefixBlocked && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.blocked, parts[2])
			return nil
		}
		var r blockedRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		if st.blocked == nil {
			st.blocked = map[string]struct{}{}
		}
		st.blocked[parts[2]] = struct{}{}
	case parts[0] == prefixBlocker && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.blockers, parts[2])
			return nil
		}
		var r blockerRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		if st.blockers == nil {
			st.blockers = map[string]string{}
		}
		st.blockers[parts[2]] = r.Blocked
	case parts[0] == prefixInvite && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.invites, parts[2])
			return nil
		}
		var r inviteRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		if st.invites == nil {
			st.invites = map[string]*inviteState{}
		}
		st.invites[parts[2]] = &inviteState{hash: r.Hash, creator: r.Creator, expires: r.Expires, maxUses: r.MaxUses, uses: r.Uses,
			approval: r.Approval, revoked: r.Revoked}
	case parts[0] == prefixRequest && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.requests, parts[2])
			return nil
		}
		var r requestRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		if st.requests == nil {
			st.requests = map[string]*joinRequest{}
		}
		st.requests[parts[2]] = &joinRequest{invite: r.Invite, at: r.At}
	case parts[0] == prefixUpload && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.uploads, parts[2])
			return nil
		}
		var r uploadRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		a := &pb.Attachment{}
		if err := proto.Unmarshal(r.Attachment, a); err != nil {
			return fmt.Errorf("ingest: changelog %q: attachment: %w", key, err)
		}
		if st.uploads == nil {
			st.uploads = map[string]*upload{}
		}
		st.uploads[parts[2]] = &upload{at: r.At, att: a}
	case parts[0] == prefixWebhook && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.webhooks, parts[2])
			return nil
		}
		var r webhookRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		w := &pb.Webhook{}
		if err := proto.Unmarshal(r.Webhook, w); err != nil {
			return fmt.Errorf("ingest: changelog %q: webhook: %w", key, err)
		}
		if st.webhooks == nil {
			st.webhooks = map[string]*pb.Webhook{}
		}
		st.webhooks[parts[2]] = w
	case parts[0] == prefixRevoked && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.revoked, parts[2])
			return nil
		}
		var r revokedRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		if st.revoked == nil {
			st.revoked = map[string]string{}
		}
		st.revoked[parts[2]] = r.Reason
	case parts[0] == prefixBan && len(parts) == 2:
		st := b.conv(conv)
		if value == nil {
			st.ban = nil
			return nil
		}
		var r banRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		st.ban = &banState{until: r.Until, reason: r.Reason}
	case parts[0] == prefixPush && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.push, parts[2])
			return nil
		}
		var r pushRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		t := &pb.PushTarget{}
		if err := proto.Unmarshal(r.Target, t); err != nil {
			return fmt.Errorf("ingest: changelog %q: push target: %w", key, err)
		}
		if st.push == nil {
			st.push = map[string]*pb.PushTarget{}
		}
		st.push[parts[2]] = t
	case parts[0] == prefixDedup && len(parts) == 4:
		ref := dedupRef{parts[2], parts[3]}
		ds := b.dedup[conv]
		if ds == nil {
			ds = map[dedupRef]dedupEntry{}
			b.dedup[conv] = ds
		}
		if value == nil {
			delete(ds, ref)
			return nil
		}
		var d dedupRec
		if err := json.Unmarshal(value, &d); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		atts, err := sentAttachments(d.Atts)
		if err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		ds[ref] = dedupEntry{seq: d.Seq, at: d.At}.with(sendExtra{ct: d.ContentType, edits: d.Edits, editIDs: d.EditIDs, atts: atts})
	case (parts[0] == prefixNotice || parts[0] == prefixRecalled || parts[0] == prefixReactions || parts[0] == prefixPin ||
		parts[0] == prefixSent) && len(parts) == 3:
		seq, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || seq < 1 {
			return fmt.Errorf("ingest: changelog key %q: seq %q is not a positive number", key, parts[2])
		}
		return b.applySeq(conv, parts[0], seq, key, value)
	default:
		return fmt.Errorf("ingest: unknown changelog key %q", key)
	}
	return nil
}

// applySeq applies a notice, recall, reactions, pin or sent record of one
// message.
func (b *stateBuilder) applySeq(conv, prefix string, seq int64, key, value []byte) error {
	st := b.conv(conv)
	switch prefix {
	case prefixNotice:
		if value == nil {
			delete(st.notices, seq)
			return nil
		}
		var n noticeRec
		if err := json.Unmarshal(value, &n); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		st.addNotice(seq)
	case prefixRecalled:
		if value == nil {
			delete(st.recalled, seq)
			return nil
		}
		var r recallRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		st.recall(seq, r.User)
	case prefixReactions:
		delete(st.reactions, seq)
		if value == nil {
			return nil
		}
		var r reactionsRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		for emoji, users := range r {
			for _, u := range users {
				st.addReaction(seq, emoji, u)
			}
		}
	case prefixPin:
		if value == nil {
			delete(st.pins, seq)
			return nil
		}
		var p pinRec
		if err := json.Unmarshal(value, &p); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		st.pin(seq)
	case prefixSent:
		if value == nil {
			delete(st.sent, seq)
			return nil
		}
		var r sentMsgRec
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		atts, err := sentAttachments(r.Atts)
		if err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		if st.sent == nil {
			st.sent = map[int64]sentMessage{}
		}
		st.sent[seq] = sentMessage{sender: r.Sender, atts: atts}
	}
	return nil
}

// done builds the partition's state: each sender's remembered sends in seq
// order, capped at perSender (the newest kept), and the expiry queue in
// receive order, and each conversation's index of sends by seq. A send
// without a receive time (written before the time window) counts as
// received at now, and is no longer edited or recalled by its sender.
func (b *stateBuilder) done(now time.Time, perSender int) *partState {
	ps := newPartState()
	ps.convs = b.convs
	type item struct {
		ref dedupRef
		e   dedupEntry
	}
	var items []item
	for conv, ds := range b.dedup {
		// Seq order rebuilds each sender's order within the conversation.
		items = items[:0]
		for ref, e := range ds {
			if e.at == 0 {
				x := e.extra()
				x.noTime = true
				e.at = now.UnixMilli()
				e = e.with(x)
			}
			items = append(items, item{ref, e})
		}
		slices.SortFunc(items, func(x, y item) int { return cmp.Compare(x.e.seq, y.e.seq) })
		st := b.conv(conv)
		for _, it := range items {
			// A send the cap drops here leaves its attachments in st.sent;
			// their record is owed, as its dedup record will be swept.
			_, kept := st.remember(it.ref.user, it.ref.clientMsgID, it.e, perSender)
			for _, seq := range kept {
				ps.owed = append(ps.owed, seqRef{conv, seq})
			}
		}
		for _, it := range items {
			// A send the cap dropped here (the cap was lowered since it
			// was written) is queued too, so its record gets its tombstone.
			e, ok := st.lookup(it.ref.user, it.ref.clientMsgID)
			ps.expiry = append(ps.expiry, expiryItem{conv: conv, user: it.ref.user, clientMsgID: it.ref.clientMsgID,
				at: it.e.at, orphan: !ok || !e.sameSend(it.e)})
			ps.clock = max(ps.clock, it.e.at)
		}
	}
	// The expiry queue is in receive order.
	slices.SortFunc(ps.expiry, func(x, y expiryItem) int { return cmp.Compare(x.at, y.at) })
	ps.clock = min(ps.clock, now.UnixMilli())
	return ps
}

// restorePartition reads one partition of the changelog from its start to
// its last stable offset (read_committed: aborted transactions never reach
// the state) and returns the state of every conversation in it.
func restorePartition(ctx context.Context, seeds []string, kopts []kgo.Opt, topic string, partition int32, now time.Time, perSender int) (*partState, int, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records are kept so the position reaches the stable
		// offset even when the partition ends with a transaction marker.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, kopts...)...)
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("ingest: restore: %w", err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("ingest: restore: %w", err)
	}
	start, ok1 := starts.Lookup(topic, partition)
	end, ok2 := ends.Lookup(topic, partition)
	if !ok1 || !ok2 || start.Err != nil || end.Err != nil {
		return nil, 0, fmt.Errorf("ingest: restore: no offsets for %s/%d (is the topic provisioned with the same partition count as commands?)", topic, partition)
	}
	b := newStateBuilder()
	n := 0
	for next := start.Offset; next < end.Offset; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		if err := fs.Err(); err != nil {
			return nil, 0, fmt.Errorf("ingest: restore %s/%d: %w", topic, partition, err)
		}
		var aerr error
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Attrs.IsControl() || aerr != nil {
				return
			}
			n++
			aerr = b.apply(r.Key, r.Value)
		})
		if aerr != nil {
			return nil, 0, aerr
		}
	}
	return b.done(now, perSender), n, nil
}
