package ingest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

var (
	streamAlice = schemas.UserStreamID("alice")
	streamBob   = schemas.UserStreamID("bob")
	directAC    = schemas.DirectConversationID("alice", "carol")
)

// Groups with ids of the documented form (a forward checks its target's).
const (
	g1 = "g:00000000000000000000000000000001"
	g2 = "g:00000000000000000000000000000002"
)

func createGroupAt(id string, members ...string) *pb.Command {
	return cmd("alice", id, &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: "team", MemberUserIds: members})
}

// streams decides commands over many streams as the decider does: each
// derived command is decided after the command that derived it (it is
// appended in the same transaction and read back later), before the next
// command given.
type streams struct {
	t       *testing.T
	l       Limits
	convs   map[string]*convState
	derived []*pb.Command
}

func newStreams(t *testing.T, l Limits) *streams {
	return &streams{t: t, l: l.withDefaults(), convs: map[string]*convState{}}
}

func (s *streams) do(cmds ...*pb.Command) []*pb.Event {
	var all []*pb.Event
	now := time.Unix(1_700_000_000, 0)
	for _, c := range cmds {
		queue := []*pb.Command{c}
		for len(queue) > 0 {
			c := queue[0]
			queue = queue[1:]
			st, evs, d := decide(s.l, s.convs[c.GetConversationId()], c, now, now)
			if st != nil {
				s.convs[c.GetConversationId()] = st
			}
			all = append(all, evs...)
			s.derived = append(s.derived, d.derived...)
			queue = append(queue, d.derived...)
		}
	}
	return all
}

// tag names the streams of these tests in summaries.
func tag(conv string) string {
	switch conv {
	case streamAlice:
		return "uA"
	case streamBob:
		return "uB"
	case direct:
		return "dAB"
	case directAC:
		return "dAC"
	case g1:
		return "g1"
	case g2:
		return "g2"
	}
	return conv
}

// streamSummary is summary with each event's stream and version:
// "stream:Type@seq/vN".
func streamSummary(evs []*pb.Event) []string {
	s := summary(evs)
	for i, e := range evs {
		s[i] = fmt.Sprintf("%s:%s/v%d", tag(e.GetConversationId()), s[i], e.GetVersion())
	}
	return s
}

func prefsCmd(user, stream string, p *pb.UpdateConversationPrefs) *pb.Command {
	return cmd(user, stream, p)
}

func hideCmd(user, stream, conv string, upTo int64, seqs ...int64) *pb.Command {
	return cmd(user, stream, &pb.HideMessages{ConversationId: conv, Seqs: seqs, UpToSeq: upTo})
}

func blockCmd(user, blocked string) *pb.Command {
	return cmd(user, schemas.UserStreamID(user), &pb.BlockUser{UserId: blocked})
}

func unblockCmd(user, blocked string) *pb.Command {
	return cmd(user, schemas.UserStreamID(user), &pb.UnblockUser{UserId: blocked})
}

func directBlockCmd(user, key, blocker, blocked string, on bool) *pb.Command {
	return cmd(user, key, &pb.DirectBlock{BlockerUserId: blocker, BlockedUserId: blocked, Blocked: on})
}

func forwardCmd(user, src string, seq int64, target, id, sender string) *pb.Command {
	return cmd(user, src, &pb.ForwardMessage{Seq: seq, TargetConversationId: target, ClientMsgId: id, Text: "fwd " + id,
		Origin: &pb.ForwardOrigin{ConversationId: src, Seq: seq, SenderUserId: sender}})
}

func createDirectWith(user, other string) *pb.Command {
	return cmd(user, schemas.DirectConversationID(user, other), &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{other}})
}

const (
	rejID      = "Rejected:ERROR_CODE_INVALID_ID"
	rejBlocked = "Rejected:ERROR_CODE_BLOCKED"
)

