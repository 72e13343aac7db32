package ingest

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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
	f.Add([]byte(prefixSettings+sep+conv), []byte(`{"d":"about","a":"parley:x","ao":true,"pa":2,"pm":2,"pp":2}`),
		[]byte(prefixMember+sep+conv+sep+"bob"), []byte(`{"r":3,"j":0,"rd":0,"dl":0,"mu":-1}`))
	f.Add([]byte(prefixPin+sep+conv+sep+"1"), []byte(`{}`), []byte(prefixMember+sep+conv+sep+"alice"), []byte(`{"r":1,"j":0,"rd":0,"dl":0,"mu":-7}`))
	f.Add([]byte(prefixSettings+sep+conv), []byte(`{"pa":"x"}`), []byte(prefixPin+sep+conv+sep+"0"), []byte(nil))
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
						case *pb.Event_MessageEdited, *pb.Event_ReactionAdded, *pb.Event_ReactionRemoved, *pb.Event_MessageRecalled,
							*pb.Event_MessagePinned, *pb.Event_MessageUnpinned:
							if !isMessage || ev.GetSeq() != 0 {
								t.Fatalf("%s on seq %d (a message: %v) accepted with seq %d", schemas.EventType(ev), seq, isMessage, ev.GetSeq())
							}
						}
					}
				}
			}
			// The governance commands on whatever was restored: nothing
			// panics, none takes a seq, and the owner's leave keeps one
			// owner when the group had one and members remain.
			var other string
			for u := range st.members {
				if u != sender {
					other = u
					break
				}
			}
			soon := timestamppb.New(now.Add(time.Hour))
			for _, body := range []proto.Message{
				&pb.SetMemberRole{UserId: other, Role: pb.MemberRole_MEMBER_ROLE_ADMIN},
				&pb.UpdateGroupSettings{Settings: &pb.GroupSettings{Title: proto.String("t"), WhoMayPin: pb.GroupPolicy_GROUP_POLICY_ADMINS.Enum()}},
				&pb.MuteMember{UserId: other, Until: soon},
				&pb.UnmuteMember{UserId: other},
				&pb.MuteMember{UserId: sender},
				&pb.UnmuteMember{UserId: sender},
				&pb.PinMessage{Seq: st.lastSeq},
				&pb.UnpinMessage{Seq: st.lastSeq},
				&pb.SendMessage{ClientMsgId: "fuzz-mention", Text: "@", MentionUserIds: []string{other, sender}, MentionAll: true},
				&pb.TransferOwnership{UserId: other},
				&pb.LeaveConversation{},
			} {
				c := &pb.Command{CommandId: "c", UserId: sender, DeviceId: "d", ConversationId: id}
				if err := schemas.SetBody(c, body); err != nil {
					t.Fatal(err)
				}
				before := len(owners(st))
				_, evs, _ := decide(DefaultLimits, st, c, now, now)
				for _, ev := range evs {
					if governanceEvent(ev) && ev.GetSeq() != 0 {
						t.Fatalf("%s with seq %d", schemas.EventType(ev), ev.GetSeq())
					}
				}
				if _, leave := body.(*pb.LeaveConversation); leave && st.kind == pb.ConversationKind_CONVERSATION_KIND_GROUP &&
					before == 1 && len(st.members) > 0 && len(owners(st)) != 1 {
					t.Fatalf("one owner before %s left, %v after", sender, owners(st))
				}
			}
		}
	})
}

