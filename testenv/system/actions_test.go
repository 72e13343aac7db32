package system_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// until collects the events of conv that d receives up to and including
// the first that matches last.
func until(t *testing.T, d *testenv.WSClient, conv string, last func(*pb.Event) bool) []*pb.Event {
	t.Helper()
	var got []*pb.Event
	d.WaitEvent("the last event of "+conv, func(e *pb.Event) bool {
		if e.GetConversationId() != conv {
			return false
		}
		got = append(got, e)
		return last(e)
	})
	return got
}

// describeAction names an event of the message-actions log compactly.
func describeAction(e *pb.Event) string {
	switch b := e.GetBody().(type) {
	case *pb.Event_MessageSent:
		if r := b.MessageSent.GetReplyToSeq(); r > 0 {
			return fmt.Sprintf("sent %d %s reply to %d", e.GetSeq(), e.GetActorUserId(), r)
		}
		return fmt.Sprintf("sent %d %s", e.GetSeq(), e.GetActorUserId())
	case *pb.Event_MessageEdited:
		return fmt.Sprintf("edited %d #%d %q", b.MessageEdited.GetMessageSeq(), b.MessageEdited.GetEditNumber(), b.MessageEdited.GetText())
	case *pb.Event_MessageRecalled:
		return fmt.Sprintf("recalled %d by %s", b.MessageRecalled.GetMessageSeq(), e.GetActorUserId())
	case *pb.Event_ReactionAdded:
		return fmt.Sprintf("+%s %d %s", b.ReactionAdded.GetEmoji(), b.ReactionAdded.GetMessageSeq(), e.GetActorUserId())
	case *pb.Event_ReactionRemoved:
		return fmt.Sprintf("-%s %d %s", b.ReactionRemoved.GetEmoji(), b.ReactionRemoved.GetMessageSeq(), e.GetActorUserId())
	case *pb.Event_CommandRejected:
		return fmt.Sprintf("rejected %s %s", b.CommandRejected.GetCommandType(), strings.TrimPrefix(b.CommandRejected.GetCode().String(), "ERROR_CODE_"))
	case *pb.Event_MessageDeduplicated:
		return fmt.Sprintf("deduplicated %s %d", b.MessageDeduplicated.GetClientMsgId(), b.MessageDeduplicated.GetOriginalSeq())
	}
	return schemas.EventType(e)
}

// rejection waits for the refusal of the command d's frame was accepted as.
func rejection(t *testing.T, d *testenv.WSClient, f *pb.ServerFrame) *pb.CommandRejected {
	t.Helper()
	id := f.GetAccepted().GetCommandId()
	if id == "" {
		t.Fatalf("%s: want Accepted, got %v", d.Name(), f)
	}
	return d.WaitEvent("the refusal of "+id, func(e *pb.Event) bool { return e.GetCommandId() == id }).GetCommandRejected()
}

func wantRefused(t *testing.T, d *testenv.WSClient, f *pb.ServerFrame, code pb.ErrorCode) {
	t.Helper()
	if r := rejection(t, d, f); r.GetCode() != code {
		t.Fatalf("%s: refusal %v, want %v", d.Name(), r, code)
	}
}

