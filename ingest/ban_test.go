package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// banCmd is a service's BanUser of user (keyed by user's stream).
func banCmd(user string, until time.Time, reason string) *pb.Command {
	b := &pb.BanUser{Reason: reason}
	if !until.IsZero() {
		b.Until = timestamppb.New(until)
	}
	c := cmd(user, schemas.UserStreamID(user), b)
	c.ServicePrincipal = "ops"
	return c
}

func unbanCmd(user string) *pb.Command {
	c := cmd(user, schemas.UserStreamID(user), &pb.UnbanUser{})
	c.ServicePrincipal = "ops"
	return c
}

// TestDecideBans checks the ban rules on the banned user's stream: only a
// service bans, a valid reason and a future end, the same ban again and an
// unban of a user not banned change nothing (NO_CHANGE to the service), and the events share the
// stream's versions and carry the service.
func TestDecideBans(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	device := banCmd("alice", time.Time{}, "spam")
	device.ServicePrincipal = ""
	wrongStream := banCmd("alice", time.Time{}, "")
	wrongStream.ConversationId = streamBob
	for _, tc := range []struct {
		name string
		cmds []*pb.Command
		want []string
	}{
		{"ban, the same again, a new end, unban, unban again",
			[]*pb.Command{banCmd("alice", time.Time{}, "spam"), banCmd("alice", time.Time{}, "spam"),
				banCmd("alice", now.Add(time.Hour), "spam"), unbanCmd("alice"), unbanCmd("alice")},
			[]string{"uA:UserBanned@0/v1", "uA:" + rejNoChange + "/v0", "uA:UserBanned@0/v2", "uA:UserUnbanned@0/v3", "uA:" + rejNoChange + "/v0"}},
		{"only a service, on the user's own stream",
			[]*pb.Command{device, wrongStream, cmd("alice", g1, &pb.BanUser{})},
			[]string{"uA:" + rejDenied + "/v0", "uB:" + rejDenied + "/v0", "g1:" + rejInvalid + "/v0"}},
		{"a reason too long or not UTF-8, an end not ahead",
			[]*pb.Command{banCmd("alice", time.Time{}, strings.Repeat("x", 513)), banCmd("alice", time.Time{}, "\xff"),
				banCmd("alice", now, ""), banCmd("alice", now.Add(-time.Hour), ""), banCmd("alice", time.Time{}, strings.Repeat("x", 512))},
			[]string{"uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0",
				"uA:UserBanned@0/v1"}},
		{"bans share the stream's versions with its other events",
			[]*pb.Command{blockCmd("alice", "bob"), banCmd("alice", time.Time{}, ""), unbanCmd("alice")},
			[]string{"uA:UserBlocked@0/v1", "dAB:DirectBlockChanged@0/v0", "uA:UserBanned@0/v2", "uA:UserUnbanned@0/v3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreams(t, Limits{})
			evs := s.do(tc.cmds...)
			if got := streamSummary(evs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			for _, ev := range evs {
				if ev.GetUserBanned() != nil || ev.GetUserUnbanned() != nil {
					if ev.GetActorService() != "ops" || ev.GetActorUserId() != "alice" {
						t.Errorf("%s: actor %q service %q, want alice and ops", schemas.EventType(ev), ev.GetActorUserId(), ev.GetActorService())
					}
				}
			}
		})
	}
}

// TestBanEventCarries checks a UserBanned's body and its record on the bans
// topic: the event itself keyed by the user, a tombstone for the unban.
func TestBanEventCarries(t *testing.T) {
	until := time.Unix(1_700_003_600, 0)
	s := newStreams(t, Limits{})
	evs := s.do(banCmd("alice", until, "spam"), unbanCmd("alice"))
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	user, ban, ok := BanOf(evs[0])
	if !ok || user != "alice" || !ban.Until.Equal(until) || ban.Reason != "spam" || ban.By != "ops" {
		t.Fatalf("BanOf = %q %+v %v", user, ban, ok)
	}
	if ban.Holds(until) || !ban.Holds(until.Add(-time.Millisecond)) || !(Ban{}).Holds(until) {
		t.Error("Holds: a ban holds before its end, and a ban without one always")
	}
	if k, v, ok := banRecord(evs[0], []byte("ev")); !ok || k != "alice" || string(v) != "ev" {
		t.Errorf("ban record %q %q %v", k, v, ok)
	}
	if k, v, ok := banRecord(evs[1], []byte("ev")); !ok || k != "alice" || v != nil {
		t.Errorf("unban record %q %q %v, want alice's tombstone", k, v, ok)
	}
	if _, _, ok := banRecord(&pb.Event{Body: &pb.Event_UserBlocked{UserBlocked: &pb.UserBlocked{}}}, nil); ok {
		t.Error("a UserBlocked has a ban record")
	}
}

// TestRefuseBanned checks which commands a ban refuses: every command of
// the banned user while it holds, one USER_BANNED to the sender, but not
// its own unban, an attachment expiry or a block's second step.
func TestRefuseBanned(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	forGood, suspended := Ban{Reason: "spam"}, Ban{Until: now.Add(time.Hour)}
	s := send("alice", g1, "m1")
	for _, tc := range []struct {
		name     string
		c        *pb.Command
		ban      Ban
		held     bool
		at       time.Time
		refused  bool
		wantText string
	}{
		{"a send while banned", s, forGood, true, now, true, "alice is banned: spam"},
		{"a send while suspended", s, suspended, true, now, true, "alice is banned until 2023-11-14T23:13:20Z"},
		{"a send after the suspension", s, suspended, true, now.Add(time.Hour), false, ""},
		{"a send of a user not banned", s, Ban{}, false, now, false, ""},
		{"the unban", unbanCmd("alice"), forGood, true, now, false, ""},
		{"a ban again", banCmd("alice", time.Time{}, "x"), forGood, true, now, false, ""},
		{"an expiry", cmd("alice", g1, &pb.ExpireAttachment{}), forGood, true, now, false, ""},
		{"a block's second step", cmd("alice", direct, &pb.DirectBlock{}), forGood, true, now, false, ""},
		{"a per-user command", blockCmd("alice", "bob"), forGood, true, now, true, "alice is banned: spam"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := refuseBanned(tc.c, tc.ban, tc.held, now, tc.at)
			if !tc.refused {
				if evs != nil {
					t.Fatalf("refused: %v", summary(evs))
				}
				return
			}
			if len(evs) != 1 || evs[0].GetCommandRejected().GetCode() != pb.ErrorCode_ERROR_CODE_USER_BANNED ||
				evs[0].GetCommandId() != tc.c.GetCommandId() || evs[0].GetConversationId() != tc.c.GetConversationId() ||
				evs[0].GetVersion() != 0 || evs[0].GetCommandRejected().GetMessage() != tc.wantText {
				t.Fatalf("refusal %v", evs)
			}
			if tc.c.GetSendMessage() != nil && evs[0].GetCommandRejected().GetClientMsgId() != "m1" {
				t.Error("a refused send's rejection names its client_msg_id")
			}
		})
	}
}

