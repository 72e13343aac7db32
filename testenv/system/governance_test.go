package system_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// describeGovernance names the events of the governance test compactly.
func describeGovernance(e *pb.Event) string {
	switch b := e.GetBody().(type) {
	case *pb.Event_MemberRoleChanged:
		return fmt.Sprintf("role %s %s by %s", b.MemberRoleChanged.GetUserId(),
			strings.TrimPrefix(b.MemberRoleChanged.GetRole().String(), "MEMBER_ROLE_"), e.GetActorUserId())
	case *pb.Event_GroupSettingsChanged:
		return fmt.Sprintf("settings by %s: %v", e.GetActorUserId(), b.GroupSettingsChanged.GetSettings())
	case *pb.Event_MemberMuted:
		return fmt.Sprintf("muted %s by %s", b.MemberMuted.GetUserId(), e.GetActorUserId())
	case *pb.Event_MemberUnmuted:
		return fmt.Sprintf("unmuted %s by %s", b.MemberUnmuted.GetUserId(), e.GetActorUserId())
	case *pb.Event_MessagePinned:
		return fmt.Sprintf("pinned %d by %s", b.MessagePinned.GetMessageSeq(), e.GetActorUserId())
	case *pb.Event_OwnershipTransferred:
		return fmt.Sprintf("owner %s -> %s %s", b.OwnershipTransferred.GetFromUserId(), b.OwnershipTransferred.GetToUserId(),
			strings.TrimPrefix(b.OwnershipTransferred.GetReason().String(), "OWNERSHIP_TRANSFER_REASON_"))
	case *pb.Event_MemberRemoved:
		return fmt.Sprintf("removed %s by %s", b.MemberRemoved.GetUserId(), e.GetActorUserId())
	case *pb.Event_MessageSent:
		m := b.MessageSent
		out := fmt.Sprintf("sent %d %s", e.GetSeq(), e.GetActorUserId())
		if len(m.GetMentionUserIds()) > 0 {
			out += fmt.Sprintf(" @%v", m.GetMentionUserIds())
		}
		if m.GetMentionAll() {
			out += " @all"
		}
		return out
	}
	return describeAction(e)
}