// TestE2EMessageActions: edits, reactions, replies and recalls in a group
// on two gateways, with alice on two devices. Every member's device sees
// the same actions live, in version order, with no gap; retries act once;
// non-senders, non-owners and non-members are refused with their codes,
// on the actor's device only; a recalled message refuses further actions.
func TestE2EMessageActions(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice := connect(t, sys, 0, "alice", "phone")
	laptop := connect(t, sys, 1, "alice", "laptop")
	bob := connect(t, sys, 1, "bob", "phone")
	carol := connect(t, sys, 0, "carol", "phone")
	dave := connect(t, sys, 1, "dave", "phone")
	// Devices that only watch (waiting for a refusal drops the events
	// queued before it, so the acting devices' queues are not compared).
	bobTab := connect(t, sys, 0, "bob", "tablet")
	carolTab := connect(t, sys, 1, "carol", "tablet")
	watchers := []*testenv.WSClient{alice, laptop, bobTab, carolTab}
	conv := accepted(t, alice.MustDo("", group("actions", "bob", "carol")))
	for _, d := range watchers {
		d.WaitEvent("the group", func(e *pb.Event) bool { return e.GetConversationId() == conv })
	}

	accepted(t, bob.MustDo(conv, send("m1", "helo")))   // 1
	accepted(t, alice.MustDo(conv, send("m2", "plan"))) // 2
	edit := &pb.EditMessage{Seq: 1, Text: "hello", ClientMsgId: "e1"}
	accepted(t, bob.MustDo(conv, edit))
	retry := bob.MustDo(conv, edit) // the same edit again: acts once
	if d := bob.WaitEvent("the retried edit's answer", func(e *pb.Event) bool {
		return e.GetCommandId() == retry.GetAccepted().GetCommandId()
	}).GetMessageDeduplicated(); d.GetClientMsgId() != "e1" || d.GetOriginalSeq() != 1 {
		t.Fatalf("retried edit answered %v, want MessageDeduplicated of e1 at 1", d)
	}
	wantRefused(t, carol, carol.MustDo(conv, &pb.EditMessage{Seq: 1, Text: "mine now", ClientMsgId: "ec"}), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	wantRefused(t, dave, dave.MustDo(conv, &pb.EditMessage{Seq: 1, Text: "hi", ClientMsgId: "ed"}), pb.ErrorCode_ERROR_CODE_NOT_MEMBER)
	wantRefused(t, bob, bob.MustDo(conv, &pb.EditMessage{Seq: 9, Text: "hi", ClientMsgId: "e9"}), pb.ErrorCode_ERROR_CODE_NOT_FOUND)
	wantRefused(t, dave, dave.MustDo(conv, &pb.AddReaction{Seq: 1, Emoji: "👀"}), pb.ErrorCode_ERROR_CODE_NOT_MEMBER)
	accepted(t, laptop.MustDo(conv, &pb.EditMessage{Seq: 2, Text: "plan v2", ClientMsgId: "e2"}))
	accepted(t, alice.MustDo(conv, &pb.AddReaction{Seq: 1, Emoji: "+1"}))
	accepted(t, laptop.MustDo(conv, &pb.AddReaction{Seq: 1, Emoji: "+1"})) // alice has it: nothing
	accepted(t, carol.MustDo(conv, &pb.AddReaction{Seq: 2, Emoji: "🎉"}))
	accepted(t, carol.MustDo(conv, &pb.AddReaction{Seq: 2, Emoji: "+1"}))
	accepted(t, carol.MustDo(conv, &pb.RemoveReaction{Seq: 2, Emoji: "🎉"}))
	accepted(t, carol.MustDo(conv, &pb.RemoveReaction{Seq: 2, Emoji: "🎉"}))                            // gone already: nothing
	accepted(t, carol.MustDo(conv, &pb.SendMessage{ClientMsgId: "m3", Text: "agreed", ReplyToSeq: 1})) // 3
	accepted(t, carol.MustDo(conv, send("m4", "oops")))                                                // 4
	wantRefused(t, carol, carol.MustDo(conv, &pb.RecallMessage{Seq: 2}), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	accepted(t, bob.MustDo(conv, &pb.RecallMessage{Seq: 1}))    // the sender, in the window
	accepted(t, bob.MustDo(conv, &pb.RecallMessage{Seq: 1}))    // again: nothing
	accepted(t, laptop.MustDo(conv, &pb.RecallMessage{Seq: 4})) // the owner, someone else's
	wantRefused(t, carol, carol.MustDo(conv, &pb.AddReaction{Seq: 1, Emoji: "+1"}), pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED)
	wantRefused(t, bob, bob.MustDo(conv, &pb.EditMessage{Seq: 1, Text: "back", ClientMsgId: "e1b"}), pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED)
	wantRefused(t, carol, carol.MustDo(conv, &pb.SendMessage{ClientMsgId: "m5x", Text: "re", ReplyToSeq: 1}), pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED)
	accepted(t, alice.MustDo(conv, send("m5", "done"))) // 5: the barrier

	// Each device saw the group's creation already: the rest, in order.
	want := []string{
		"sent 1 bob", "sent 2 alice", `edited 1 #1 "hello"`, `edited 2 #1 "plan v2"`,
		"++1 1 alice", "+🎉 2 carol", "++1 2 carol", "-🎉 2 carol",
		"sent 3 carol reply to 1", "sent 4 carol", "recalled 1 by bob", "recalled 4 by alice", "sent 5 alice",
	}
	for _, d := range watchers {
		evs := until(t, d, conv, func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "m5" })
		var got []string
		var versions []int64
		for _, e := range evs {
			if e.GetCommandRejected() != nil || e.GetMessageDeduplicated() != nil {
				t.Fatalf("%s got another device's answer %v", d.Name(), e)
			}
			got = append(got, describeAction(e))
			versions = append(versions, e.GetVersion())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s saw\n  %s\nwant\n  %s", d.Name(), strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		for i, v := range versions {
			if v != int64(i+2) { // version 1 is the creation
				t.Fatalf("%s: versions %v, want 2, 3, … with no gap", d.Name(), versions)
			}
		}
	}
	// A refusal or a retry's answer reaches its actor's device only.
	for _, d := range watchers {
		for _, e := range d.DrainEvents() {
			if e.GetCommandRejected() != nil || e.GetMessageDeduplicated() != nil {
				t.Fatalf("%s got another device's answer %v", d.Name(), e)
			}
		}
	}
	checkActionViews(t, sys, conv)
}

// TestE2EActionWindows: past the edit and recall windows the sender is
// refused, the owner still recalls, and a message takes at most the
// configured distinct emoji.
func TestE2EActionWindows(t *testing.T) {
	t.Parallel()
	sys, _ := startWith(t, system.Options{Gateways: 1, IngestLimits: ingest.Limits{
		EditWindow: time.Millisecond, RecallWindow: time.Millisecond, MaxReactionsPerMessage: 2}})
	alice := connect(t, sys, 0, "alice", "phone")
	bob := connect(t, sys, 0, "bob", "phone")
	watcher := connect(t, sys, 0, "bob", "tablet") // never waits for a refusal, so it drops nothing
	conv := accepted(t, alice.MustDo("", group("windows", "bob")))
	accepted(t, bob.MustDo(conv, send("m1", "late")))
	sent := bob.WaitEvent("the message", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "m1" })
	// The windows are measured from when the gateway appended the send:
	// wait until the clock is well past them.
	testenv.Eventually(t, time.Minute, func() string {
		if age := time.Since(sent.GetOccurredAt().AsTime()); age < 50*time.Millisecond {
			return fmt.Sprintf("the message is %v old", age)
		}
		return ""
	})
	wantRefused(t, bob, bob.MustDo(conv, &pb.EditMessage{Seq: 1, Text: "fixed", ClientMsgId: "e1"}), pb.ErrorCode_ERROR_CODE_WINDOW_PASSED)
	wantRefused(t, bob, bob.MustDo(conv, &pb.RecallMessage{Seq: 1}), pb.ErrorCode_ERROR_CODE_WINDOW_PASSED)
	accepted(t, alice.MustDo(conv, &pb.AddReaction{Seq: 1, Emoji: "+1"}))
	accepted(t, alice.MustDo(conv, &pb.AddReaction{Seq: 1, Emoji: "🎉"}))
	wantRefused(t, bob, bob.MustDo(conv, &pb.AddReaction{Seq: 1, Emoji: "❤️"}), pb.ErrorCode_ERROR_CODE_TOO_MANY_REACTIONS)
	accepted(t, bob.MustDo(conv, &pb.AddReaction{Seq: 1, Emoji: "+1"})) // an emoji already there is fine
	accepted(t, alice.MustDo(conv, &pb.RecallMessage{Seq: 1}))          // the owner: any time
	evs := until(t, watcher, conv, func(e *pb.Event) bool { return e.GetMessageRecalled() != nil })
	var got []string
	for _, e := range evs {
		got = append(got, describeAction(e))
	}
	if want := []string{"ConversationCreated", "sent 1 bob", "++1 1 alice", "+🎉 1 alice", "++1 1 bob", "recalled 1 by alice"}; !slices.Equal(got, want) {
		t.Fatalf("bob saw %v, want %v", got, want)
	}
}

