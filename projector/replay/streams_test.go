package replay

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// TestVerifyLogCheckLiveStreams checks the live rows of the user streams and
// of replies against the log (rows as verify reads them, without
// Cassandra): as projected, nothing; each tampered row named.
func TestVerifyLogCheckLiveStreams(t *testing.T) {
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	ts := func(s int) string { return t0.Add(time.Duration(s) * time.Second).Format("2006-01-02 15:04:05.000Z") }
	a := schemas.UserStreamID("a")
	var version int64
	on := func(user string, body func(*pb.Event)) *pb.Event {
		version++
		e := &pb.Event{ConversationId: schemas.UserStreamID(user), ActorUserId: user, Version: version,
			OccurredAt: timestamppb.New(t0.Add(time.Duration(version) * time.Second))}
		body(e)
		return e
	}
	prefs := func(p *pb.ConversationPrefsChanged) func(*pb.Event) {
		return func(e *pb.Event) { e.Body = &pb.Event_ConversationPrefsChanged{ConversationPrefsChanged: p} }
	}
	m := newStreamModel()
	for _, e := range []*pb.Event{
		/* 1 */ on("a", prefs(&pb.ConversationPrefsChanged{ConversationId: "g:1", Mute: &pb.Mute{Forever: true}, Pinned: proto.Bool(true)})),
		/* 2 */ on("a", prefs(&pb.ConversationPrefsChanged{ConversationId: "g:1", ArchivedUpToSeq: proto.Int64(4)})),
		/* 3 */ on("a", func(e *pb.Event) {
			e.Body = &pb.Event_MessagesHidden{MessagesHidden: &pb.MessagesHidden{ConversationId: "g:1", Seqs: []int64{2, 3}, UpToSeq: 1}}
		}),
		/* 4 */ on("a", func(e *pb.Event) { e.Body = &pb.Event_UserBlocked{UserBlocked: &pb.UserBlocked{UserId: "b"}} }),
		/* 5 */ on("a", func(e *pb.Event) { e.Body = &pb.Event_UserBlocked{UserBlocked: &pb.UserBlocked{UserId: "c"}} }),
		/* 6 */ on("a", func(e *pb.Event) { e.Body = &pb.Event_UserUnblocked{UserUnblocked: &pb.UserUnblocked{UserId: "b"}} }),
		/* 7 */ on("a", prefs(&pb.ConversationPrefsChanged{ConversationId: "g:1", Mute: &pb.Mute{}})),
		// Poison (not a's stream): no row.
		{ConversationId: a, ActorUserId: "b", Version: 8, Body: &pb.Event_UserBlocked{UserBlocked: &pb.UserBlocked{UserId: "a"}}},
		{ConversationId: "g:1", Seq: 5, ActorUserId: "b", Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{ReplyToSeq: 2}}},
	} {
		m.event(e)
	}
	mk := func(kv ...any) row {
		r := row{}
		for i := 0; i < len(kv); i += 2 {
			b, err := json.Marshal(kv[i+1])
			if err != nil {
				t.Fatal(err)
			}
			r[kv[i].(string)] = b
		}
		return r
	}
	put := func(v views, name string, r row) {
		if v[name] == nil {
			v[name] = map[string]row{}
		}
		v[name][rowName(viewTable(name), r)] = r
	}
	prefsRow := func(forever any) row {
		return mk("user_id", "a", "conversation_id", "g:1", "muted_forever", forever, "muted_until", nil, "pinned", true,
			"pinned_at", ts(1), "archived_up_to_seq", 4, "unread_marked_at_seq", nil, "updated_at", ts(7))
	}
	good := func() views {
		v := views{}
		put(v, "conversation_prefs", prefsRow(false))
		put(v, "hidden_messages", mk("user_id", "a", "conversation_id", "g:1", "seq", 2, "hidden_at", ts(3)))
		put(v, "hidden_messages", mk("user_id", "a", "conversation_id", "g:1", "seq", 3, "hidden_at", ts(3)))
		put(v, "history_cleared", mk("user_id", "a", "conversation_id", "g:1", "up_to_seq", 1, "cleared_at", ts(3)))
		put(v, "blocks", mk("user_id", "a", "blocked_user_id", "c", "blocked_at", ts(5)))
		put(v, "replies", mk("conversation_id", "g:1", "reply_to_seq", 2, "seq", 5, "sender_user_id", "b", "occurred_at", ts(0)))
		return v
	}
	for _, tc := range []struct {
		name   string
		tamper func(views)
		only   map[string]bool
		want   string // "" = no problem, else the problems, one a line
	}{
		{"as projected", func(views) {}, nil, ""},
		{"as projected, one stream chosen", func(views) {}, map[string]bool{a: true}, ""},
		{"still muted", func(v views) { put(v, "conversation_prefs", prefsRow(true)) }, nil,
			`prefs of a for g:1: muted_forever live true, log false`},
		{"no prefs row", func(v views) { delete(v, "conversation_prefs") }, nil, `prefs of a for g:1: in the log, no live row`},
		{"prefs of another conversation", func(v views) {
			put(v, "conversation_prefs", mk("user_id", "a", "conversation_id", "g:2", "pinned", true))
		}, nil, `prefs of a for g:2: live, none in the log`},
		{"a hidden seq missing", func(v views) {
			delete(v["hidden_messages"], rowName(viewTable("hidden_messages"), mk("user_id", "a", "conversation_id", "g:1", "seq", 3)))
		}, nil, `hidden_messages(user_id="a", conversation_id="g:1", 3): in the log, no live row`},
		{"a clear too far", func(v views) {
			put(v, "history_cleared", mk("user_id", "a", "conversation_id", "g:1", "up_to_seq", 9, "cleared_at", ts(3)))
		}, nil, `history_cleared(user_id="a", conversation_id="g:1", 9): live, not in the log`},
		{"the unblocked user still blocked", func(v views) {
			put(v, "blocks", mk("user_id", "a", "blocked_user_id", "b", "blocked_at", ts(4)))
		}, nil, `blocks(user_id="a", blocked_user_id="b"): live, not in the log`},
		{"a block's time", func(v views) {
			put(v, "blocks", mk("user_id", "a", "blocked_user_id", "c", "blocked_at", ts(6)))
		}, nil, `blocks(user_id="a", blocked_user_id="c"): blocked_at live "` + ts(6) + `", log "` + ts(5) + `"`},
		{"the poison block projected", func(v views) {
			put(v, "blocks", mk("user_id", "b", "blocked_user_id", "a", "blocked_at", ts(8)))
		}, nil, `blocks(user_id="b", blocked_user_id="a"): live, not in the log`},
		{"a reply missing", func(v views) { delete(v, "replies") }, nil,
			`replies(conversation_id="g:1", reply_to_seq=2, seq=5): in the log, no live row`},
		{"a reply of another conversation, not chosen", func(v views) {
			put(v, "replies", mk("conversation_id", "g:2", "reply_to_seq", 1, "seq", 2, "sender_user_id", "x"))
		}, map[string]bool{a: true, "g:1": true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := good()
			tc.tamper(live)
			var got []string
			for _, d := range checkStreams(live, m, tc.only) {
				got = append(got, d.text)
				if wantConv := "g:1"; strings.HasPrefix(d.text, "replies") && d.conv != wantConv ||
					!strings.HasPrefix(d.text, "replies") && !schemas.IsUserStreamID(d.conv) {
					t.Errorf("%q reported for %q", d.text, d.conv)
				}
			}
			if g := strings.Join(got, "\n"); g != tc.want {
				t.Errorf("problems:\n%s\nwant:\n%s", g, tc.want)
			}
		})
	}
}