func TestDecideUserStream(t *testing.T) {
	hundredOne := make([]int64, 101)
	for i := range hundredOne {
		hundredOne[i] = int64(i + 1)
	}
	tsp := timestamppb.New(time.Unix(1_800_000_000, 0))
	for _, tc := range []struct {
		name string
		l    Limits
		cmds []*pb.Command
		want []string
	}{
		{"prefs take the stream's dense versions, without membership", Limits{},
			[]*pb.Command{
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: "g:00000000000000000000000000000001", Pinned: proto.Bool(true)}),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct, Mute: &pb.Mute{Forever: true}}),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct, Mute: &pb.Mute{Until: tsp}, ArchivedUpToSeq: proto.Int64(0)}),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct, Mute: &pb.Mute{}, UnreadMarkedAtSeq: proto.Int64(4)})},
			[]string{"uA:ConversationPrefsChanged@0/v1", "uA:ConversationPrefsChanged@0/v2", "uA:ConversationPrefsChanged@0/v3", "uA:ConversationPrefsChanged@0/v4"}},
		{"prefs refusals", Limits{},
			[]*pb.Command{
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: "g:1", Pinned: proto.Bool(true)}),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: streamAlice, Pinned: proto.Bool(true)}),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct}),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct, ArchivedUpToSeq: proto.Int64(-1)}),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct, UnreadMarkedAtSeq: proto.Int64(-2)}),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct, Mute: &pb.Mute{Forever: true, Until: tsp}}),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct, Mute: &pb.Mute{Until: &timestamppb.Timestamp{Nanos: -1}}})},
			[]string{"uA:" + rejID + "/v0", "uA:" + rejID + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0",
				"uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0"}},
		{"hides: seqs deduplicated, up_to_seq alone or both", Limits{},
			[]*pb.Command{hideCmd("alice", streamAlice, direct, 0, 3, 1, 3), hideCmd("alice", streamAlice, direct, 7),
				hideCmd("alice", streamAlice, direct, 9, 12)},
			[]string{"uA:MessagesHidden@0/v1", "uA:MessagesHidden@0/v2", "uA:MessagesHidden@0/v3"}},
		{"hide refusals", Limits{},
			[]*pb.Command{hideCmd("alice", streamAlice, direct, 0), hideCmd("alice", streamAlice, direct, 0, 0),
				hideCmd("alice", streamAlice, direct, -1, 2), hideCmd("alice", streamAlice, direct, 0, hundredOne...),
				hideCmd("alice", streamAlice, "x:1", 3)},
			[]string{"uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0",
				"uA:" + rejID + "/v0"}},
		{"stream keys: another's stream, a conversation, a user stream for a conversation command", Limits{},
			[]*pb.Command{
				hideCmd("alice", streamBob, direct, 3), blockCmdKeyed("alice", streamBob, "carol"),
				hideCmd("alice", direct, direct, 3), blockCmdKeyed("alice", "g:1", "carol"),
				send("alice", streamAlice, "m1"), cmd("alice", streamAlice, &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP}),
				cmd("alice", "u:nothex", &pb.MarkRead{UpToSeq: 1}), hideCmd("alice", "u:nothex", direct, 3)},
			[]string{"uB:" + rejDenied + "/v0", "uB:" + rejDenied + "/v0", "dAB:" + rejInvalid + "/v0", "g:1:" + rejInvalid + "/v0",
				"uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0", "u:nothex:" + rejInvalid + "/v0", "u:nothex:" + rejInvalid + "/v0"}},
		{"block, redundant block, unblock, redundant unblock", Limits{},
			[]*pb.Command{blockCmd("alice", "bob"), blockCmd("alice", "bob"), unblockCmd("alice", "bob"), unblockCmd("alice", "bob"),
				unblockCmd("alice", "carol")},
			[]string{"uA:UserBlocked@0/v1", "dAB:DirectBlockChanged@0/v0", "uA:UserUnblocked@0/v2", "dAB:DirectBlockChanged@0/v0"}},
		{"block refusals: self, bad id, past MaxBlocksPerUser", Limits{MaxBlocksPerUser: 2},
			[]*pb.Command{blockCmd("alice", "alice"), blockCmd("alice", ""), blockCmd("alice", "a b"),
				blockCmd("alice", "bob"), blockCmd("alice", "carol"), blockCmd("alice", "dave"), unblockCmd("alice", "bob"), blockCmd("alice", "dave")},
			[]string{"uA:" + rejInvalid + "/v0", "uA:" + rejID + "/v0", "uA:" + rejID + "/v0",
				"uA:UserBlocked@0/v1", "dAB:DirectBlockChanged@0/v0", "uA:UserBlocked@0/v2", "dAC:DirectBlockChanged@0/v0",
				"uA:" + rejInvalid + "/v0", "uA:UserUnblocked@0/v3", "dAB:DirectBlockChanged@0/v0",
				"uA:UserBlocked@0/v4", tag(schemas.DirectConversationID("alice", "dave")) + ":DirectBlockChanged@0/v0"}},
		{"a block before the conversation exists: create works, sends refused both ways until unblocked", Limits{},
			[]*pb.Command{blockCmd("bob", "alice"), createDirect(), send("alice", direct, "m1"), send("bob", direct, "m2"),
				unblockCmd("bob", "alice"), send("alice", direct, "m1"), send("bob", direct, "m2")},
			[]string{"uB:UserBlocked@0/v1", "dAB:DirectBlockChanged@0/v0", "dAB:ConversationCreated@0/v1", "dAB:" + rejBlocked + "/v0",
				"dAB:" + rejBlocked + "/v0", "uB:UserUnblocked@0/v2", "dAB:DirectBlockChanged@0/v0", "dAB:MessageSent@1/v2", "dAB:MessageSent@2/v3"}},
		{"either block stands until both are lifted; a resend of a message sent before is still the original", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), blockCmd("alice", "bob"), blockCmd("bob", "alice"),
				unblockCmd("alice", "bob"), send("alice", direct, "m2"), send("alice", direct, "m1"), unblockCmd("bob", "alice"), send("alice", direct, "m2")},
			[]string{"dAB:ConversationCreated@0/v1", "dAB:MessageSent@1/v2", "uA:UserBlocked@0/v1", "dAB:DirectBlockChanged@0/v0",
				"uB:UserBlocked@0/v1", "dAB:DirectBlockChanged@0/v0", "uA:UserUnblocked@0/v2", "dAB:DirectBlockChanged@0/v0",
				"dAB:" + rejBlocked + "/v0", "dAB:Dedup->1/v0", "uB:UserUnblocked@0/v2", "dAB:DirectBlockChanged@0/v0", "dAB:MessageSent@2/v3"}},
		{"a block in one direct conversation leaves the others alone", Limits{},
			[]*pb.Command{createDirect(), createDirectWith("alice", "carol"), blockCmd("alice", "bob"), send("alice", directAC, "m1")},
			[]string{"dAB:ConversationCreated@0/v1", "dAC:ConversationCreated@0/v1", "uA:UserBlocked@0/v1", "dAB:DirectBlockChanged@0/v0",
				"dAC:MessageSent@1/v2"}},
		{"direct block refusals: wrong key, not from the blocker, self, a group key, redundant", Limits{},
			[]*pb.Command{directBlockCmd("alice", directAC, "alice", "bob", true), directBlockCmd("bob", direct, "alice", "bob", true),
				directBlockCmd("alice", schemas.DirectConversationID("alice", "alice"), "alice", "alice", true),
				directBlockCmd("alice", "g:1", "alice", "bob", true),
				directBlockCmd("alice", direct, "alice", "bob", false), directBlockCmd("alice", direct, "alice", "bob", true),
				directBlockCmd("alice", direct, "alice", "bob", true)},
			[]string{"dAC:" + rejInvalid + "/v0", "dAB:" + rejInvalid + "/v0", tag(schemas.DirectConversationID("alice", "alice")) + ":" + rejInvalid + "/v0",
				"g:1:" + rejInvalid + "/v0", "dAB:DirectBlockChanged@0/v0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreams(t, tc.l)
			evs := s.do(tc.cmds...)
			if got := streamSummary(evs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			for _, e := range evs {
				// Only a refusal (addressed to the device that asked) is
				// ever by another user than the stream's.
				if schemas.IsUserStreamID(e.GetConversationId()) && e.GetConversationId() != schemas.UserStreamID(e.GetActorUserId()) &&
					e.GetCommandRejected() == nil {
					t.Fatalf("event of %s's stream by %s", e.GetConversationId(), e.GetActorUserId())
				}
			}
		})
	}
}