// TestBansRestore checks a ban survives a restore from the changelog: the
// same ban again is still no event, an unban is the next version.
func TestBansRestore(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	r.do(banCmd("alice", at.Add(time.Hour), "spam"), at)
	r.do(banCmd("bob", time.Time{}, ""), at)
	r.do(unbanCmd("bob"), at)
	r.ps = r.restore(at)
	if b := r.ps.convs[streamAlice].ban; b == nil || b.until != at.Add(time.Hour).UnixMilli() || b.reason != "spam" {
		t.Fatalf("alice's restored ban %+v", b)
	}
	if b := r.ps.convs[streamBob].ban; b != nil {
		t.Fatalf("bob's ban restored after its unban: %+v", b)
	}
	evs := r.do(banCmd("alice", at.Add(time.Hour), "spam"), at)
	evs = append(evs, r.do(unbanCmd("alice"), at)...)
	evs = append(evs, r.do(unbanCmd("bob"), at)...)
	if got := fmt.Sprint(streamSummary(evs)); got != "[uA:"+rejNoChange+"/v0 uA:UserUnbanned@0/v2 uB:"+rejNoChange+"/v0]" {
		t.Fatalf("after restore %s", got)
	}
}

// TestDecideServicePrincipal checks a service's command is decided like a
// device's and every event of it names the service.
func TestDecideServicePrincipal(t *testing.T) {
	c := createGroup("bob")
	c.ServicePrincipal = "ops"
	sm := send("alice", "g:1", "m1")
	sm.ServicePrincipal = "ops"
	_, evs := run(t, Limits{}, c, sm, send("bob", "g:1", "m2"))
	if got := fmt.Sprint(summary(evs)); !strings.Contains(got, "MessageSent@1") {
		t.Fatalf("events %s", got)
	}
	for _, ev := range evs {
		want := "ops"
		if ev.GetActorUserId() == "bob" {
			want = ""
		}
		if ev.GetActorService() != want {
			t.Errorf("%s by %s: actor_service %q, want %q", schemas.EventType(ev), ev.GetActorUserId(), ev.GetActorService(), want)
		}
	}
	rej := cmd("alice", "g:1", &pb.SendMessage{})
	rej.ServicePrincipal = "ops"
	_, evs = run(t, Limits{}, createGroup(), rej)
	if evs[len(evs)-1].GetCommandRejected() == nil || evs[len(evs)-1].GetActorService() != "ops" {
		t.Errorf("a service's refusal %v", evs[len(evs)-1])
	}
}