// FuzzDecideGovernance decides random sequences of commands in one group of
// six users (sends and resends, roles, transfers, leaves, removals, adds,
// mutes, pins, recalls, settings, mentions, reactions, edits), restoring
// from the changelog now and then, and checks after every command: the
// group has exactly one owner while it has members, every role is one of
// the three, versions are dense and timeline seqs too, the governance and
// pin events take no seq, a muted member never sends, pins are messages not
// recalled and at most MaxPins; and a restored state equals the live one.
func FuzzDecideGovernance(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 24 {
		b := make([]byte, 600)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		f.Add(b)
	}
	f.Add([]byte{3, 0, 0, 3, 1, 0, 3, 2, 0, 3, 3, 0, 3, 4, 0, 5, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		// At most 1,000 commands: each restore reads the whole log so far.
		data = data[:min(len(data), 3000)]
		users := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
		g := "g:1"
		l := Limits{MaxPins: 3, DedupPerSender: 4, EditWindow: time.Minute, RecallWindow: time.Minute}
		r := newPartRun(t, l)
		at := time.Unix(1_700_000_000, 0)
		var version, seq int64
		check := func(evs []*pb.Event, actor string, mutedBefore bool) {
			t.Helper()
			st := r.ps.convs[g]
			for i, ev := range evs {
				typ := schemas.EventType(ev)
				switch v := ev.GetVersion(); {
				case typ == schemas.TypeCommandRejected || typ == schemas.TypeMessageDeduplicated:
					if v != 0 {
						t.Fatalf("%s has version %d", typ, v)
					}
				case v != version+1:
					t.Fatalf("%s has version %d after %d", typ, v, version)
				default:
					version = v
				}
				switch {
				case schemas.IsTimelineEvent(typ):
					if ev.GetSeq() != seq+1 {
						t.Fatalf("%s has seq %d after %d", typ, ev.GetSeq(), seq)
					}
					seq = ev.GetSeq()
				case ev.GetSeq() != 0:
					t.Fatalf("%s has seq %d", typ, ev.GetSeq())
				}
				if ev.GetMessageSent() != nil && mutedBefore {
					t.Fatalf("muted %s sent", actor)
				}
				if o := ev.GetOwnershipTransferred(); o.GetReason() == pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_OWNER_LEFT &&
					(i == 0 || evs[i-1].GetMemberRemoved().GetUserId() != o.GetFromUserId()) {
					t.Fatalf("a hand-over without its owner's leave: %v", summary(evs))
				}
			}
			if st.lastVersion != version || st.lastSeq != seq {
				t.Fatalf("state at seq %d version %d, events at %d and %d", st.lastSeq, st.lastVersion, seq, version)
			}
			if n := len(owners(st)); len(st.members) > 0 && n != 1 {
				t.Fatalf("%d owners: %v after %v", n, owners(st), summary(evs))
			}
			for u, m := range st.members {
				if m.role != roleOwner && m.role != roleAdmin && m.role != roleMember {
					t.Fatalf("%s has role %v", u, m.role)
				}
			}
			if len(st.pins) > r.l.MaxPins {
				t.Fatalf("%d pins", len(st.pins))
			}
			for p := range st.pins {
				if !st.isMessage(p) || st.isRecalled(p) {
					t.Fatalf("pinned %d: a message %v, recalled %v", p, st.isMessage(p), st.isRecalled(p))
				}
			}
		}
		restore := func() {
			t.Helper()
			live := r.ps.convs[g]
			ps := r.restore(at)
			rs := ps.convs[g]
			if a, b := governanceOf(rs), governanceOf(live); a != b {
				t.Fatalf("restored\n%s\nlive\n%s", a, b)
			}
			// (fmt prints maps sorted, and an empty map as a nil one.)
			if a, b := fmt.Sprint(rs.reactions, rs.notices, rs.bySeq), fmt.Sprint(live.reactions, live.notices, live.bySeq); a != b ||
				!reflect.DeepEqual(dedupOf(rs), dedupOf(live)) {
				t.Fatalf("restored reactions, notices or index by seq\n%s\nlive\n%s\nsends\n%v\nlive\n%v", a, b, dedupOf(rs), dedupOf(live))
			}
			r.ps = ps
		}
		check(r.do(createGroup("bob", "carol", "dave"), at), "alice", false)
		for ; len(data) >= 3; data = data[3:] {
			op, a, x := data[0], data[1], data[2]
			actor, target := users[int(a)%len(users)], users[int(x)%len(users)]
			if o := owners(r.ps.convs[g]); a&1 == 0 && len(o) == 1 {
				actor = o[0] // half the commands by the owner, who may do most
			}
			n := int64(x % 16)
			at = at.Add(time.Duration(a%8) * 10 * time.Second)
			var c *pb.Command
			switch op % 18 {
			case 0:
				c = send(actor, g, fmt.Sprintf("m%d", x%8))
			case 1:
				c = roleCmd(actor, g, target, []pb.MemberRole{roleAdmin, roleMember, roleOwner, 0}[x>>6])
			case 2:
				c = transferCmd(actor, g, target)
			case 3:
				if x&1 == 0 {
					c = leaveCmd(actor, g)
				} else {
					c = addCmd(actor, g, target)
				}
			case 4:
				c = removeCmd(actor, g, target)
			case 5:
				c = addCmd(actor, g, target, users[int(x>>4)%len(users)])
			case 6:
				var until *timestamppb.Timestamp
				if x&1 == 1 {
					until = timestamppb.New(at.Add(time.Duration(x>>1) * 5 * time.Second))
				}
				c = muteCmd(actor, g, target, until)
			case 7:
				c = unmuteCmd(actor, g, target)
			case 8:
				c = pinCmd(actor, g, n)
			case 9:
				c = unpinCmd(actor, g, n)
			case 10:
				c = recallCmd(actor, g, n)
			case 11:
				s := &pb.GroupSettings{}
				pol := []pb.GroupPolicy{policyMembers, policyAdmins}[x>>7]
				for bit, set := range []func(){
					func() { s.Title = proto.String(fmt.Sprintf("t%d", x%3)) },
					func() { s.Description = proto.String(fmt.Sprintf("d%d", x%2)) },
					func() { s.AnnouncementOnly = proto.Bool(x&64 != 0) },
					func() { s.WhoMayAdd = pol.Enum() },
					func() { s.WhoMayMentionAll = pol.Enum() },
					func() { s.WhoMayPin = pol.Enum() },
				} {
					if a>>(bit+2)&1 == 1 {
						set()
					}
				}
				if x&2 != 0 {
					s.HistoryVisibility = []pb.HistoryVisibility{pb.HistoryVisibility_HISTORY_VISIBILITY_ALL,
						pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN}[x>>5&1].Enum()
				}
				c = settingsCmd(actor, g, s)
			case 12:
				c = mentionCmd(actor, g, fmt.Sprintf("m%d", x%8+8), x&1 == 1, target)
			case 13:
				c = reactCmd(actor, g, n, []string{"👍", "🎉"}[x&1])
			case 14:
				c = editCmd(actor, g, n, fmt.Sprintf("e%d", x), "edited")
			case 15:
				restore()
				continue
			case 16:
				c = closeCmd(actor, g)
			case 17:
				c = reopenCmd(actor, g)
			}
			wasClosed := r.ps.convs[g].closed
			muted := false
			if m := r.ps.convs[g].members[actor]; m != nil {
				muted = m.muted(at.UnixMilli())
			}
			evs := r.do(c, at)
			check(evs, actor, muted)
			for _, ev := range evs {
				if wasClosed && ev.GetCommandRejected() == nil && ev.GetConversationReopened() == nil && ev.GetReadUpTo() == nil &&
					ev.GetDeliveredUpTo() == nil && ev.GetMessageDeduplicated() == nil {
					t.Fatalf("%s decided while the group is closed", schemas.EventType(ev))
				}
				if (ev.GetConversationClosed() != nil || ev.GetConversationReopened() != nil) &&
					(r.ps.convs[g].members[actor].role != roleOwner || wasClosed == (ev.GetConversationClosed() != nil)) {
					t.Fatalf("%s by %s, not the owner, or no change", schemas.EventType(ev), actor)
				}
			}
		}
		restore()
	})
}

