package ingest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// FuzzChangelogRestore feeds the state builder arbitrary changelog records,
// as a restore meets them on parley.ingest.state (the decider's own topic,
// but a bug or a bad write must not crash a restore): each record either
// applies or is an error, the built state is usable, and a send decided on it
// keeps the decider's invariants (the next seq follows the restored last seq).
func FuzzChangelogRestore(f *testing.F) {
	conv := "g:00000000000000000000000000000001"
	f.Add([]byte(prefixHeader+sep+conv), []byte(`{"k":2,"t":"team","s":7}`),
		[]byte(prefixMember+sep+conv+sep+"alice"), []byte(`{"r":2,"j":0,"rd":3,"dl":4}`))
	f.Add([]byte(prefixDedup+sep+conv+sep+"alice"+sep+"m1"), []byte(`{"s":3,"t":1764547200000}`),
		[]byte(prefixDedup+sep+conv+sep+"alice"+sep+"m1"), []byte(nil))
	f.Add([]byte(prefixHeader+sep+conv), []byte(`{"k":`), []byte("x"), []byte("{}"))
	f.Add([]byte(prefixMember+sep+conv+sep+"a"+sep+"b"), []byte(`[]`), []byte(prefixHeader), []byte(`{"s":-5}`))
	f.Add([]byte(prefixDedup+sep+conv+sep+"alice"+sep+"m1"), []byte(`{"s":3,"t":1764547200000,"c":"text/markdown","n":2,"e":["e1","e2"]}`),
		[]byte(prefixMember+sep+conv+sep+"alice"), []byte(`{"r":1,"j":0,"rd":3,"dl":3}`))
	f.Add([]byte(prefixNotice+sep+conv+sep+"2"), []byte(`{}`), []byte(prefixRecalled+sep+conv+sep+"3"), []byte(`{"u":"alice"}`))
	f.Add([]byte(prefixReactions+sep+conv+sep+"3"), []byte(`{"👍":["alice","bob"],"":[]}`),
		[]byte(prefixReactions+sep+conv+sep+"x"), []byte(`{}`))
	f.Add([]byte(prefixRecalled+sep+conv+sep+"-1"), []byte(`{"u":1}`), []byte(prefixNotice+sep+conv+sep+"1"+sep+"2"), []byte(nil))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 []byte) {
		b := newStateBuilder()
		_ = b.apply(k1, v1)
		_ = b.apply(k2, v2)
		now := time.Unix(1_764_547_200, 0)
		ps := b.done(now, DefaultLimits.DedupPerSender)
		for id, st := range ps.convs {
			if st == nil || st.members == nil {
				t.Fatalf("conversation %q restored without its member map", id)
			}
			// A member sends: the decision must not panic, and a message
			// it accepts takes the seq after the restored one.
			var sender string
			for u := range st.members {
				sender = u
				break
			}
			if sender == "" {
				continue
			}
			last := st.lastSeq
			cmd := &pb.Command{CommandId: "c", UserId: sender, DeviceId: "d", ConversationId: id,
				Body: &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: "fuzz-new", Text: "hi"}}}
			_, evs, _ := decide(DefaultLimits, st, proto.Clone(cmd).(*pb.Command), now, now)
			for _, ev := range evs {
				if ev.GetMessageSent() != nil && ev.GetSeq() != last+1 {
					t.Fatalf("restored last seq %d, next message got seq %d", last, ev.GetSeq())
				}
			}
			// It edits, reacts to and recalls the first and the last
			// item: whatever it is, nothing panics, and an action on a
			// notice or past the end is refused.
			for _, seq := range []int64{1, st.lastSeq} {
				isMessage := st.isMessage(seq)
				for _, body := range []proto.Message{
					&pb.EditMessage{Seq: seq, ClientMsgId: "fuzz-edit", Text: "edited"},
					&pb.AddReaction{Seq: seq, Emoji: "👍"},
					&pb.RemoveReaction{Seq: seq, Emoji: "👍"},
					&pb.RecallMessage{Seq: seq},
				} {
					c := &pb.Command{CommandId: "c", UserId: sender, DeviceId: "d", ConversationId: id}
					if err := schemas.SetBody(c, body); err != nil {
						t.Fatal(err)
					}
					_, evs, _ := decide(DefaultLimits, st, c, now, now)
					for _, ev := range evs {
						switch ev.GetBody().(type) {
						case *pb.Event_MessageEdited, *pb.Event_ReactionAdded, *pb.Event_ReactionRemoved, *pb.Event_MessageRecalled:
							if !isMessage || ev.GetSeq() != 0 {
								t.Fatalf("%s on seq %d (a message: %v) accepted with seq %d", schemas.EventType(ev), seq, isMessage, ev.GetSeq())
							}
						}
					}
				}
			}
		}
	})
}