// checkActionViews: query shows every member what the actions left: the
// newest edits, the current reactions, reply snippets that follow their
// message's recall, recalled messages without content, and a message's
// versions; a non-member gets nothing.
func checkActionViews(t *testing.T, sys *system.System, conv string) {
	t.Helper()
	type item struct {
		Seq       int64   `json:"seq"`
		Text      *string `json:"text"`
		EditCount int     `json:"edit_count"`
		Recalled  *struct {
			By string `json:"by"`
		} `json:"recalled"`
		ReplyTo *struct {
			Seq      int64   `json:"seq"`
			Sender   string  `json:"sender"`
			Snippet  *string `json:"snippet"`
			Recalled bool    `json:"recalled"`
		} `json:"reply_to"`
		Reactions []struct {
			Emoji   string   `json:"emoji"`
			Count   int      `json:"count"`
			UserIDs []string `json:"user_ids"`
		} `json:"reactions"`
	}
	describe := func(it item) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%d", it.Seq)
		if it.Text != nil {
			fmt.Fprintf(&b, " %q", *it.Text)
		}
		if it.EditCount > 0 {
			fmt.Fprintf(&b, " edited×%d", it.EditCount)
		}
		if it.Recalled != nil {
			fmt.Fprintf(&b, " recalled by %s", it.Recalled.By)
		}
		if r := it.ReplyTo; r != nil {
			fmt.Fprintf(&b, " reply to %d by %s", r.Seq, r.Sender)
			if r.Recalled {
				b.WriteString(" (recalled)")
			}
			if r.Snippet != nil {
				fmt.Fprintf(&b, " %q", *r.Snippet)
			}
		}
		for _, re := range it.Reactions {
			fmt.Fprintf(&b, " %s×%d%v", re.Emoji, re.Count, re.UserIDs)
		}
		return b.String()
	}
	want := []string{
		"1 recalled by bob",
		`2 "plan v2" edited×1 +1×1[carol]`,
		`3 "agreed" reply to 1 by bob (recalled)`,
		"4 recalled by alice",
		`5 "done"`,
	}
	for _, user := range []string{"bob", "carol"} {
		testenv.Eventually(t, time.Minute, func() string {
			var page struct {
				Messages []item `json:"messages"`
			}
			if code := api(t, sys, user, "/v1/conversations/"+conv+"/messages?after=0&limit=50", &page); code != 200 {
				return fmt.Sprintf("%s: history status %d", user, code)
			}
			var got []string
			for _, it := range page.Messages {
				got = append(got, describe(it))
			}
			if !slices.Equal(got, want) {
				return fmt.Sprintf("%s's history\n  %s\nwant\n  %s", user, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			return ""
		})
	}
	var versions struct {
		Versions []struct {
			Number int    `json:"number"`
			Text   string `json:"text"`
		} `json:"versions"`
		Recalled *struct {
			By string `json:"by"`
		} `json:"recalled"`
	}
	// The versions are rows of their own, written apart from the history's.
	testenv.Eventually(t, time.Minute, func() string {
		versions.Versions, versions.Recalled = nil, nil
		if code := api(t, sys, "carol", "/v1/conversations/"+conv+"/messages/2/versions", &versions); code != 200 ||
			fmt.Sprint(versions.Versions) != "[{0 plan} {1 plan v2}]" {
			return fmt.Sprintf("versions of 2: status %d, %v; want the original and one edit", code, versions.Versions)
		}
		versions.Versions, versions.Recalled = nil, nil
		if code := api(t, sys, "carol", "/v1/conversations/"+conv+"/messages/1/versions", &versions); code != 200 ||
			len(versions.Versions) != 0 || versions.Recalled == nil || versions.Recalled.By != "bob" {
			return fmt.Sprintf("versions of the recalled 1: status %d, %+v; want recalled by bob and no version", code, versions)
		}
		return ""
	})
	if code := api(t, sys, "dave", "/v1/conversations/"+conv+"/messages/2/versions", &versions); code == 200 {
		t.Fatalf("a non-member read a message's versions")
	}
}
