package system_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// inboxItem is one conversation of GET /v1/inbox with the user's settings.
type inboxItem struct {
	ConversationID string `json:"conversation_id"`
	LastSeq        int64  `json:"last_seq"`
	Unread         int64  `json:"unread"`
	Muted          bool   `json:"muted"`
	MutedForever   bool   `json:"muted_forever"`
	MutedUntil     string `json:"muted_until"`
	Pinned         bool   `json:"pinned"`
	Archived       bool   `json:"archived"`
	MarkedUnread   bool   `json:"marked_unread"`
}

// settings is GET /v1/me/settings.
type settings struct {
	UserStreamID  string `json:"user_stream_id"`
	Version       int64  `json:"version"`
	Conversations []struct {
		ConversationID    string  `json:"conversation_id"`
		Muted             bool    `json:"muted"`
		MutedForever      bool    `json:"muted_forever"`
		MutedUntil        string  `json:"muted_until"`
		Pinned            bool    `json:"pinned"`
		ArchivedUpToSeq   int64   `json:"archived_up_to_seq"`
		UnreadMarkedAtSeq int64   `json:"unread_marked_at_seq"`
		HiddenUpToSeq     int64   `json:"hidden_up_to_seq"`
		HiddenSeqs        []int64 `json:"hidden_seqs"`
	} `json:"conversations"`
	Blocks []struct {
		UserID string `json:"user_id"`
	} `json:"blocks"`
}

// userEvents collects the events of user's own stream that d receives up to
// and including the first that matches last.
func userEvents(t *testing.T, d *testenv.WSClient, user string, last func(*pb.Event) bool) []*pb.Event {
	t.Helper()
	return until(t, d, schemas.UserStreamID(user), last)
}

