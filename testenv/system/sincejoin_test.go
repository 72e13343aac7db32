package system_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// describeVisible names an event as a device shows it: its type, the seq
// it takes or the message it changes, and an edit's text; a withheld event
// is "withheld", and must carry nothing but its envelope.
func describeVisible(t *testing.T, e *pb.Event) string {
	t.Helper()
	if e.GetWithheld() != nil {
		if e.GetActorUserId() != "" || e.GetOccurredAt() != nil || e.GetSeq() != 0 || e.GetCommandId() == "" || e.GetVersion() == 0 {
			t.Errorf("withheld event with more (or less) than its envelope: %v", e)
		}
		return "withheld"
	}
	out := schemas.EventType(e)
	if q := schemas.MessageSeq(e); q > 0 {
		out += fmt.Sprintf(" of %d", q)
	} else if e.GetSeq() > 0 {
		out += fmt.Sprintf(" %d", e.GetSeq())
	}
	if ed := e.GetMessageEdited(); ed != nil {
		out += fmt.Sprintf(" %q", ed.GetText())
	}
	return out
}

// describeDense describes evs, which must take consecutive versions.
func describeDense(t *testing.T, who string, evs []*pb.Event) []string {
	t.Helper()
	var out []string
	for i, e := range evs {
		if e.GetVersion() != evs[0].GetVersion()+int64(i) {
			t.Fatalf("%s: version %d at %d after %d: versions must be dense", who, e.GetVersion(), i, evs[0].GetVersion())
		}
		out = append(out, describeVisible(t, e))
	}
	return out
}