// TestE2EGovernance: roles, settings, mutes, pins, mentions, removal
// rights and ownership — its transfer and its hand-over when the owner
// leaves — in a group on two gateways. A member who only watches sees
// every change in version order; each refusal reaches its actor with its
// code; query shows roles, settings, pins and exact mention counts.
func TestE2EGovernance(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice := connect(t, sys, 0, "alice", "phone")
	bob := connect(t, sys, 1, "bob", "phone")
	carol := connect(t, sys, 0, "carol", "phone")
	dave := connect(t, sys, 1, "dave", "phone")
	erin := connect(t, sys, 0, "erin", "phone") // watches only
	conv := accepted(t, alice.MustDo("", group("governed", "bob", "carol", "dave", "erin")))
	erin.WaitEvent("the group", func(e *pb.Event) bool { return e.GetConversationId() == conv })
	admins := pb.GroupPolicy_GROUP_POLICY_ADMINS
	yes, no := true, false

	accepted(t, alice.MustDo(conv, &pb.SetMemberRole{UserId: "bob", Role: pb.MemberRole_MEMBER_ROLE_ADMIN}))
	wantRefused(t, carol, carol.MustDo(conv, &pb.SetMemberRole{UserId: "dave", Role: pb.MemberRole_MEMBER_ROLE_ADMIN}), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	accepted(t, bob.MustDo(conv, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{AnnouncementOnly: &yes, WhoMayPin: &admins}}))
	wantRefused(t, carol, carol.MustDo(conv, send("c-quiet", "may I?")), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	accepted(t, bob.MustDo(conv, send("b1", "announcement"))) // 1
	accepted(t, bob.MustDo(conv, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{AnnouncementOnly: &no}}))
	accepted(t, bob.MustDo(conv, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{AnnouncementOnly: &no}})) // no change: nothing
	accepted(t, bob.MustDo(conv, &pb.MuteMember{UserId: "carol"}))
	wantRefused(t, carol, carol.MustDo(conv, send("c-muted", "hello?")), pb.ErrorCode_ERROR_CODE_MUTED)
	wantRefused(t, bob, bob.MustDo(conv, &pb.MuteMember{UserId: "alice"}), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	accepted(t, bob.MustDo(conv, &pb.UnmuteMember{UserId: "carol"}))
	wantRefused(t, carol, carol.MustDo(conv, &pb.PinMessage{Seq: 1}), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	accepted(t, bob.MustDo(conv, &pb.PinMessage{Seq: 1}))
	accepted(t, bob.MustDo(conv, &pb.PinMessage{Seq: 1}))                                                                                           // pinned already: nothing
	accepted(t, carol.MustDo(conv, &pb.SendMessage{ClientMsgId: "c1", Text: "@dave @erin look", MentionUserIds: []string{"dave", "erin", "dave"}})) // 2
	accepted(t, carol.MustDo(conv, &pb.SendMessage{ClientMsgId: "c2", Text: "@all standup", MentionAll: true}))                                     // 3
	wantRefused(t, dave, dave.MustDo(conv, &pb.SendMessage{ClientMsgId: "d1", Text: "@zed", MentionUserIds: []string{"zed"}}), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	wantRefused(t, bob, bob.MustDo(conv, &pb.RemoveMember{UserId: "alice"}), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	accepted(t, bob.MustDo(conv, &pb.RemoveMember{UserId: "dave"})) // 4
	wantRefused(t, bob, bob.MustDo(conv, &pb.TransferOwnership{UserId: "carol"}), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	accepted(t, alice.MustDo(conv, &pb.TransferOwnership{UserId: "carol"}))
	accepted(t, carol.MustDo(conv, &pb.LeaveConversation{})) // 5, and the hand-over
	accepted(t, bob.MustDo(conv, send("b2", "bye carol")))   // 6: the barrier

	want := []string{
		"role bob ADMIN by alice",
		"settings by bob: announcement_only:true who_may_pin:GROUP_POLICY_ADMINS",
		"sent 1 bob",
		"settings by bob: announcement_only:false",
		"muted carol by bob",
		"unmuted carol by bob",
		"pinned 1 by bob",
		"sent 2 carol @[dave erin]",
		"sent 3 carol @all",
		"removed dave by bob",
		"owner alice -> carol TRANSFERRED",
		"removed carol by carol",
		"owner carol -> alice OWNER_LEFT", // alice became an admin by the transfer, and joined first with bob: ties by id
		"sent 6 bob",
	}
	evs := until(t, erin, conv, func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "b2" })
	var got []string
	for i, e := range evs {
		got = append(got, strings.Join(strings.Fields(describeGovernance(e)), " "))
		if e.GetVersion() != evs[0].GetVersion()+int64(i) {
			t.Fatalf("erin: version %d at %d after %d: versions must be dense", e.GetVersion(), i, evs[0].GetVersion())
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("erin saw\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	checkGovernanceViews(t, sys, conv)
}

// checkGovernanceViews: query shows the group's roles, owner, settings,
// pins and each member's exact mentions.
func checkGovernanceViews(t *testing.T, sys *system.System, conv string) {
	t.Helper()
	type view struct {
		LastSeq  int64  `json:"last_seq"`
		Title    string `json:"title"`
		Owner    string `json:"owner_user_id"`
		Settings struct {
			AnnouncementOnly bool   `json:"announcement_only"`
			WhoMayPin        string `json:"who_may_pin"`
			WhoMayAdd        string `json:"who_may_add"`
		} `json:"settings"`
		Members []struct {
			UserID string `json:"user_id"`
			Role   string `json:"role"`
			Muted  bool   `json:"muted"`
		} `json:"members"`
	}
	testenv.Eventually(t, time.Minute, func() string {
		var v view
		if code := api(t, sys, "erin", "/v1/conversations/"+conv, &v); code != 200 {
			return fmt.Sprintf("conversation: status %d", code)
		}
		var roles []string
		for _, m := range v.Members {
			roles = append(roles, fmt.Sprintf("%s %s muted=%v", m.UserID, m.Role, m.Muted))
		}
		got := fmt.Sprintf("last seq %d; owner %s; %v; announcement_only=%v who_may_pin=%s who_may_add=%s", v.LastSeq, v.Owner, roles,
			v.Settings.AnnouncementOnly, v.Settings.WhoMayPin, v.Settings.WhoMayAdd)
		want := "last seq 6; owner alice; [alice owner muted=false bob admin muted=false erin member muted=false]; announcement_only=false who_may_pin=admins who_may_add=members"
		if got != want {
			return fmt.Sprintf("conversation\n got %s\nwant %s", got, want)
		}
		return ""
	})
	var pins struct {
		Pins []struct {
			Seq      int64  `json:"seq"`
			PinnedBy string `json:"pinned_by"`
			Message  struct {
				Text string `json:"text"`
			} `json:"message"`
		} `json:"pins"`
	}
	// Pins, inbox and mentions are rows of their own: the conversation's
	// row being current does not make them so.
	testenv.Eventually(t, time.Minute, func() string {
		pins.Pins = nil
		if code := api(t, sys, "erin", "/v1/conversations/"+conv+"/pins", &pins); code != 200 ||
			fmt.Sprint(pins.Pins) != "[{1 bob {announcement}}]" {
			return fmt.Sprintf("pins: status %d, %v; want message 1, pinned by bob", code, pins.Pins)
		}
		return ""
	})
	// erin never read: both mentions (hers and @all) are unread; bob sent
	// after them, so his read mark is past them.
	var in struct {
		Conversations []struct {
			ConversationID string `json:"conversation_id"`
			UnreadMentions int64  `json:"unread_mentions"`
		} `json:"conversations"`
	}
	for user, want := range map[string]int64{"erin": 2, "bob": 0} {
		testenv.Eventually(t, time.Minute, func() string {
			in.Conversations = nil
			if code := api(t, sys, user, "/v1/inbox?limit=50", &in); code != 200 || len(in.Conversations) != 1 ||
				in.Conversations[0].UnreadMentions != want {
				return fmt.Sprintf("%s's inbox: status %d, %+v; want %d unread mentions", user, code, in.Conversations, want)
			}
			return ""
		})
	}
	var ms struct {
		Mentions []struct {
			Seq    int64  `json:"seq"`
			Sender string `json:"sender"`
			All    bool   `json:"all"`
		} `json:"mentions"`
	}
	testenv.Eventually(t, time.Minute, func() string {
		ms.Mentions = nil
		if code := api(t, sys, "erin", "/v1/conversations/"+conv+"/mentions?limit=10", &ms); code != 200 ||
			fmt.Sprint(ms.Mentions) != "[{3 carol true} {2 carol false}]" {
			return fmt.Sprintf("erin's mentions: status %d, %v; want @all at 3 and hers at 2, newest first", code, ms.Mentions)
		}
		return ""
	})
}