// TestE2EUserSettings: a user's conversation settings made on one device
// reach its other devices live, in version order on its own stream, and
// never anyone else's; the inbox sorts pinned first and filters archived,
// muted and unread; an archived conversation comes back on a new message
// unless muted; delete-for-me hides messages for that user only.
func TestE2EUserSettings(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	phone := connect(t, sys, 0, "alice", "phone")
	laptop := connect(t, sys, 1, "alice", "laptop")
	bob := connect(t, sys, 1, "bob", "phone")
	if w := phone.WaitWelcome(); w.GetUserStreamId() != schemas.UserStreamID("alice") {
		t.Fatalf("Welcome.user_stream_id = %q, want %q", w.GetUserStreamId(), schemas.UserStreamID("alice"))
	}
	var convs []string
	for i := range 4 {
		id := accepted(t, bob.MustDo("", group(fmt.Sprintf("s%d", i), "alice")))
		accepted(t, bob.MustDo(id, send(fmt.Sprintf("s%d-1", i), "one")))
		accepted(t, bob.MustDo(id, send(fmt.Sprintf("s%d-2", i), "two")))
		convs = append(convs, id)
	}
	seconds := map[string]bool{}
	phone.WaitEvent("the second message of each", func(e *pb.Event) bool {
		if e.GetSeq() == 2 {
			seconds[e.GetConversationId()] = true
		}
		return len(seconds) == len(convs)
	})
	stream := schemas.UserStreamID("alice")
	until := timestamppb.New(time.Now().Add(48 * time.Hour).Truncate(time.Second))
	yes := true
	accepted(t, laptop.MustDo(convs[1], &pb.UpdateConversationPrefs{Pinned: &yes}))
	accepted(t, laptop.MustDo(convs[2], &pb.UpdateConversationPrefs{Mute: &pb.Mute{Forever: true}}))
	accepted(t, laptop.MustDo(convs[3], &pb.UpdateConversationPrefs{Mute: &pb.Mute{Until: until}}))
	archived := int64(2)
	accepted(t, laptop.MustDo(convs[0], &pb.UpdateConversationPrefs{ArchivedUpToSeq: &archived}))
	marked := int64(0)
	accepted(t, laptop.MustDo(convs[1], &pb.UpdateConversationPrefs{UnreadMarkedAtSeq: proto.Int64(1)}))
	accepted(t, laptop.MustDo(convs[3], &pb.HideMessages{Seqs: []int64{2}}))
	last := laptop.MustDo(convs[2], &pb.HideMessages{UpToSeq: 2}).GetAccepted().GetCommandId()

	// Both of alice's devices see her stream, densely versioned, in order.
	want := []string{"prefs 1 pinned", "prefs 2 muted forever", "prefs 3 muted until", "prefs 0 archived 2",
		"prefs 1 marked 1", "hidden 3 [2] 0", "hidden 2 [] 2"}
	for _, d := range []*testenv.WSClient{phone, laptop} {
		evs := userEvents(t, d, "alice", func(e *pb.Event) bool { return e.GetCommandId() == last })
		var got []string
		for i, e := range evs {
			if e.GetVersion() != int64(i+1) {
				t.Fatalf("%s: user stream version %d at %d, want dense from 1: %v", d.Name(), e.GetVersion(), i, evs)
			}
			got = append(got, describeUser(e, convs))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s saw on its stream\n  %s\nwant\n  %s", d.Name(), strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
	// Refusals, on the device that asked: a conversation id of the wrong
	// form, a change of nothing.
	if f := laptop.MustDo("x:1", &pb.UpdateConversationPrefs{Pinned: &yes}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ID {
		t.Fatalf("prefs of a malformed conversation id: %v, want INVALID_ID", f)
	}
	if f := laptop.MustDo(convs[0], &pb.UpdateConversationPrefs{}); f.GetError() == nil {
		wantRefused(t, laptop, f, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	} else if f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("prefs changing nothing: %v, want INVALID_ARGUMENT", f)
	}
	// Nobody else sees the settings.
	accepted(t, bob.MustDo(convs[0], send("barrier", "b"))) // seq 3
	bob.WaitEvent("the barrier", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "barrier" })
	for _, e := range bob.DrainEvents() {
		if e.GetConversationId() == stream {
			t.Fatalf("bob got alice's setting %v", e)
		}
	}

	// The inbox: pinned first; filters. The barrier un-archived convs[0].
	ids := func(q string) ([]string, map[string]inboxItem) {
		var in struct {
			Conversations []inboxItem `json:"conversations"`
		}
		if code := api(t, sys, "alice", "/v1/inbox?limit=50"+q, &in); code != 200 {
			t.Fatalf("inbox%s: status %d", q, code)
		}
		var out []string
		by := map[string]inboxItem{}
		for _, it := range in.Conversations {
			out = append(out, it.ConversationID)
			by[it.ConversationID] = it
		}
		return out, by
	}
	name := func(ids []string) []int {
		var out []int
		for _, id := range ids {
			out = append(out, slices.Index(convs, id))
		}
		return out
	}
	testenv.Eventually(t, time.Minute, func() string {
		all, by := ids("")
		if len(all) != 4 || all[0] != convs[1] {
			return fmt.Sprintf("inbox order %v, want the pinned 1 first of 4", name(all))
		}
		if it := by[convs[0]]; it.Archived || it.LastSeq != 3 {
			return fmt.Sprintf("conversation 0 %+v: want last_seq 3, un-archived by the new message", it)
		}
		if it := by[convs[2]]; !it.Muted || !it.MutedForever {
			return fmt.Sprintf("conversation 2 %+v: want muted forever", it)
		}
		if it := by[convs[3]]; !it.Muted || it.MutedForever || it.MutedUntil == "" {
			return fmt.Sprintf("conversation 3 %+v: want muted until a time", it)
		}
		if it := by[convs[1]]; !it.Pinned || !it.MarkedUnread {
			return fmt.Sprintf("conversation 1 %+v: want pinned and marked unread", it)
		}
		if m, _ := ids("&muted=only"); !slices.Equal(name(m), []int{2, 3}) && !slices.Equal(name(m), []int{3, 2}) {
			return fmt.Sprintf("muted=only: %v, want 2 and 3", name(m))
		}
		if m, _ := ids("&muted=exclude"); len(m) != 2 || m[0] != convs[1] {
			return fmt.Sprintf("muted=exclude: %v, want 1 then 0", name(m))
		}
		if a, _ := ids("&archived=only"); len(a) != 0 {
			return fmt.Sprintf("archived=only: %v, want none (0 came back on its new message)", name(a))
		}
		return ""
	})
	// Archived while muted stays archived on a new message.
	accepted(t, laptop.MustDo(convs[2], &pb.UpdateConversationPrefs{ArchivedUpToSeq: proto.Int64(2)}))
	accepted(t, bob.MustDo(convs[2], send("muted-news", "n")))
	accepted(t, laptop.MustDo(convs[1], &pb.UpdateConversationPrefs{UnreadMarkedAtSeq: &marked}))
	testenv.Eventually(t, time.Minute, func() string {
		a, by := ids("&archived=only")
		if !slices.Equal(a, []string{convs[2]}) || by[convs[2]].LastSeq != 3 {
			return fmt.Sprintf("archived=only: %v %+v, want 2 archived at last_seq 3 (muted)", name(a), by[convs[2]])
		}
		if a, _ := ids("&archived=exclude"); len(a) != 3 {
			return fmt.Sprintf("archived=exclude: %v, want 3", name(a))
		}
		if _, by := ids(""); by[convs[1]].MarkedUnread {
			return "conversation 1 still marked unread after the mark was cleared"
		}
		return ""
	})
	if code := api(t, sys, "alice", "/v1/inbox?archived=sometimes", nil); code != 400 {
		t.Fatalf("inbox?archived=sometimes: status %d, want 400", code)
	}

	// Delete for me: hidden for alice, not for bob.
	testenv.Eventually(t, time.Minute, func() string {
		h, code := allHistory(t, sys, "alice", convs[3])
		if code != 200 {
			return fmt.Sprintf("history: %d", code)
		}
		var seqs []int64
		for _, m := range h.Messages {
			seqs = append(seqs, m.Seq)
		}
		if !slices.Equal(seqs, []int64{1}) {
			return fmt.Sprintf("alice's history of 3: seqs %v, want [1] (2 hidden)", seqs)
		}
		h, _ = allHistory(t, sys, "alice", convs[2])
		seqs = nil
		for _, m := range h.Messages {
			seqs = append(seqs, m.Seq)
		}
		if !slices.Equal(seqs, []int64{3}) {
			return fmt.Sprintf("alice's history of 2: seqs %v, want [3] (cleared up to 2)", seqs)
		}
		if h, _ := allHistory(t, sys, "bob", convs[3]); len(h.Messages) != 2 {
			return fmt.Sprintf("bob's history of 3 has %d items, want 2 (alice's delete is hers)", len(h.Messages))
		}
		var st settings
		if code := api(t, sys, "alice", "/v1/me/settings", &st); code != 200 {
			return fmt.Sprintf("settings: %d", code)
		}
		if st.UserStreamID != stream || st.Version != 9 {
			return fmt.Sprintf("settings stream %s version %d, want %s at 9", st.UserStreamID, st.Version, stream)
		}
		return ""
	})
}

// describeUser names a user stream event compactly, conversations by index.
func describeUser(e *pb.Event, convs []string) string {
	switch b := e.GetBody().(type) {
	case *pb.Event_ConversationPrefsChanged:
		p := b.ConversationPrefsChanged
		s := fmt.Sprintf("prefs %d", slices.Index(convs, p.GetConversationId()))
		if p.Pinned != nil {
			s += fmt.Sprintf(" pinned=%v", p.GetPinned())
			s = strings.Replace(s, " pinned=true", " pinned", 1)
		}
		if p.Mute != nil {
			switch {
			case p.GetMute().GetForever():
				s += " muted forever"
			case p.GetMute().GetUntil() != nil:
				s += " muted until"
			default:
				s += " unmuted"
			}
		}
		if p.ArchivedUpToSeq != nil {
			s += fmt.Sprintf(" archived %d", p.GetArchivedUpToSeq())
		}
		if p.UnreadMarkedAtSeq != nil {
			s += fmt.Sprintf(" marked %d", p.GetUnreadMarkedAtSeq())
		}
		return s
	case *pb.Event_MessagesHidden:
		h := b.MessagesHidden
		return fmt.Sprintf("hidden %d %v %d", slices.Index(convs, h.GetConversationId()), h.GetSeqs(), h.GetUpToSeq())
	case *pb.Event_UserBlocked:
		return "blocked " + b.UserBlocked.GetUserId()
	case *pb.Event_UserUnblocked:
		return "unblocked " + b.UserUnblocked.GetUserId()
	}
	return describeAction(e)
}

// TestE2EBlocks: a block refuses direct messages both ways with BLOCKED
// (also in a direct conversation created after the block), hides the
// blocker's presence from the blocked user, leaves groups alone, and ends
// with an unblock; the blocker's devices see it on its stream.
func TestE2EBlocks(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice := connect(t, sys, 0, "alice", "phone")
	laptop := connect(t, sys, 1, "alice", "laptop")
	bob := connect(t, sys, 1, "bob", "phone")
	carol := connect(t, sys, 0, "carol", "phone")
	dm := accepted(t, bob.MustDo("", direct("alice")))
	accepted(t, bob.MustDo(dm, send("b1", "hi")))
	g := accepted(t, bob.MustDo("", group("with blocks", "alice", "carol")))
	alice.WaitEvent("the group", func(e *pb.Event) bool { return e.GetConversationId() == g })
	share(t, sys, carol, "alice")
	bob.Start("", &pb.SetPresence{State: pb.PresenceState_PRESENCE_STATE_ONLINE}) // answered only if refused
	alice.Start("", &pb.SetPresence{State: pb.PresenceState_PRESENCE_STATE_BUSY})
	if p := watch(t, bob, "alice"); p["alice"].GetState() != pb.PresenceState_PRESENCE_STATE_BUSY {
		t.Fatalf("bob watches alice before the block: %v, want BUSY", p["alice"])
	}

	if f := alice.MustDo("", &pb.BlockUser{UserId: "alice"}); f.GetError() == nil {
		wantRefused(t, alice, f, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT) // not oneself
	} else if f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("blocking oneself: %v, want INVALID_ARGUMENT", f)
	}
	blocked := laptop.MustDo("", &pb.BlockUser{UserId: "bob"}).GetAccepted()
	if blocked.GetConversationId() != schemas.UserStreamID("alice") {
		t.Fatalf("BlockUser accepted for %q, want the user stream", blocked.GetConversationId())
	}
	accepted(t, laptop.MustDo("", &pb.BlockUser{UserId: "bob"}))              // blocked already: no event
	second := laptop.MustDo("", &pb.BlockUser{UserId: "carol"}).GetAccepted() // before any direct conversation
	ev := alice.WaitEvent("the block on alice's stream", func(e *pb.Event) bool { return e.GetCommandId() == blocked.GetCommandId() })
	if ev.GetUserBlocked().GetUserId() != "bob" || ev.GetConversationId() != schemas.UserStreamID("alice") {
		t.Fatalf("the block arrived as %v", ev)
	}
	// The block was decided with the DirectBlock it appends to the direct
	// conversation, in one transaction: a command appended from here is
	// decided after it.
	alice.WaitEvent("the second block", func(e *pb.Event) bool { return e.GetCommandId() == second.GetCommandId() })
	wantRefused(t, bob, bob.MustDo(dm, send("b2", "still there?")), pb.ErrorCode_ERROR_CODE_BLOCKED)
	wantRefused(t, alice, alice.MustDo(dm, send("a1", "and me?")), pb.ErrorCode_ERROR_CODE_BLOCKED)
	cdm := accepted(t, carol.MustDo("", direct("alice"))) // created after the block: allowed
	wantRefused(t, carol, carol.MustDo(cdm, send("c1", "hello")), pb.ErrorCode_ERROR_CODE_BLOCKED)
	accepted(t, bob.MustDo(g, send("g1", "groups are not direct messages")))
	alice.WaitEvent("bob's group message", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "g1" })
	// Presence: bob no longer sees alice (the gateway honours a block within
	// its cache bound).
	testenv.Eventually(t, time.Minute, func() string {
		if p := watch(t, bob, "alice"); p["alice"].GetState() != pb.PresenceState_PRESENCE_STATE_OFFLINE {
			return fmt.Sprintf("bob watches alice after the block: %v, want OFFLINE", p["alice"])
		}
		return ""
	})
	testenv.Eventually(t, time.Minute, func() string {
		var st settings
		if code := api(t, sys, "alice", "/v1/me/settings", &st); code != 200 {
			return fmt.Sprintf("settings: %d", code)
		}
		var got []string
		for _, b := range st.Blocks {
			got = append(got, b.UserID)
		}
		if !slices.Equal(got, []string{"bob", "carol"}) {
			return fmt.Sprintf("alice's blocks %v, want [bob carol]", got)
		}
		return ""
	})

	// Unblock: messages flow again.
	unblock := alice.MustDo("", &pb.UnblockUser{UserId: "bob"}).GetAccepted()
	accepted(t, alice.MustDo("", &pb.UnblockUser{UserId: "bob"})) // not blocked: no event
	alice.WaitEvent("the unblock", func(e *pb.Event) bool { return e.GetCommandId() == unblock.GetCommandId() })
	id := bob.MustDo(dm, send("b3", "back")).GetAccepted().GetCommandId()
	if e := bob.WaitEvent("the answer to "+id, func(e *pb.Event) bool { return e.GetCommandId() == id }); e.GetMessageSent() == nil {
		t.Fatalf("bob's send after the unblock: %v, want MessageSent", e)
	}
	wantRefused(t, carol, carol.MustDo(cdm, send("c2", "and me?")), pb.ErrorCode_ERROR_CODE_BLOCKED)
	var kinds []string
	for _, e := range userEvents(t, laptop, "alice", func(e *pb.Event) bool { return e.GetUserUnblocked() != nil }) {
		kinds = append(kinds, describeUser(e, nil))
	}
	if !slices.Equal(kinds, []string{"blocked bob", "blocked carol", "unblocked bob"}) {
		t.Fatalf("alice's laptop saw %v on her stream", kinds)
	}
}