// FuzzDecideStreams decides random per-user commands, blocks, sends and
// forwards over the user streams of four users, their direct conversations
// and a group, following every derived command, and checks after each: the
// versions of every stream dense, decision records unversioned, no message
// sent in a direct conversation while a block stands there (by a model of
// the blocks), every forwarded MessageSent preceded by its MessageForwarded;
// and now and then a restore from the changelog equal to the live state.
func FuzzDecideStreams(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 5))
	for range 16 {
		b := make([]byte, 600)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = data[:min(len(data), 3000)]
		users := []string{"alice", "bob", "carol", "dave"}
		r := newPartRun(t, Limits{MaxBlocksPerUser: 2})
		at := time.Unix(1_700_000_000, 0)
		versions := map[string]int64{}
		blocks := map[string]bool{} // "A>B": A blocks B
		forwarded := map[string]bool{}
		frozen := map[string]string{} // conversation -> "closed" or "deleted", by its events
		pair := func(a, b string) string { return schemas.DirectConversationID(a, b) }
		grp := "g:00000000000000000000000000000009"
		r.do(createGroupAt(grp, users[1:]...), at)
		versions[grp] = 1
		check := func(evs []*pb.Event) {
			t.Helper()
			for _, ev := range evs {
				typ, conv := schemas.EventType(ev), ev.GetConversationId()
				switch v := ev.GetVersion(); {
				case !versioned(ev) || ev.GetCommandRejected() != nil:
					if v != 0 {
						t.Fatalf("%s has version %d", typ, v)
					}
				case v != versions[conv]+1:
					t.Fatalf("%s in %s has version %d after %d", typ, conv, v, versions[conv])
				default:
					versions[conv] = v
				}
				switch b := ev.Body.(type) {
				case *pb.Event_UserBlocked, *pb.Event_UserUnblocked, *pb.Event_ConversationPrefsChanged, *pb.Event_MessagesHidden:
					if conv != schemas.UserStreamID(ev.GetActorUserId()) || ev.GetSeq() != 0 {
						t.Fatalf("%s of %s by %s at seq %d", typ, conv, ev.GetActorUserId(), ev.GetSeq())
					}
				case *pb.Event_DirectBlockChanged:
					blocks[b.DirectBlockChanged.GetBlockerUserId()+">"+b.DirectBlockChanged.GetBlockedUserId()] = b.DirectBlockChanged.GetBlocked()
				case *pb.Event_MessageForwarded:
					forwarded[ev.GetCommandId()] = true
					if frozen[conv] == "deleted" {
						t.Fatalf("forwarded from %s, deleted", conv)
					}
				case *pb.Event_ConversationClosed:
					frozen[conv] = "closed"
				case *pb.Event_ConversationReopened:
					if frozen[conv] != "closed" {
						t.Fatalf("%s reopened while %q", conv, frozen[conv])
					}
					delete(frozen, conv)
				case *pb.Event_ConversationDeleted:
					if frozen[conv] == "deleted" {
						t.Fatalf("%s deleted twice", conv)
					}
					frozen[conv] = "deleted"
				case *pb.Event_MessageSent:
					if frozen[conv] != "" {
						t.Fatalf("%s sent in %s, %s", ev.GetActorUserId(), conv, frozen[conv])
					}
					if o := b.MessageSent.GetForwardedFrom(); o != nil && !forwarded[ev.GetCommandId()] {
						t.Fatalf("forwarded message without its MessageForwarded: %v", ev)
					}
					for _, a := range users {
						for _, o := range users {
							if a != o && conv == pair(a, o) && (blocks[a+">"+o] || blocks[o+">"+a]) {
								t.Fatalf("%s sent in %s while a block stands", ev.GetActorUserId(), conv)
							}
						}
					}
				}
			}
			for id, st := range r.ps.convs {
				if st.lastVersion != versions[id] {
					t.Fatalf("%s at version %d, events at %d", id, st.lastVersion, versions[id])
				}
				if schemas.IsUserStreamID(id) && len(st.blocked) > 2 {
					t.Fatalf("%s blocks %d users", id, len(st.blocked))
				}
			}
		}
		for ; len(data) >= 3; data = data[3:] {
			op, a, x := data[0], data[1], data[2]
			actor, other := users[int(a)%len(users)], users[int(x)%len(users)]
			at = at.Add(time.Second)
			var c *pb.Command
			switch op % 16 {
			case 0:
				c = blockCmd(actor, other)
			case 1:
				c = unblockCmd(actor, other)
			case 2:
				c = createDirectWith(actor, other)
			case 3:
				c = send(actor, pair(actor, other), fmt.Sprintf("m%d", x%8))
			case 4:
				c = send(actor, grp, fmt.Sprintf("m%d", x%8))
			case 5:
				c = forwardCmd(actor, grp, int64(x%6), pair(actor, other), fmt.Sprintf("f%d", x%8), "")
				if ref, _, ok := r.ps.convs[grp].sender(int64(x % 6)); ok {
					c.GetForwardMessage().Origin.SenderUserId = ref.user
				}
			case 6:
				c = hideCmd(actor, schemas.UserStreamID(actor), grp, int64(x%3), int64(x%5))
			case 7:
				c = prefsCmd(actor, schemas.UserStreamID(other), &pb.UpdateConversationPrefs{ConversationId: grp, Pinned: proto.Bool(x&1 == 1)})
			case 9:
				// Closing, reopening, deleting: a direct conversation by a
				// service, the group by a member (its owner, or refused).
				conv := pair(actor, other)
				if x&1 == 1 {
					conv = grp
				}
				c = []func(string, string) *pb.Command{closeCmd, reopenCmd, deleteCmd}[x>>1%3](actor, conv)
				if x&1 == 0 || x&8 != 0 {
					c = byService(c)
				}
			case 10:
				c = send(actor, pair(actor, other), fmt.Sprintf("m%d", x%8))
			case 11:
				c = send(actor, grp, fmt.Sprintf("m%d", x%8))
			case 12:
				if x&1 == 0 {
					c = banCmd(actor, time.Time{}, fmt.Sprintf("r%d", x%3))
				} else {
					c = unbanCmd(actor)
				}
			case 13:
				c = hookCmd(actor, fmt.Sprintf("w%d", x%3), fmt.Sprintf("https://example.com/%d", x%2), true)
			case 14:
				c = unhookCmd(actor, fmt.Sprintf("w%d", x%3))
			case 15:
				c = cmd(actor, []string{grp, schemas.UserStreamID(actor)}[x%2], nil)
				c.Body = &pb.Command_RecordServiceRead{RecordServiceRead: &pb.RecordServiceRead{Route: "GET /x"}}
				c.ServicePrincipal = "ops"
			case 8:
				live := streamsOf(r.ps)
				ps := r.restore(at)
				if got := streamsOf(ps); got != live {
					t.Fatalf("restored\n%s\nlive\n%s", got, live)
				}
				r.ps = ps
				continue
			}
			check(r.do(c, at))
		}
	})
}
