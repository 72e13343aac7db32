package system_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// TestE2ETypedContent: markdown, a custom payload and a type Parley does not
// know reach the other member live and through query exactly as sent (the
// media type lower-cased); a custom payload without its "type" is refused
// to its sender alone, and takes no seq.
func TestE2ETypedContent(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice := connect(t, sys, 0, "alice", "phone")
	bob := connect(t, sys, 1, "bob", "phone")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	sent := []*pb.SendMessage{
		{ClientMsgId: "md", ContentType: "Text/Markdown", Text: "**ship it** — see `PO-1182`"},
		{ClientMsgId: "card", ContentType: schemas.ContentCustom, Text: `{"type":"approval.request","id":"PO-1182","amount":"420.00"}`},
		{ClientMsgId: "vendor", ContentType: "application/x-vendor-card", Text: "<card v=2>"},
	}
	want := []string{"text/markdown", schemas.ContentCustom, "application/x-vendor-card"}
	for _, m := range sent {
		accepted(t, alice.MustDo(conv, m))
	}
	accepted(t, alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "bad", ContentType: schemas.ContentCustom, Text: `{"id":1}`}))
	rej := alice.WaitEvent("the refusal", func(e *pb.Event) bool { return e.GetCommandRejected() != nil })
	if r := rej.GetCommandRejected(); r.GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT || r.GetClientMsgId() != "bad" {
		t.Fatalf("refusal %v, want INVALID_ARGUMENT for bad", rej)
	}
	for i, m := range sent {
		e := bob.WaitEvent("message "+m.GetClientMsgId(), func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == m.GetClientMsgId() })
		if got := e.GetMessageSent(); got.GetContentType() != want[i] || got.GetText() != m.GetText() || e.GetSeq() != int64(i+1) {
			t.Fatalf("bob got %v, want %s %q at seq %d", e, want[i], m.GetText(), i+1)
		}
	}
	bob.ExpectNoEvent("the refused message", time.Second, func(e *pb.Event) bool { return e.GetConversationId() == conv && e.GetCommandRejected() != nil })
	testenv.Eventually(t, time.Minute, func() string {
		h, code := allHistory(t, sys, "bob", conv)
		if code != 200 || len(h.Messages) != len(sent) {
			return fmt.Sprintf("history: status %d, %d of %d items", code, len(h.Messages), len(sent))
		}
		for i, m := range h.Messages {
			if m.ContentType != want[i] || m.Text != sent[i].GetText() {
				return fmt.Sprintf("item %d: %+v, want %s %q", i, m, want[i], sent[i].GetText())
			}
		}
		return ""
	})
}