func blockCmdKeyed(user, key, blocked string) *pb.Command {
	return cmd(user, key, &pb.BlockUser{UserId: blocked})
}

// TestDecideUserStreamBodies checks what the events and the derived
// commands carry.
func TestDecideUserStreamBodies(t *testing.T) {
	s := newStreams(t, Limits{})
	c := blockCmd("alice", "bob")
	c.ReceivedAt = timestamppb.New(time.Unix(1_700_000_000, 5))
	evs := s.do(c, hideCmd("alice", streamAlice, direct, 4, 9, 2, 9),
		prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct, Pinned: proto.Bool(false), Mute: &pb.Mute{Forever: true}}))
	if len(s.derived) != 1 {
		t.Fatalf("derived %v", s.derived)
	}
	want := &pb.Command{CommandId: c.CommandId, UserId: "alice", DeviceId: c.DeviceId, ConversationId: direct, ReceivedAt: c.ReceivedAt,
		Body: &pb.Command_DirectBlock{DirectBlock: &pb.DirectBlock{BlockerUserId: "alice", BlockedUserId: "bob", Blocked: true}}}
	if !proto.Equal(s.derived[0], want) {
		t.Fatalf("derived\n got %v\nwant %v", s.derived[0], want)
	}
	if b := evs[0].GetUserBlocked(); b.GetUserId() != "bob" || evs[0].GetConversationId() != streamAlice || evs[0].GetCommandId() != c.CommandId {
		t.Fatalf("UserBlocked %v", evs[0])
	}
	if b := evs[1].GetDirectBlockChanged(); b.GetBlockerUserId() != "alice" || b.GetBlockedUserId() != "bob" || !b.GetBlocked() ||
		evs[1].GetCommandId() != c.CommandId || evs[1].GetActorUserId() != "alice" {
		t.Fatalf("DirectBlockChanged %v", evs[1])
	}
	if h := evs[2].GetMessagesHidden(); fmt.Sprint(h.GetSeqs()) != "[9 2]" || h.GetUpToSeq() != 4 || h.GetConversationId() != direct {
		t.Fatalf("MessagesHidden %v", evs[2])
	}
	p := evs[3].GetConversationPrefsChanged()
	if p.Pinned == nil || p.GetPinned() || !p.GetMute().GetForever() || p.ArchivedUpToSeq != nil || p.UnreadMarkedAtSeq != nil {
		t.Fatalf("ConversationPrefsChanged %v", evs[3])
	}
}

