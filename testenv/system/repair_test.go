package system_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// TestE2ERepairAfterLostRows: the views lose a conversation's messages and
// changes rows (TRUNCATE drops them without tombstones, as a crashed node
// that lost its unsynced commitlog would). A device's Resume meets the hole: that
// conversation is reported in Resumed.failed while the user's other one
// resumes, and the gateway asks for a repair. The repairer re-applies the
// conversation from the log, with no operator, and the next Resume is whole.
func TestE2ERepairAfterLostRows(t *testing.T) {
	sys, c := startWith(t, system.Options{GatewayFanout: gateway.Fanout{ResumeGapWait: time.Second}})
	alice := connect(t, sys, 0, "alice", "phone")
	lost := accepted(t, alice.MustDo("", direct("bob")))
	kept := accepted(t, alice.MustDo("", &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP,
		Title: "kept", MemberUserIds: []string{"bob"}}))
	for i := 1; i <= 5; i++ {
		if _, err := alice.Send(t.Context(), lost, send(fmt.Sprintf("l%d", i), "lost and found")); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 2*time.Minute, func() string {
		if h, code := allHistory(t, sys, "bob", lost); code != 200 || len(h.Messages) != 5 {
			return fmt.Sprintf("bob's history: status %d, %d items, want 5", code, len(h.Messages))
		}
		return ""
	})
	s := c.Session()
	defer s.Close()
	for _, table := range []string{"messages", "changes"} {
		if err := s.Query(fmt.Sprintf("TRUNCATE %s.%s", c.Keyspace, table)).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	if h, _ := allHistory(t, sys, "bob", lost); len(h.Messages) != 0 {
		t.Fatalf("%d rows left after TRUNCATE", len(h.Messages))
	}

	// The first Resume meets the hole (the group's changes are gone too;
	// both holes are repaired).
	bob := connectResuming(t, sys, 0, "bob", "laptop")
	_, resumed := resume(t, bob, map[string]int64{lost: 0, kept: 0})
	failed := map[string]bool{}
	for _, f := range resumed.GetFailed() {
		failed[f.GetConversationId()] = true
		if f.GetCode() != pb.ErrorCode_ERROR_CODE_UNAVAILABLE {
			t.Errorf("failure %v, want UNAVAILABLE", f)
		}
	}
	if !failed[lost] {
		t.Fatalf("resumed %v: the conversation with lost rows is not reported", resumed)
	}
	bob.Close()

	// Repaired from the log within a bounded time, with nobody asking but
	// the gateway.
	testenv.Eventually(t, 2*time.Minute, func() string {
		h, code := allHistory(t, sys, "bob", lost)
		if code != 200 || len(h.Messages) != 5 {
			return fmt.Sprintf("history after the repair: status %d, %d of 5 items", code, len(h.Messages))
		}
		for i, m := range h.Messages {
			if m.Seq != int64(i+1) || m.ClientMsgID != fmt.Sprintf("l%d", i+1) {
				return fmt.Sprintf("item %d: %+v", i, m)
			}
		}
		return ""
	})
	var evs []*pb.Event
	testenv.Eventually(t, time.Minute, func() string {
		d := connectResuming(t, sys, 0, "bob", "tablet")
		defer d.Close()
		var r *pb.Resumed
		evs, r = resume(t, d, map[string]int64{lost: 0, kept: 0})
		if len(r.GetFailed()) > 0 {
			return fmt.Sprintf("resume still fails: %v", r.GetFailed())
		}
		return ""
	})
	n := 0
	for _, ev := range evs {
		if ev.GetConversationId() == lost && ev.GetMessageSent() != nil {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("resume after the repair gave %d of the 5 messages", n)
	}
}
