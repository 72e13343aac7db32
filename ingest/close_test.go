package ingest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

const (
	closed      = "ConversationClosed@0"
	reopened    = "ConversationReopened@0"
	deleted     = "ConversationDeleted@0"
	rejClosed   = "Rejected:ERROR_CODE_CONVERSATION_CLOSED"
	rejDeleted  = "Rejected:ERROR_CODE_CONVERSATION_DELETED"
	rejExists   = "Rejected:ERROR_CODE_CONVERSATION_EXISTS"
	serviceName = "ops-key"
)

// byService is c as the admin API appends it: the key's id as the
// service principal and as the user.
func byService(c *pb.Command) *pb.Command {
	c.ServicePrincipal, c.UserId = serviceName, serviceName
	return c
}

func closeCmd(user, conv string) *pb.Command {
	return cmd(user, conv, &pb.CloseConversation{Reason: "archived"})
}

func reopenCmd(user, conv string) *pb.Command { return cmd(user, conv, &pb.ReopenConversation{}) }

func deleteCmd(user, conv string) *pb.Command {
	return cmd(user, conv, &pb.DeleteConversation{Reason: "legal"})
}

// TestDecideClose: who closes, reopens and deletes; what a closed and a
// deleted conversation still take; retries yield no event.
func TestDecideClose(t *testing.T) {
	g := "g:1"
	for _, tc := range []struct {
		name string
		cmds []*pb.Command
		want []string
	}{
		{"the owner closes; the members' changes are refused, marks and reads pass; reopen undoes it",
			[]*pb.Command{createGroup("bob", "carol"), send("bob", g, "m1"), closeCmd("alice", g),
				send("bob", g, "m2"), editCmd("bob", g, 1, "e1", "new"), reactCmd("carol", g, 1, "👍"), recallCmd("bob", g, 1),
				addCmd("alice", g, "dave"), removeCmd("alice", g, "carol"), leaveCmd("carol", g), pinCmd("alice", g, 1),
				roleCmd("alice", g, "bob", roleAdmin), settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String("x")}),
				inviteCmd("alice", g, "tok", 0, false, nil), joinCmd("erin", g, "tok"),
				cmd("carol", g, &pb.MarkRead{UpToSeq: 1}), cmd("carol", g, &pb.MarkDelivered{UpToSeq: 1}),
				reopenCmd("alice", g), send("bob", g, "m2")},
			[]string{created, "MessageSent@1", closed,
				rejClosed, rejClosed, rejClosed, rejClosed,
				rejClosed, rejClosed, rejClosed, rejClosed,
				rejClosed, rejClosed,
				rejClosed, rejClosed,
				"Read:carol:1",
				reopened, "MessageSent@2"}},
		{"a resend of a send accepted before the close is still its seq",
			[]*pb.Command{createGroup("bob"), send("bob", g, "m1"), closeCmd("alice", g), send("bob", g, "m1"), send("bob", g, "m2")},
			[]string{created, "MessageSent@1", closed, "Dedup->1", rejClosed}},
		{"closing a closed conversation and reopening an open one yield no event (a service is told NO_CHANGE)",
			[]*pb.Command{createGroup("bob"), reopenCmd("alice", g), closeCmd("alice", g), closeCmd("alice", g),
				byService(closeCmd("", g)), reopenCmd("alice", g), reopenCmd("alice", g)},
			[]string{created, closed, "Rejected:ERROR_CODE_NO_CHANGE", reopened}},
		{"only the owner closes a group, not an admin or a member, nor an outsider",
			[]*pb.Command{createGroup("bob", "carol"), roleCmd("alice", g, "bob", roleAdmin), closeCmd("bob", g), closeCmd("carol", g),
				closeCmd("mallory", g), closeCmd("alice", g), reopenCmd("bob", g)},
			[]string{created, "Role:bob:ADMIN", rejDenied, rejDenied, rejNotMember, closed, rejDenied}},
		{"a member does not close a direct conversation; a service does",
			[]*pb.Command{createDirect(), closeCmd("alice", direct), byService(closeCmd("", direct)), send("bob", direct, "m1"),
				byService(reopenCmd("", direct)), send("bob", direct, "m1")},
			[]string{created, rejUnsupported, closed, rejClosed, reopened, "MessageSent@1"}},
		{"a service closes, reopens and deletes a conversation it is no member of; an unknown one is not found",
			[]*pb.Command{byService(closeCmd("", "g:nope")), byService(deleteCmd("", "g:nope")), closeCmd("alice", "g:nope"),
				createGroup("bob"), byService(closeCmd("", g)), byService(reopenCmd("", g)), byService(deleteCmd("", g))},
			[]string{rejNotFound, rejNotFound, rejNotMember, created, closed, reopened, deleted}},
		{"only a service deletes",
			[]*pb.Command{createGroup("bob"), deleteCmd("alice", g), deleteCmd("bob", g), send("bob", g, "m1")},
			[]string{created, rejDenied, rejDenied, "MessageSent@1"}},
		{"a deleted conversation takes nothing more, not even a mark, a resend answers its seq, its id is taken",
			[]*pb.Command{createGroup("bob"), send("bob", g, "m1"), byService(deleteCmd("", g)),
				send("bob", g, "m2"), send("bob", g, "m1"), cmd("bob", g, &pb.MarkRead{UpToSeq: 1}), closeCmd("alice", g),
				byService(closeCmd("", g)), byService(reopenCmd("", g)), byService(deleteCmd("", g)), deleteCmd("alice", g),
				forwardCmd("bob", g, 1, direct, "f1", "bob"), joinCmd("erin", g, ""), createGroup("bob"), send("mallory", g, "x")},
			[]string{created, "MessageSent@1", deleted,
				rejDeleted, "Dedup->1", rejDeleted, rejDeleted,
				rejDeleted, rejDeleted, "Rejected:ERROR_CODE_NO_CHANGE", rejDeleted,
				rejDeleted, rejDeleted, rejDeleted, rejNotMember}},
		{"a closed conversation is forwarded from",
			[]*pb.Command{createGroup("bob"), send("bob", g, "m1"), closeCmd("alice", g), forwardCmd("bob", g, 1, direct, "f1", "bob")},
			[]string{created, "MessageSent@1", closed, "MessageForwarded@0"}},
		{"a reason is bounded",
			[]*pb.Command{createGroup("bob"), cmd("alice", g, &pb.CloseConversation{Reason: strings.Repeat("x", schemas.MaxCloseReasonBytes+1)}),
				byService(cmd("", g, &pb.DeleteConversation{Reason: "\xff"}))},
			[]string{created, rejInvalid, rejInvalid}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, evs := run(t, Limits{}, tc.cmds...)
			got := summary(evs)
			want := slices.DeleteFunc(slices.Clone(tc.want), func(s string) bool { return s == "" })
			if !slices.Equal(got, want) {
				t.Fatalf("events\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestDecideCloseEvents: what the events carry — the reason, the service
// that acted, a version each and no seq; a deletion names the final
// members.
func TestDecideCloseEvents(t *testing.T) {
	g := "g:1"
	st, evs := run(t, Limits{}, createGroup("bob", "carol"), leaveCmd("carol", g), closeCmd("alice", g),
		byService(reopenCmd("", g)), byService(deleteCmd("", g)))
	if len(evs) != 5 {
		t.Fatalf("events: %v", summary(evs))
	}
	c, r, d := evs[2], evs[3], evs[4]
	if c.GetConversationClosed().GetReason() != "archived" || c.GetActorUserId() != "alice" || c.GetActorService() != "" ||
		c.GetSeq() != 0 || c.GetVersion() != 3 {
		t.Fatalf("closed: %v", c)
	}
	if r.GetConversationReopened() == nil || r.GetActorService() != serviceName || r.GetActorUserId() != serviceName || r.GetVersion() != 4 {
		t.Fatalf("reopened: %v", r)
	}
	dd := d.GetConversationDeleted()
	if dd.GetReason() != "legal" || !slices.Equal(dd.GetMemberUserIds(), []string{"alice", "bob"}) || d.GetVersion() != 5 || d.GetSeq() != 0 {
		t.Fatalf("deleted: %v", d)
	}
	if !st.deleted || st.closed || st.lastVersion != 5 {
		t.Fatalf("state: deleted %v closed %v version %d", st.deleted, st.closed, st.lastVersion)
	}
}

// TestCloseRestore: a closed and a deleted conversation are restored from
// the changelog as they were, and decide the same after the restore as
// live; reopening rewrites the header record.
func TestCloseRestore(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	g, h := "g:1", "g:2"
	var got []string
	for _, c := range []*pb.Command{
		createGroup("bob"),
		cmd("alice", h, &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, MemberUserIds: []string{"bob"}}),
		send("bob", g, "m1"),
		closeCmd("alice", g),
		send("bob", h, "n1"),
		byService(closeCmd("", h)),
		byService(reopenCmd("", h)),
		byService(deleteCmd("", h)),
	} {
		at = at.Add(time.Second)
		got = append(got, summary(r.do(c, at))...)
	}
	want := []string{created, created, "MessageSent@1", closed, "MessageSent@1", closed, reopened, deleted}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	restored := r.restore(at)
	for _, id := range []string{g, h} {
		l, rs := r.ps.convs[id], restored.convs[id]
		if rs == nil || l.closed != rs.closed || l.deleted != rs.deleted || l.lastVersion != rs.lastVersion {
			t.Fatalf("%s restored %+v, live %+v", id, rs, l)
		}
	}
	probes := []*pb.Command{
		send("bob", g, "m2"),
		cmd("alice", g, &pb.MarkRead{UpToSeq: 1}),
		send("bob", h, "n2"),
		createGroup("bob"),
		reopenCmd("alice", g),
		send("bob", g, "m2"),
		byService(deleteCmd("", h)),
	}
	decideAll := func(ps *partState) []string {
		rr := &partRun{t: t, l: r.l, ps: ps}
		var out []string
		for i, p := range probes {
			out = append(out, summary(rr.do(proto.Clone(p).(*pb.Command), at.Add(time.Duration(i+1)*time.Millisecond)))...)
		}
		return out
	}
	fromRestored, fromLive := decideAll(restored), decideAll(r.ps)
	want = []string{rejClosed, "Read:alice:1", rejDeleted, rejExists, reopened, "MessageSent@2", "Rejected:ERROR_CODE_NO_CHANGE"}
	if !slices.Equal(fromRestored, want) || !slices.Equal(fromLive, want) {
		t.Fatalf("probes\n restored %v\n live     %v\n want     %v", fromRestored, fromLive, want)
	}
}