func TestDecideForward(t *testing.T) {
	createG2 := func(members ...string) *pb.Command { return createGroupAt(g2, members...) }
	setup := []*pb.Command{createGroupAt(g1, "bob", "carol"), send("bob", g1, "m1"), createDirect()}
	setupWant := []string{"g1:ConversationCreated@0/v1", "g1:MessageSent@1/v2", "dAB:ConversationCreated@0/v1"}
	for _, tc := range []struct {
		name string
		cmds []*pb.Command
		want []string
	}{
		{"forward: a decision record in the source, the send in the target; a retry is deduplicated there",
			[]*pb.Command{forwardCmd("alice", g1, 1, direct, "f1", "bob"), forwardCmd("alice", g1, 1, direct, "f1", "bob"),
				send("alice", direct, "m2")},
			[]string{"g1:MessageForwarded@0/v0", "dAB:MessageSent@1/v2", "g1:MessageForwarded@0/v0", "dAB:Dedup->1/v0", "dAB:MessageSent@2/v3"}},
		{"source refusals",
			[]*pb.Command{forwardCmd("mallory", g1, 1, direct, "f1", "bob"), forwardCmd("alice", g1, 2, direct, "f1", "bob"),
				forwardCmd("alice", g1, 0, direct, "f1", "bob"), forwardCmd("alice", g1, 1, g1, "f1", "bob"),
				forwardCmd("alice", g1, 1, "g:x", "f1", "bob"), forwardCmd("alice", g1, 1, streamAlice, "f1", "bob"),
				forwardCmd("alice", g1, 1, direct, "", "bob"), forwardCmd("alice", g1, 1, direct, "f1", "carol"),
				cmd("alice", g1, &pb.ForwardMessage{Seq: 1, TargetConversationId: direct, ClientMsgId: "f1", Text: "x"}),
				cmd("alice", g1, &pb.ForwardMessage{Seq: 1, TargetConversationId: direct, ClientMsgId: "f1", Text: "x",
					Origin: &pb.ForwardOrigin{ConversationId: g1, Seq: 2}}),
				cmd("alice", g1, &pb.ForwardMessage{Seq: 1, TargetConversationId: direct, ClientMsgId: "f1", Origin: &pb.ForwardOrigin{ConversationId: g1, Seq: 1, SenderUserId: "bob"}})},
			[]string{"g1:" + rejNotMember + "/v0", "g1:" + rejNotFound + "/v0", "g1:" + rejNotFound + "/v0", "g1:" + rejInvalid + "/v0",
				"g1:" + rejID + "/v0", "g1:" + rejID + "/v0", "g1:" + rejInvalid + "/v0", "g1:" + rejInvalid + "/v0",
				"g1:" + rejInvalid + "/v0", "g1:" + rejInvalid + "/v0", "g1:" + rejInvalid + "/v0"}},
		{"a recalled message and a member notice are not forwarded",
			[]*pb.Command{addCmd("alice", g1, "dave"), forwardCmd("alice", g1, 2, direct, "f1", ""),
				recallCmd("bob", g1, 1), forwardCmd("alice", g1, 1, direct, "f1", "bob")},
			[]string{"g1:MembersAdded@2/v3", "g1:" + rejNotFound + "/v0", "g1:Recalled:1/v4", "g1:" + rejRecalled + "/v0"}},
		{"history since join: a message before the sender joined is not found",
			[]*pb.Command{settingsCmd("alice", g1, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)}),
				addCmd("alice", g1, "dave"), send("carol", g1, "m3"), createG2("dave"),
				forwardCmd("dave", g1, 1, g2, "f1", "bob"), forwardCmd("dave", g1, 3, g2, "f2", "carol")},
			[]string{"g1:Settings:history_visibility/v3", "g1:MembersAdded@2/v4", "g1:MessageSent@3/v5", "g2:ConversationCreated@0/v1",
				"g1:" + rejNotFound + "/v0", "g1:MessageForwarded@0/v0", "g2:MessageSent@1/v2"}},
		{"target refusals: not a member there, blocked, announcement-only, muted",
			[]*pb.Command{forwardCmd("carol", g1, 1, direct, "f1", "bob"),
				blockCmd("bob", "alice"), forwardCmd("alice", g1, 1, direct, "f2", "bob"), unblockCmd("bob", "alice"),
				createG2("bob", "carol"), settingsCmd("alice", g2, &pb.GroupSettings{AnnouncementOnly: proto.Bool(true)}),
				forwardCmd("bob", g1, 1, g2, "f3", "bob"), settingsCmd("alice", g2, &pb.GroupSettings{AnnouncementOnly: proto.Bool(false)}),
				muteCmd("alice", g2, "carol", nil), forwardCmd("carol", g1, 1, g2, "f4", "bob")},
			[]string{"g1:MessageForwarded@0/v0", "dAB:" + rejNotMember + "/v0",
				"uB:UserBlocked@0/v1", "dAB:DirectBlockChanged@0/v0", "g1:MessageForwarded@0/v0", "dAB:" + rejBlocked + "/v0",
				"uB:UserUnblocked@0/v2", "dAB:DirectBlockChanged@0/v0",
				"g2:ConversationCreated@0/v1", "g2:Settings:announcement_only/v2", "g1:MessageForwarded@0/v0", "g2:" + rejDenied + "/v0",
				"g2:Settings:announcement_only/v3", "g2:Muted:carol/v4", "g1:MessageForwarded@0/v0", "g2:" + rejMuted + "/v0"}},
		{"a forwarded message without an origin is refused",
			[]*pb.Command{cmd("alice", direct, &pb.ForwardedMessage{ClientMsgId: "f", Text: "x"}),
				cmd("alice", direct, &pb.ForwardedMessage{ClientMsgId: "f", Text: "x", Origin: &pb.ForwardOrigin{ConversationId: direct, Seq: 1}})},
			[]string{"dAB:" + rejInvalid + "/v0", "dAB:" + rejInvalid + "/v0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreams(t, Limits{})
			evs := s.do(append(append([]*pb.Command{}, setup...), tc.cmds...)...)
			want := append(append([]string{}, setupWant...), tc.want...)
			if got := streamSummary(evs); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("events\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestDecideForwardBodies checks the decision record, the derived command
// and the target's MessageSent, and that a refusal in the target carries
// the forward's command id and client id.
func TestDecideForwardBodies(t *testing.T) {
	s := newStreams(t, Limits{})
	s.do(createGroupAt(g1, "bob"), send("bob", g1, "m1"), createDirect())
	f := forwardCmd("alice", g1, 1, direct, "f1", "bob")
	f.GetForwardMessage().ContentType = schemas.ContentMarkdown
	f.GetForwardMessage().Origin.SentAt = timestamppb.New(time.Unix(1_600_000_000, 0))
	evs := s.do(f)
	if len(evs) != 2 || len(s.derived) != 1 {
		t.Fatalf("events %v derived %v", streamSummary(evs), s.derived)
	}
	if r := evs[0].GetMessageForwarded(); r.GetSeq() != 1 || r.GetTargetConversationId() != direct || r.GetClientMsgId() != "f1" || evs[0].GetVersion() != 0 {
		t.Fatalf("MessageForwarded %v", evs[0])
	}
	fm := s.derived[0].GetForwardedMessage()
	if s.derived[0].GetConversationId() != direct || s.derived[0].GetCommandId() != f.GetCommandId() || s.derived[0].GetDeviceId() != f.GetDeviceId() ||
		fm.GetText() != "fwd f1" || fm.GetContentType() != schemas.ContentMarkdown || !proto.Equal(fm.GetOrigin(), f.GetForwardMessage().GetOrigin()) {
		t.Fatalf("derived %v", s.derived[0])
	}
	ms := evs[1].GetMessageSent()
	if evs[1].GetCommandId() != f.GetCommandId() || evs[1].GetActorUserId() != "alice" || ms.GetText() != "fwd f1" ||
		!strings.HasPrefix(ms.GetContentType(), schemas.ContentMarkdown) || !proto.Equal(ms.GetForwardedFrom(), f.GetForwardMessage().GetOrigin()) ||
		len(ms.GetMentionUserIds()) != 0 || ms.GetMentionAll() || ms.GetReplyToSeq() != 0 {
		t.Fatalf("MessageSent %v", evs[1])
	}
	// Refused in the target: the rejection names the forward.
	g := forwardCmd("carol", g1, 1, direct, "f2", "bob")
	s.do(addCmd("alice", g1, "carol"))
	evs = s.do(g)
	r := evs[len(evs)-1].GetCommandRejected()
	if r.GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER || r.GetClientMsgId() != "f2" || evs[len(evs)-1].GetCommandId() != g.GetCommandId() ||
		r.GetCommandType() != schemas.TypeForwardedMessage {
		t.Fatalf("target refusal %v", evs[len(evs)-1])
	}
	// Refused in the source: the same.
	evs = s.do(forwardCmd("alice", g1, 9, direct, "f3", "bob"))
	if r := evs[0].GetCommandRejected(); r.GetClientMsgId() != "f3" || r.GetCommandType() != schemas.TypeForwardMessage || len(evs) != 1 {
		t.Fatalf("source refusal %v", evs)
	}
}

// streamsOf renders the user-stream and block state of every stream.
func streamsOf(ps *partState) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(ps.convs)) {
		st := ps.convs[id]
		if len(st.blocked) == 0 && len(st.blockers) == 0 && !schemas.IsUserStreamID(id) && !st.closed && !st.deleted {
			continue
		}
		fmt.Fprintf(&b, "%s kind=%d v=%d seq=%d blocked=%v blockers=%v closed=%v deleted=%v", tag(id), st.kind, st.lastVersion, st.lastSeq,
			slices.Sorted(maps.Keys(st.blocked)), st.blockers, st.closed, st.deleted)
		if st.ban != nil {
			fmt.Fprintf(&b, " ban=%+v", *st.ban)
		}
		for _, w := range slices.Sorted(maps.Keys(st.webhooks)) {
			fmt.Fprintf(&b, " webhook=%s:%s", w, st.webhooks[w].GetUrl())
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestUserStreamsRestore: a user stream's version and blocked set, and a
// direct conversation's blocks (also before it exists), come back from the
// changelog; decisions after the restore go on from them.
func TestUserStreamsRestore(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	for _, c := range []*pb.Command{
		blockCmd("alice", "bob"), blockCmd("alice", "carol"), blockCmd("alice", "dave"), unblockCmd("alice", "dave"),
		hideCmd("alice", streamAlice, direct, 3), blockCmd("bob", "alice"),
		createDirectWith("alice", "carol"),
	} {
		r.do(c, at)
	}
	live := streamsOf(r.ps)
	ps := r.restore(at)
	if got := streamsOf(ps); got != live {
		t.Fatalf("restored\n%s\nlive\n%s", got, live)
	}
	if !strings.Contains(live, "uA kind=0 v=5 seq=0 blocked=[bob carol]") || !strings.Contains(live, "dAB kind=0 v=0 seq=0 blocked=[] blockers=map[alice:bob bob:alice]") ||
		!strings.Contains(live, "dAC kind=1 v=1") {
		t.Fatalf("state\n%s", live)
	}
	r.ps = ps
	evs := r.do(blockCmd("alice", "bob"), at)                  // redundant after the restore too
	evs = append(evs, r.do(unblockCmd("alice", "bob"), at)...) // the next version
	evs = append(evs, r.do(createDirect(), at)...)             // blocks recorded before: create works
	evs = append(evs, r.do(send("alice", direct, "m1"), at)...)
	evs = append(evs, r.do(send("alice", directAC, "m1"), at)...)
	want := "[uA:UserUnblocked@0/v6 dAB:DirectBlockChanged@0/v0 dAB:ConversationCreated@0/v1 dAB:Rejected:ERROR_CODE_BLOCKED/v0 dAC:Rejected:ERROR_CODE_BLOCKED/v0]"
	if got := fmt.Sprint(streamSummary(evs)); got != want {
		t.Fatalf("after restore\n got %s\nwant %s", got, want)
	}
	// And once more: the conversation created over its blocks keeps them.
	live = streamsOf(r.ps)
	if got := streamsOf(r.restore(at)); got != live || !strings.Contains(live, "dAB kind=1 v=1 seq=0 blocked=[] blockers=map[bob:alice]") {
		t.Fatalf("restored\n%s\nlive\n%s", got, live)
	}
}
