package ingest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

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
		}
	})
}