// TestE2ESinceJoin: in a group on two gateways whose history visibility
// is since_join, erin is added later and follows it on two devices, one on
// each gateway. Every change of a message from before her join — edit,
// reaction, pin, unpin, recall — reaches both withheld, without its text,
// and every change of a later message whole, in dense versions; a Resume
// from an old cursor, on a third device, gives exactly the same. alice,
// there from the creation, gets every change whole, live and resumed.
func TestE2ESinceJoin(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice := connect(t, sys, 0, "alice", "phone")
	bob := connect(t, sys, 1, "bob", "phone")
	erinPhone := connect(t, sys, 0, "erin", "phone")
	erinTab := connect(t, sys, 1, "erin", "tablet")
	conv := accepted(t, alice.MustDo("", group("since join", "bob")))
	bob.WaitEvent("the group", func(e *pb.Event) bool { return e.GetConversationId() == conv })
	accepted(t, alice.MustDo(conv, send("a1", "before")))   // 1
	accepted(t, bob.MustDo(conv, send("b1", "before too"))) // 2
	sinceJoin := pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN
	accepted(t, alice.MustDo(conv, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{HistoryVisibility: &sinceJoin}}))
	accepted(t, alice.MustDo(conv, &pb.AddMembers{UserIds: []string{"erin"}})) // 3
	for _, d := range []*testenv.WSClient{erinPhone, erinTab} {
		d.WaitEvent("erin's join", func(e *pb.Event) bool { return e.GetConversationId() == conv && e.GetMembersAdded() != nil })
	}
	accepted(t, bob.MustDo(conv, send("b2", "after")))     // 4
	accepted(t, bob.MustDo(conv, send("b3", "to recall"))) // 5
	// The seqs are decided in order: wait until they are, so the actions
	// below name messages that exist.
	bob.WaitEvent("message 5", func(e *pb.Event) bool { return e.GetConversationId() == conv && e.GetSeq() == 5 })
	accepted(t, alice.MustDo(conv, &pb.EditMessage{Seq: 1, Text: "before, edited", ClientMsgId: "ea1"}))
	accepted(t, bob.MustDo(conv, &pb.EditMessage{Seq: 4, Text: "after, edited", ClientMsgId: "eb2"}))
	accepted(t, bob.MustDo(conv, &pb.AddReaction{Seq: 1, Emoji: "+1"}))
	accepted(t, alice.MustDo(conv, &pb.AddReaction{Seq: 4, Emoji: "+1"}))
	accepted(t, alice.MustDo(conv, &pb.PinMessage{Seq: 2}))
	accepted(t, alice.MustDo(conv, &pb.PinMessage{Seq: 4}))
	accepted(t, alice.MustDo(conv, &pb.UnpinMessage{Seq: 2}))
	accepted(t, bob.MustDo(conv, &pb.RemoveReaction{Seq: 1, Emoji: "+1"}))
	accepted(t, alice.MustDo(conv, &pb.RecallMessage{Seq: 1}))
	accepted(t, bob.MustDo(conv, &pb.RecallMessage{Seq: 5}))
	accepted(t, bob.MustDo(conv, send("b4", "done"))) // 6: the barrier
	done := func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "b4" }

	wantErin := []string{
		"MembersAdded 3",
		"MessageSent 4",
		"MessageSent 5",
		"withheld", // the edit of 1, and its text
		`MessageEdited of 4 "after, edited"`,
		"withheld", // bob's reaction to 1
		"ReactionAdded of 4",
		"withheld", // the pin of 2
		"MessagePinned of 4",
		"withheld", // its unpin
		"withheld", // the reaction to 1 taken off
		"withheld", // the recall of 1
		"MessageRecalled of 5",
		"MessageSent 6",
	}
	var joinVersion int64
	for _, d := range []*testenv.WSClient{erinPhone, erinTab} {
		evs := until(t, d, conv, done)
		// WaitEvent above took the join: what follows starts right after it.
		joinVersion = evs[0].GetVersion() - 1
		if got := describeDense(t, d.Name(), evs); !slices.Equal(got, wantErin[1:]) {
			t.Errorf("%s live:\n got %s\nwant %s", d.Name(), strings.Join(got, "\n     "), strings.Join(wantErin[1:], "\n     "))
		}
	}
	wantAlice := []string{
		"ConversationCreated", "MessageSent 1", "MessageSent 2", "GroupSettingsChanged", "MembersAdded 3", "MessageSent 4", "MessageSent 5",
		`MessageEdited of 1 "before, edited"`, `MessageEdited of 4 "after, edited"`, "ReactionAdded of 1", "ReactionAdded of 4",
		"MessagePinned of 2", "MessagePinned of 4", "MessageUnpinned of 2", "ReactionRemoved of 1", "MessageRecalled of 1",
		"MessageRecalled of 5", "MessageSent 6",
	}
	if got := describeDense(t, "alice", until(t, alice, conv, done)); !slices.Equal(got, wantAlice) {
		t.Errorf("alice live:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(wantAlice, "\n     "))
	}

	// Resumed from old cursors: below the join (lifted to it), and the
	// version just before it. The views may lag: resume until complete.
	// A recall takes its message's content out of every stored change, so
	// alice's catch-up has the edit of 1 without its text.
	aliceResumed := slices.Clone(wantAlice)
	aliceResumed[slices.Index(aliceResumed, `MessageEdited of 1 "before, edited"`)] = `MessageEdited of 1 ""`
	for _, tc := range []struct {
		user, device string
		gw           int
		cursor       int64
		want         []string
	}{
		{"erin", "laptop", 1, 0, wantErin},
		{"erin", "laptop", 0, joinVersion - 1, wantErin},
		{"alice", "laptop", 1, 0, aliceResumed},
	} {
		var got []string
		testenv.Eventually(t, time.Minute, func() string {
			d := connectResuming(t, sys, tc.gw, tc.user, tc.device)
			defer d.Close()
			evs, r := resume(t, d, map[string]int64{conv: tc.cursor})
			if len(r.GetFailed()) > 0 || len(evs) == 0 || !done(evs[len(evs)-1]) {
				return fmt.Sprintf("%s resumed %d events, %v: resume again", tc.user, len(evs), r)
			}
			got = describeDense(t, tc.user+" resumed", evs)
			return ""
		})
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s resumed from %d:\n got %s\nwant %s", tc.user, tc.cursor, strings.Join(got, "\n     "), strings.Join(tc.want, "\n     "))
		}
	}
}
