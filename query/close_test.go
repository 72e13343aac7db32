package query

import (
	"net/http"
	"testing"

	parleyv1 "github.com/parley-im/parley/schemas/parleyv1"
)

// TestClosedAndDeleted: a closed group is served with its closing state
// (conversation and inbox); a deleted one leaves the inbox and the unread
// totals, and every conversation endpoint answers its members 404
// CONVERSATION_DELETED, anyone else 403 NOT_MEMBER.
func TestClosedAndDeleted(t *testing.T) {
	f := newFixture(t)
	closed, deleted := gid("closed"), gid("deleted")
	created := func() *parleyv1.Event {
		return &parleyv1.Event{ActorUserId: "alice", Body: &parleyv1.Event_ConversationCreated{ConversationCreated: &parleyv1.ConversationCreated{
			Kind: parleyv1.ConversationKind_CONVERSATION_KIND_GROUP, Title: "t", MemberUserIds: []string{"alice", "bob"}}}}
	}
	sent := func() *parleyv1.Event {
		return &parleyv1.Event{Seq: 1, ActorUserId: "alice", Body: &parleyv1.Event_MessageSent{MessageSent: &parleyv1.MessageSent{
			ClientMsgId: "m1", Text: "hello", ContentType: "text/plain"}}}
	}
	f.project(closed, created(), sent(), &parleyv1.Event{ActorUserId: "ops", ActorService: "ops",
		Body: &parleyv1.Event_ConversationClosed{ConversationClosed: &parleyv1.ConversationClosed{Reason: "done"}}})
	f.project(deleted, created(), sent(), &parleyv1.Event{ActorUserId: "ops", ActorService: "ops",
		Body: &parleyv1.Event_ConversationDeleted{ConversationDeleted: &parleyv1.ConversationDeleted{MemberUserIds: []string{"alice", "bob"}}}})

	var c conversationView
	f.getJSON("bob", "/v1/conversations/"+closed, &c)
	if !c.Closed || c.ClosedBy != "ops" || c.ClosedReason != "done" || !c.ClosedAt.Equal(t0.Add(3e9)) || len(c.Members) != 2 {
		t.Fatalf("closed conversation: %+v", c)
	}
	var in inboxPage
	f.getJSON("bob", "/v1/inbox", &in)
	if len(in.Conversations) != 1 || in.Conversations[0].ConversationID != closed || !in.Conversations[0].Closed || in.Conversations[0].Unread != 1 {
		t.Fatalf("bob's inbox: %+v", in)
	}
	var u unreadTotals
	f.getJSON("bob", "/v1/unread", &u)
	if u.Total != 1 || u.Conversations != 1 {
		t.Fatalf("bob's unread: %+v (the deleted group's message counted?)", u)
	}
	var h messagePage
	f.getJSON("bob", "/v1/conversations/"+closed+"/messages", &h)
	if len(h.Messages) != 1 {
		t.Fatalf("history of the closed group: %+v", h)
	}
	for _, p := range []string{"", "/messages", "/messages/1/versions", "/messages/1/replies", "/receipts", "/pins", "/mentions", "/invites", "/join-requests"} {
		f.wantError(f.token("bob"), "/v1/conversations/"+deleted+p, http.StatusNotFound, codeDeleted)
		f.wantError(f.token("mallory"), "/v1/conversations/"+deleted+p, http.StatusForbidden, codeNotMember)
	}
}
