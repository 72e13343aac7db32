package projector

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// FuzzDecodeEvent feeds the projector's decoding arbitrary records of
// parley.events: each is either an event the views can apply or poison (it
// is dead-lettered, never retried forever); nothing panics, and a decoded
// event plans its view statements (those that need no read of the views).
func FuzzDecodeEvent(f *testing.F) {
	conv := schemas.DirectConversationID("ann", "bob")
	for _, ev := range []*pb.Event{
		{ConversationId: conv, ActorUserId: "ann", OccurredAt: timestamppb.Now(), Body: &pb.Event_ConversationCreated{
			ConversationCreated: &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{"ann", "bob"}}}},
		{ConversationId: conv, Seq: 1, ActorUserId: "ann", OccurredAt: timestamppb.Now(), Body: &pb.Event_MessageSent{
			MessageSent: &pb.MessageSent{ClientMsgId: "m1", Text: "hi"}}},
		{ConversationId: conv, ActorUserId: "bob", Body: &pb.Event_ReadUpTo{ReadUpTo: &pb.ReadUpTo{UpToSeq: 1}}},
		{ConversationId: conv, Seq: 0, Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{}}},
		{ConversationId: conv, ActorUserId: "bob", Version: 3, Body: &pb.Event_MessageEdited{MessageEdited: &pb.MessageEdited{MessageSeq: 1, Text: "x", EditNumber: 1}}},
		{ConversationId: conv, ActorUserId: "bob", Version: 4, Body: &pb.Event_ReactionAdded{ReactionAdded: &pb.ReactionAdded{MessageSeq: 1, Emoji: "+1"}}},
		{ConversationId: conv, ActorUserId: "bob", Version: 5, Body: &pb.Event_MessageRecalled{MessageRecalled: &pb.MessageRecalled{MessageSeq: 1}}},
	} {
		v, _ := proto.Marshal(ev)
		f.Add([]byte(conv), v)
	}
	f.Add([]byte("k"), []byte{0xff, 0x01})
	f.Add([]byte(""), []byte(nil))
	v := newViews(nil, "fuzz", 1)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		ev, err := decode(key, value)
		if err != nil {
			if !errors.Is(err, ErrPoison) {
				t.Fatalf("decode error that is not poison: %v", err)
			}
			return
		}
		if ev.GetConversationId() != string(key) {
			t.Fatalf("decoded %q under key %q", ev.GetConversationId(), key)
		}
		if !projected(ev.typ) || startsBatch(ev, false) || ev.typ == schemas.TypeMessageEdited {
			// Creations, additions and recalls read the views while
			// planning, and an edit reads its send (for the preview).
			return
		}
		for _, step := range v.steps {
			for _, p := range step {
				if _, err := p.plan(t.Context(), nil, ev); err != nil {
					t.Fatalf("planning a decoded %s: %v", ev.typ, err)
				}
			}
		}
	})
}