// TestE2EForwardAndReplies: a member forwards a message into another of
// its conversations, whose members get it with its origin; a retry acts
// once; forwarding from a conversation one is not in, into one one is not
// in, a recalled message, or into a blocked direct conversation is refused;
// a message's replies are listed by the message they answer.
func TestE2EForwardAndReplies(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice := connect(t, sys, 0, "alice", "phone")
	laptop := connect(t, sys, 1, "alice", "laptop")
	bob := connect(t, sys, 1, "bob", "phone")
	carol := connect(t, sys, 0, "carol", "phone")
	dave := connect(t, sys, 1, "dave", "phone")
	src := accepted(t, bob.MustDo("", group("source", "alice")))
	dst := accepted(t, alice.MustDo("", group("target", "carol")))
	other := accepted(t, dave.MustDo("", group("not alice's", "carol")))
	accepted(t, bob.MustDo(src, send("s1", "the plan")))                                           // 1
	accepted(t, bob.MustDo(src, &pb.EditMessage{Seq: 1, Text: "the plan, v2", ClientMsgId: "e1"})) // edit
	accepted(t, alice.MustDo(src, &pb.SendMessage{ClientMsgId: "s2", Text: "ok", ReplyToSeq: 1}))  // 2
	accepted(t, bob.MustDo(src, &pb.SendMessage{ClientMsgId: "s3", Text: "good", ReplyToSeq: 1}))  // 3
	accepted(t, bob.MustDo(src, send("s4", "oops")))                                               // 4
	accepted(t, bob.MustDo(src, &pb.RecallMessage{Seq: 4}))
	alice.WaitEvent("the recall", func(e *pb.Event) bool { return e.GetMessageRecalled() != nil })
	carol.WaitEvent("the target", func(e *pb.Event) bool { return e.GetConversationId() == dst })

	// The gateway reads what it forwards from the views (a device forwards
	// what it shows): wait until they have the edit and the recall.
	testenv.Eventually(t, time.Minute, func() string {
		h, _ := allHistory(t, sys, "alice", src)
		if len(h.Messages) != 4 || h.Messages[0].Text != "the plan, v2" || h.Messages[3].Text != "" {
			return fmt.Sprintf("history of the source: %+v", h.Messages)
		}
		return ""
	})
	fwd := &pb.ForwardMessage{Seq: 1, TargetConversationId: dst, ClientMsgId: "f1"}
	first := laptop.MustDo(src, fwd).GetAccepted().GetCommandId()
	sent := carol.WaitEvent("the forwarded message", func(e *pb.Event) bool { return e.GetCommandId() == first })
	if sent.GetMessageSent().GetText() != "the plan, v2" {
		t.Fatalf("carol got %v, want the edited text", sent)
	}
	ms := sent.GetMessageSent()
	if o := ms.GetForwardedFrom(); sent.GetConversationId() != dst || sent.GetActorUserId() != "alice" ||
		o.GetConversationId() != src || o.GetSeq() != 1 || o.GetSenderUserId() != "bob" || o.GetSentAt() == nil {
		t.Fatalf("the forward arrived as %v", sent)
	}
	retry := laptop.MustDo(src, fwd).GetAccepted().GetCommandId()
	if d := laptop.WaitEvent("the retried forward", func(e *pb.Event) bool { return e.GetCommandId() == retry }).GetMessageDeduplicated(); d.GetOriginalSeq() != sent.GetSeq() {
		t.Fatalf("retried forward answered %v, want MessageDeduplicated of seq %d", d, sent.GetSeq())
	}
	if f := alice.MustDo(src, &pb.ForwardMessage{Seq: 1, TargetConversationId: dst, ClientMsgId: "f-text", Text: "forged"}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("a forward naming its own text: %v, want INVALID_ARGUMENT", f)
	}
	// Not in the source: refused before anything is read.
	if f := dave.MustDo(src, &pb.ForwardMessage{Seq: 1, TargetConversationId: other, ClientMsgId: "fd"}); f.GetError() != nil {
		if f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
			t.Fatalf("dave forwarding from a group he is not in: %v, want NOT_MEMBER", f)
		}
	} else {
		wantRefused(t, dave, f, pb.ErrorCode_ERROR_CODE_NOT_MEMBER)
	}
	// Not in the target: the target's decider refuses.
	wantRefused(t, alice, alice.MustDo(src, &pb.ForwardMessage{Seq: 1, TargetConversationId: other, ClientMsgId: "fo"}), pb.ErrorCode_ERROR_CODE_NOT_MEMBER)
	if f := alice.MustDo(src, &pb.ForwardMessage{Seq: 4, TargetConversationId: dst, ClientMsgId: "fr"}); f.GetError() != nil {
		if f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED {
			t.Fatalf("forwarding a recalled message: %v, want MESSAGE_RECALLED", f)
		}
	} else {
		wantRefused(t, alice, f, pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED)
	}
	// Into a direct conversation with a block.
	dm := accepted(t, carol.MustDo("", direct("alice")))
	block := carol.MustDo("", &pb.BlockUser{UserId: "alice"}).GetAccepted().GetCommandId()
	carol.WaitEvent("carol's block", func(e *pb.Event) bool { return e.GetCommandId() == block })
	wantRefused(t, alice, alice.MustDo(src, &pb.ForwardMessage{Seq: 1, TargetConversationId: dm, ClientMsgId: "fb"}), pb.ErrorCode_ERROR_CODE_BLOCKED)

	// Query: the forward's origin in history; replies by the message.
	testenv.Eventually(t, time.Minute, func() string {
		var h struct {
			Messages []struct {
				Seq           int64  `json:"seq"`
				Text          string `json:"text"`
				ForwardedFrom *struct {
					ConversationID string `json:"conversation_id"`
					Seq            int64  `json:"seq"`
					SenderUserID   string `json:"sender_user_id"`
				} `json:"forwarded_from"`
			} `json:"messages"`
		}
		if code := api(t, sys, "carol", "/v1/conversations/"+dst+"/messages?after=0", &h); code != 200 {
			return fmt.Sprintf("history: %d", code)
		}
		found := false
		for _, m := range h.Messages {
			if o := m.ForwardedFrom; o != nil {
				found = o.ConversationID == src && o.Seq == 1 && o.SenderUserID == "bob" && m.Text == "the plan, v2"
			}
		}
		if !found {
			return fmt.Sprintf("carol's history of the target: %+v, want the forward with its origin", h.Messages)
		}
		var r struct {
			Replies []struct {
				Seq int64 `json:"seq"`
			} `json:"replies"`
		}
		if code := api(t, sys, "alice", "/v1/conversations/"+src+"/messages/1/replies", &r); code != 200 {
			return fmt.Sprintf("replies: %d", code)
		}
		var seqs []int64
		for _, m := range r.Replies {
			seqs = append(seqs, m.Seq)
		}
		if !slices.Equal(seqs, []int64{2, 3}) {
			return fmt.Sprintf("replies to 1: %v, want [2 3]", seqs)
		}
		return ""
	})
	if code := api(t, sys, "carol", "/v1/conversations/"+src+"/messages/1/replies", nil); code != 403 && code != 404 {
		t.Fatalf("replies for a non-member: status %d, want 403 or 404", code)
	}

	// A thread deeper than one level: replies to replies are listed by
	// their root with thread=true, each naming its parent.
	accepted(t, bob.MustDo(src, &pb.SendMessage{ClientMsgId: "s5", Text: "why?", ReplyToSeq: 2}))      // 5
	accepted(t, alice.MustDo(src, &pb.SendMessage{ClientMsgId: "s6", Text: "because", ReplyToSeq: 5})) // 6
	accepted(t, bob.MustDo(src, send("s7", "unrelated")))                                              // 7
	testenv.Eventually(t, time.Minute, func() string {
		var r struct {
			Thread  bool `json:"thread"`
			Replies []struct {
				Seq     int64 `json:"seq"`
				ReplyTo struct {
					Seq int64 `json:"seq"`
				} `json:"reply_to"`
			} `json:"replies"`
			HasMore   bool  `json:"has_more"`
			NextAfter int64 `json:"next_after"`
		}
		var got []string
		for after := int64(0); ; {
			if code := api(t, sys, "alice", fmt.Sprintf("/v1/conversations/%s/messages/1/replies?thread=true&limit=2&after=%d", src, after), &r); code != 200 || !r.Thread {
				return fmt.Sprintf("thread: %d %+v", code, r)
			}
			for _, m := range r.Replies {
				got = append(got, fmt.Sprintf("%d<-%d", m.Seq, m.ReplyTo.Seq))
			}
			if !r.HasMore {
				break
			}
			after = r.NextAfter
		}
		if want := []string{"2<-1", "3<-1", "5<-2", "6<-5"}; !slices.Equal(got, want) {
			return fmt.Sprintf("the thread of 1: %v, want %v", got, want)
		}
		return ""
	})
}
