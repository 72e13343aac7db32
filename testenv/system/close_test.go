package system_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/projector/replay"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// TestE2ECloseDelete: a service closes a group over the admin API (a retry
// answers repeated): a member's live device gets ConversationClosed, its
// send is refused CONVERSATION_CLOSED, a read mark still moves, query shows
// the group closed; the service reopens it and the send goes through; the
// group's owner closes and reopens it over the WebSocket, a member may
// not; the service deletes it: the devices get ConversationDeleted, the
// member's inbox and unread total drop it, query answers 404
// CONVERSATION_DELETED, its file is no longer served, the next command is
// refused CONVERSATION_DELETED;
// a device that was away resumes every one of these changes in order; the
// views rebuilt from the log equal the live ones, and replay verify finds
// nothing wrong.
func TestE2ECloseDelete(t *testing.T) {
	t.Parallel()
	ops, opsKey := adminKey(t, "ops", gateway.Scopes)
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sys, live := startWith(t, system.Options{Gateways: 2, GatewayAdminKeys: gateway.AdminKeys{Keys: []gateway.AdminKey{opsKey}},
		GatewayAttachments: gateway.Attachments{Store: store, StagingDir: t.TempDir()}})
	alice := connect(t, sys, 0, "alice", "phone")
	bob := connect(t, sys, 1, "bob", "phone")

	g := accepted(t, alice.MustDo("", &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: "Q3",
		MemberUserIds: []string{"bob"}}))
	bob.WaitEvent("the ConversationCreated", func(e *pb.Event) bool { return e.GetConversationId() == g && e.GetConversationCreated() != nil })
	// do sends body to g from c and returns the event that decides it.
	do := func(c *testenv.WSClient, body proto.Message) *pb.Event {
		t.Helper()
		a := c.MustDo(g, body).GetAccepted()
		if a == nil {
			t.Fatalf("%s: %T not accepted", c.Name(), body)
		}
		return c.WaitEvent(fmt.Sprintf("the outcome of %T", body), func(e *pb.Event) bool { return e.GetCommandId() == a.GetCommandId() })
	}
	rejectedWith := func(ev *pb.Event, code pb.ErrorCode) bool { return ev.GetCommandRejected().GetCode() == code }
	notes := []byte("Q3 notes: ship it.\n")
	up := upload(t, sys, "bob", g, "notes.txt", "text/plain", bytes.NewReader(notes), int64(len(notes)))
	if up.status != http.StatusCreated {
		t.Fatalf("upload: %d %v", up.status, up.err)
	}
	file := "/v1/conversations/" + g + "/attachments/" + up.att.GetAttachmentId()
	m1 := do(bob, &pb.SendMessage{ClientMsgId: "m1", Text: "draft ready", AttachmentIds: []string{up.att.GetAttachmentId()}})
	if m1.GetMessageSent() == nil {
		t.Fatalf("bob's first send: %v", m1)
	}
	since := m1.GetVersion() // bob's tablet was last here: it resumes from it at the end

	// The service closes the group.
	path := "/v1/admin/conversations/" + g
	status, closed, raw := adminDo(t, sys, 0, ops, "POST", path+"/close", "close-q3", map[string]any{"reason": "quarter over"})
	if status != http.StatusOK || closed.Event != schemas.TypeConversationClosed {
		t.Fatalf("close: %d %s", status, raw)
	}
	ev := bob.WaitEvent("the ConversationClosed", func(e *pb.Event) bool { return e.GetConversationId() == g && e.GetConversationClosed() != nil })
	if ev.GetActorService() != "ops" || ev.GetConversationClosed().GetReason() != "quarter over" || ev.GetSeq() != 0 {
		t.Fatalf("bob got %v", ev)
	}
	alice.WaitEvent("the ConversationClosed", func(e *pb.Event) bool { return e.GetConversationId() == g && e.GetConversationClosed() != nil })
	if status, again, raw := adminDo(t, sys, 1, ops, "POST", path+"/close", "close-q3", map[string]any{"reason": "quarter over"}); status != http.StatusOK ||
		!again.Repeated || again.Event != schemas.TypeConversationClosed {
		t.Fatalf("close again: %d %s", status, raw)
	}
	if ev := do(bob, &pb.SendMessage{ClientMsgId: "m2", Text: "one more"}); !rejectedWith(ev, pb.ErrorCode_ERROR_CODE_CONVERSATION_CLOSED) {
		t.Fatalf("bob's send in the closed group: %v", ev)
	}
	if ev := do(alice, &pb.MarkRead{UpToSeq: 1}); ev.GetReadUpTo().GetUpToSeq() != 1 {
		t.Fatalf("alice's read mark in the closed group: %v", ev)
	}
	testenv.Eventually(t, time.Minute, func() string {
		var c struct {
			Closed       bool   `json:"closed"`
			ClosedBy     string `json:"closed_by"`
			ClosedReason string `json:"closed_reason"`
			ClosedAt     string `json:"closed_at"`
		}
		if status := api(t, sys, "bob", "/v1/conversations/"+g, &c); status != http.StatusOK || !c.Closed || c.ClosedBy != "ops" ||
			c.ClosedReason != "quarter over" || c.ClosedAt == "" {
			return fmt.Sprintf("query: %d %+v", status, c)
		}
		var h history
		if status := api(t, sys, "bob", "/v1/conversations/"+g+"/messages", &h); status != http.StatusOK || len(h.Messages) != 1 {
			return fmt.Sprintf("history of the closed group: %d %+v", status, h)
		}
		if status, _, b := fetch(t, sys, "alice", file); status != http.StatusOK || !bytes.Equal(b, notes) {
			return fmt.Sprintf("the file of the closed group: %d %q", status, b)
		}
		return ""
	})

	// The service reopens it; bob sends.
	status, reopened, raw := adminDo(t, sys, 1, ops, "POST", path+"/reopen", "reopen-q3", nil)
	if status != http.StatusOK || reopened.Event != schemas.TypeConversationReopened {
		t.Fatalf("reopen: %d %s", status, raw)
	}
	bob.WaitEvent("the ConversationReopened", func(e *pb.Event) bool { return e.GetConversationId() == g && e.GetConversationReopened() != nil })
	if ev := do(bob, &pb.SendMessage{ClientMsgId: "m2", Text: "one more"}); ev.GetMessageSent().GetText() != "one more" || ev.GetSeq() != 2 {
		t.Fatalf("bob's send after the reopening: %v", ev)
	}

	// The owner closes it over the WebSocket; bob, a member, may not
	// reopen it; the owner does.
	if ev := do(alice, &pb.CloseConversation{Reason: "pause"}); ev.GetConversationClosed() == nil || ev.GetActorUserId() != "alice" || ev.GetActorService() != "" {
		t.Fatalf("alice's close: %v", ev)
	}
	bob.WaitEvent("alice's close", func(e *pb.Event) bool { return e.GetConversationId() == g && e.GetConversationClosed() != nil })
	if ev := do(bob, &pb.ReopenConversation{}); !rejectedWith(ev, pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED) {
		t.Fatalf("bob's reopen: %v", ev)
	}
	if ev := do(alice, &pb.ReopenConversation{}); ev.GetConversationReopened() == nil {
		t.Fatalf("alice's reopen: %v", ev)
	}
	bob.WaitEvent("alice's reopen", func(e *pb.Event) bool { return e.GetConversationId() == g && e.GetConversationReopened() != nil })
	if ev := do(alice, &pb.SendMessage{ClientMsgId: "a1", Text: "see you"}); ev.GetSeq() != 3 {
		t.Fatalf("alice's send: %v", ev)
	}
	testenv.Eventually(t, time.Minute, func() string {
		var u unread
		if status := api(t, sys, "bob", "/v1/unread", &u); status != http.StatusOK || u.Total != 1 {
			return fmt.Sprintf("bob's unread before the deletion: %d %+v", status, u)
		}
		return ""
	})

	// The service deletes it.
	status, deleted, raw := adminDo(t, sys, 0, ops, "DELETE", path+"?reason=retention", "delete-q3", nil)
	if status != http.StatusOK || deleted.Event != schemas.TypeConversationDeleted {
		t.Fatalf("delete: %d %s", status, raw)
	}
	ev = bob.WaitEvent("the ConversationDeleted", func(e *pb.Event) bool { return e.GetConversationId() == g && e.GetConversationDeleted() != nil })
	if d := ev.GetConversationDeleted(); d.GetReason() != "retention" || fmt.Sprint(d.GetMemberUserIds()) != "[alice bob]" || ev.GetActorService() != "ops" {
		t.Fatalf("bob got %v", ev)
	}
	alice.WaitEvent("the ConversationDeleted", func(e *pb.Event) bool { return e.GetConversationId() == g && e.GetConversationDeleted() != nil })
	if status, again, raw := adminDo(t, sys, 1, ops, "DELETE", path, "delete-q3", nil); status != http.StatusOK || !again.Repeated {
		t.Fatalf("delete again: %d %s", status, raw)
	}
	if ev := do(bob, &pb.SendMessage{ClientMsgId: "m3", Text: "hello?"}); !rejectedWith(ev, pb.ErrorCode_ERROR_CODE_CONVERSATION_DELETED) {
		t.Fatalf("bob's send after the deletion: %v", ev)
	}
	if ev := do(alice, &pb.ReopenConversation{}); !rejectedWith(ev, pb.ErrorCode_ERROR_CODE_CONVERSATION_DELETED) {
		t.Fatalf("alice's reopen after the deletion: %v", ev)
	}
	if status, got, raw := adminDo(t, sys, 0, ops, "POST", path+"/reopen", "", nil); status != http.StatusNotFound || got.Code != "ERROR_CODE_CONVERSATION_DELETED" {
		t.Fatalf("the service's reopen after the deletion: %d %s", status, raw)
	}
	testenv.Eventually(t, time.Minute, func() string {
		var in inbox
		if status := api(t, sys, "bob", "/v1/inbox", &in); status != http.StatusOK {
			return fmt.Sprintf("bob's inbox: %d", status)
		}
		for _, c := range in.Conversations {
			if c.ConversationID == g {
				return "bob's inbox still lists the deleted group"
			}
		}
		var u unread
		if status := api(t, sys, "bob", "/v1/unread", &u); status != http.StatusOK || u.Total != 0 {
			return fmt.Sprintf("bob's unread after the deletion: %d %+v", status, u)
		}
		for _, p := range []string{"", "/messages", "/receipts", "/pins"} {
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			if status := api(t, sys, "bob", "/v1/conversations/"+g+p, &e); status != http.StatusNotFound || e.Error.Code != "CONVERSATION_DELETED" {
				return fmt.Sprintf("query %s: %d %s", p, status, e.Error.Code)
			}
		}
		if status, _, b := fetch(t, sys, "alice", file); status != http.StatusNotFound || !strings.Contains(string(b), "ERROR_CODE_ATTACHMENT_NOT_FOUND") {
			return fmt.Sprintf("the file of the deleted group: %d %s", status, b)
		}
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if status := api(t, sys, "mallory", "/v1/conversations/"+g, &e); status != http.StatusForbidden || e.Error.Code != "NOT_MEMBER" {
			return fmt.Sprintf("query answered a non-member %d %s", status, e.Error.Code)
		}
		if status, _, raw := adminDo(t, sys, 1, ops, "GET", "/v1/admin/users/bob/conversations", "", nil); status != http.StatusOK ||
			strings.Contains(string(raw), g) {
			return fmt.Sprintf("the admin API lists bob's conversations: %d %s", status, raw)
		}
		return ""
	})

	// bob's tablet, away since his first message, resumes every change.
	tablet := connectResuming(t, sys, 0, "bob", "tablet")
	evs, resumed := resume(t, tablet, map[string]int64{g: since})
	var got []string
	for _, e := range evs {
		if e.GetConversationId() == g {
			got = append(got, schemas.EventType(e))
		}
	}
	want := []string{schemas.TypeConversationClosed, schemas.TypeReadUpTo, schemas.TypeConversationReopened, schemas.TypeMessageSent,
		schemas.TypeConversationClosed, schemas.TypeConversationReopened, schemas.TypeMessageSent, schemas.TypeConversationDeleted}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(resumed.GetFailed()) > 0 {
		t.Fatalf("tablet resumed %v (%v), want %v", got, resumed, want)
	}

	assertRebuildEqual(t, sys, live)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := replay.Verify(ctx, replay.Config{Seeds: testenv.Kafka(t).Seeds, Topics: sys.Topics, Hosts: live.Hosts, Keyspace: live.Keyspace},
		replay.VerifyOptions{Conversations: []string{g}})
	if err != nil || !rep.OK() {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("verify: %v\n%s", err, b.String())
	}
}
