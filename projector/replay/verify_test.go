package replay

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// TestVerifyLogCheckLiveActions: live views of edited, recalled and
// reacted messages against the log's, without Cassandra: rows as verify
// reads them (CQL JSON), each invariant broken once.
func TestVerifyLogCheckLiveActions(t *testing.T) {
	var l actionLog
	log := l.versions(l.group("a", "b", "c"),
		l.send("s1", 1, "a"),        // v2
		l.edit("e1", "a", 1, 1),     // v3
		l.react("r1", "b", 1, "👍"),  // v4
		l.send("s2", 2, "b"),        // v5
		l.edit("e2", "b", 2, 1),     // v6
		l.react("r2", "a", 2, "🎉"),  // v7
		l.recall("x1", "b", 2, "b"), // v8
		l.react("r3", "a", 1, "❤️"), // v9
	)
	check := newLogCheck()
	for i, e := range log {
		check.event(0, int64(i), e)
	}
	if p := check.finish(false); len(p) > 0 {
		t.Fatalf("problems in the log:\n%s", strings.Join(p, "\n"))
	}
	blob := func(e *pb.Event) string {
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return "0x" + hex.EncodeToString(b)
	}
	// without is e without its content, as a recall leaves it.
	without := func(e *pb.Event) *pb.Event {
		e = proto.Clone(e).(*pb.Event)
		if m := e.GetMessageSent(); m != nil {
			m.Text, m.ContentType = "", ""
		}
		if m := e.GetMessageEdited(); m != nil {
			m.Text, m.ContentType = "", ""
		}
		return e
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
		for _, tb := range viewTables {
			if tb.name == name {
				if v[name] == nil {
					v[name] = map[string]row{}
				}
				v[name][rowName(tb, r)] = r
				return
			}
		}
		t.Fatalf("no view %s", name)
	}
	message := func(seq int64, text, ct, recalledBy any, edits any, ev *pb.Event) row {
		return mk("conversation_id", testConv, "bucket", 0, "seq", seq, "type", "MessageSent", "actor_user_id", ev.GetActorUserId(),
			"text", text, "content_type", ct, "edit_count", edits, "recalled_by", recalledBy, "event", blob(ev))
	}
	change := func(e *pb.Event) row {
		return mk("conversation_id", testConv, "bucket", 0, "version", e.GetVersion(), "seq", e.GetSeq(), "type", schemas.EventType(e), "event", blob(e))
	}
	reactionRow := func(seq int64, emoji, user string) row {
		return mk("conversation_id", testConv, "bucket", 0, "message_seq", seq, "emoji", emoji, "user_id", user, "reacted_at", "2026-01-01 00:00:00.000Z")
	}
	s1, s2, e2 := log[1], log[4], log[5]
	// good is the live views as the projector writes them.
	good := func() views {
		v := views{}
		put(v, "conversations", mk("conversation_id", testConv, "last_seq", 2, "last_message_seq", 2, "last_message_preview", nil, "last_version", 9))
		put(v, "messages", message(1, "edit e1", "text/plain", nil, 1, s1))
		put(v, "messages", message(2, nil, nil, "b", 1, without(s2)))
		put(v, "message_edits", mk("conversation_id", testConv, "message_seq", 1, "edit_number", 1, "text", "edit e1", "content_type", "text/plain", "version", 3))
		for _, e := range log[1:] {
			if e == s2 || e == e2 {
				e = without(e)
			}
			put(v, "changes", change(e))
		}
		put(v, "reactions", reactionRow(1, "👍", "b"))
		put(v, "reactions", reactionRow(1, "❤️", "a"))
		return v
	}
	for _, tc := range []struct {
		name   string
		tamper func(views)
		want   string // "" = no problem, else the one problem
	}{
		{"as projected", func(views) {}, ""},
		{"text of a recalled message", func(v views) { put(v, "messages", message(2, "text of s2", nil, "b", 1, without(s2))) },
			`message 2 in g:1, recalled by b: text live "text of s2", log null`},
		{"content type of a recalled message", func(v views) { put(v, "messages", message(2, nil, "text/plain", "b", 1, without(s2))) },
			`message 2 in g:1, recalled by b: content_type live "text/plain", log null`},
		{"event of a recalled message with its text", func(v views) { put(v, "messages", message(2, nil, nil, "b", 1, s2)) },
			`message 2 in g:1, recalled by b: its messages row's event has text "text of s2"`},
		{"event of a recalled message with its content type", func(v views) {
			e := without(s2)
			e.GetMessageSent().ContentType = "text/plain"
			put(v, "messages", message(2, nil, nil, "b", 1, e))
		}, `message 2 in g:1, recalled by b: its messages row's event has content_type "text/plain"`},
		{"event of a recalled message not a send", func(v views) { put(v, "messages", message(2, nil, nil, "b", 1, without(e2))) },
			"its messages row's event is a MessageEdited, not a MessageSent"},
		{"event of a recalled message undecodable", func(v views) {
			r := message(2, nil, nil, "b", 1, without(s2))
			r["event"] = json.RawMessage(`"0xff"`)
			put(v, "messages", r)
		}, "its messages row's event does not decode as parley.v1.Event"},
		{"event of a recalled message null", func(v views) {
			r := message(2, nil, nil, "b", 1, without(s2))
			r["event"] = json.RawMessage(`null`)
			put(v, "messages", r)
		}, "its messages row's event is null, not an event"},
		{"edit of a recalled message", func(v views) {
			put(v, "message_edits", mk("conversation_id", testConv, "message_seq", 2, "edit_number", 1, "text", "edit e2", "version", 6))
		}, `message 2 in g:1, recalled by b: message_edits(conversation_id="g:1", message_seq=2, edit_number=1) is still there`},
		{"change of a recalled send", func(v views) { put(v, "changes", change(s2)) },
			`message 2 in g:1, recalled by b: changes(conversation_id="g:1", bucket=0, version=5): event has text "text of s2"`},
		{"change of a recalled edit", func(v views) { put(v, "changes", change(e2)) },
			`message 2 in g:1, recalled by b: changes(conversation_id="g:1", bucket=0, version=6): event has text "edit e2"`},
		{"preview of a recalled last message", func(v views) {
			put(v, "conversations", mk("conversation_id", testConv, "last_seq", 2, "last_message_seq", 2, "last_message_preview", "edit e2"))
		}, `message 2 in g:1, recalled by b (the last message): last_message_preview live "edit e2", log null`},
		{"preview of a last message not recalled", func(v views) {
			put(v, "conversations", mk("conversation_id", testConv, "last_seq", 1, "last_message_seq", 1, "last_message_preview", "edit e1"))
		}, ""},
		{"reaction not in the log", func(v views) { put(v, "reactions", reactionRow(1, "🎉", "c")) },
			`message 1 in g:1: reaction "🎉" of c live, not in the log`},
		{"reaction missing", func(v views) { delete(v["reactions"], rowName(viewTables[6], reactionRow(1, "❤️", "a"))) },
			`message 1 in g:1: reaction "❤️" of a in the log, missing live`},
		{"reaction of a recalled message", func(v views) { put(v, "reactions", reactionRow(2, "🎉", "a")) },
			`message 2 in g:1: reaction "🎉" of a live, not in the log`},
		{"edit count too high", func(v views) { put(v, "messages", message(1, "edit e1", "text/plain", nil, 2, s1)) },
			"message 1 in g:1: edit_count live 2, log 1"},
		{"edit count missing", func(v views) { put(v, "messages", message(1, "edit e1", "text/plain", nil, nil, s1)) },
			"message 1 in g:1: edit_count live null, log 1"},
		{"edit count of a recalled message dropped", func(v views) { put(v, "messages", message(2, nil, nil, "b", nil, without(s2))) },
			"message 2 in g:1: edit_count live null, log 1"},
		{"edit count of a message never edited", func(v views) {
			put(v, "messages", mk("conversation_id", testConv, "bucket", 0, "seq", 3, "type", "MembersAdded", "edit_count", 1))
		}, "message 3 in g:1: edit_count live 1, log null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := good()
			tc.tamper(live)
			var got []string
			for _, d := range checkActions(live, check) {
				if d.conv != testConv {
					t.Errorf("%q reported for conversation %q", d.text, d.conv)
				}
				got = append(got, d.text)
			}
			switch all := strings.Join(got, "\n"); {
			case tc.want == "" && len(got) > 0:
				t.Errorf("problems in views as projected:\n%s", all)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(all, tc.want)):
				t.Errorf("problems:\n%s\nwant one, containing %q", all, tc.want)
			}
		})
	}
}

// TestVerifyLogCheckLiveGovernance: live unread mentions and group owners
// against the log's, without Cassandra: rows as verify reads them (CQL
// JSON), each invariant broken once.
func TestVerifyLogCheckLiveGovernance(t *testing.T) {
	var l actionLog
	const direct = "d:1"
	log := l.versions(l.group("a", "b", "c", "d"),
		l.mention("s1", 1, "a", false, "b", "c"),
		l.mention("s2", 2, "b", true), // @all
		l.read("r1", "c", 2),
		l.mention("s3", 3, "c", false, "b"),
		l.recall("x1", "c", 3, "c"),
		l.add("n1", 4, "a", "e"), // e joins after the @all
		l.mention("s4", 5, "e", false, "d"),
		l.transfer("t1", "a", "a", "b"),
	)
	for _, e := range l.versions(l.direct("a", "b"), l.mention("s5", 1, "a", false, "b")) {
		e.ConversationId, e.CommandId = direct, "d-"+e.GetCommandId()
		log = append(log, e)
	}
	check := newLogCheck()
	for i, e := range log {
		check.event(0, int64(i), e)
	}
	if p := check.finish(false); len(p) > 0 {
		t.Fatalf("problems in the log:\n%s", strings.Join(p, "\n"))
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
	put := func(v views, r row, name string) {
		if v[name] == nil {
			v[name] = map[string]row{}
		}
		v[name][rowName(viewTable(name), r)] = r
	}
	member := func(conv, user, role string, joined, read int64, removed bool) row {
		return mk("conversation_id", conv, "user_id", user, "role", role, "joined_seq", joined, "read_seq", read, "removed", removed)
	}
	mention := func(user, conv string, seq int64) row {
		return mk("user_id", user, "conversation_id", conv, "seq", seq, "sender_user_id", "x", "occurred_at", "2026-01-01 00:00:00.000Z")
	}
	mentionAll := func(seq int64) row {
		return mk("conversation_id", testConv, "seq", seq, "sender_user_id", "b", "occurred_at", "2026-01-01 00:00:00.000Z")
	}
	// good is the live views as the projector writes them: by the log, a
	// has 1 unread mention (the @all), d 2 (the @all and e's), the others
	// none; b owns the group.
	good := func() views {
		v := views{}
		put(v, mk("conversation_id", testConv, "kind", "group", "last_seq", 5), "conversations")
		put(v, mk("conversation_id", direct, "kind", "direct", "last_seq", 1), "conversations")
		for _, m := range []row{
			member(testConv, "a", "admin", 0, 1, false),
			member(testConv, "b", "owner", 0, 2, false),
			member(testConv, "c", "member", 0, 3, false),
			member(testConv, "d", "member", 0, 0, false),
			member(testConv, "e", "member", 4, 5, false),
			member(direct, "a", "member", 0, 1, false),
			member(direct, "b", "member", 0, 0, false),
		} {
			put(v, m, "members")
		}
		put(v, mention("b", testConv, 1), "mentions")
		put(v, mention("c", testConv, 1), "mentions")
		put(v, mention("d", testConv, 5), "mentions")
		put(v, mention("b", direct, 1), "mentions")
		put(v, mentionAll(2), "mentions_all")
		return v
	}
	for _, tc := range []struct {
		name   string
		tamper func(views)
		want   string // "" = no problem, else the problems, one a line
	}{
		{"as projected", func(views) {}, ""},
		{"the mention of a recalled message kept", func(v views) { put(v, mention("b", testConv, 3), "mentions") },
			"b in g:1: unread mentions live 1 (1 mentions and 0 mentions_all rows above read_seq 2), log 0 (above 2)"},
		{"a mention missing", func(v views) { delete(v["mentions"], rowName(viewTable("mentions"), mention("d", testConv, 5))) },
			"d in g:1: unread mentions live 1 (0 mentions and 1 mentions_all rows above read_seq 0), log 2 (above 0)"},
		{"a mention in the direct conversation missing", func(v views) { delete(v["mentions"], rowName(viewTable("mentions"), mention("b", direct, 1))) },
			"b in d:1: unread mentions live 0 (0 mentions and 0 mentions_all rows above read_seq 0), log 1 (above 0)"},
		{"an @all of a recalled message kept", func(v views) { put(v, mentionAll(3), "mentions_all") },
			"a in g:1: unread mentions live 2 (0 mentions and 2 mentions_all rows above read_seq 1), log 1 (above 1)\n" +
				"b in g:1: unread mentions live 1 (0 mentions and 1 mentions_all rows above read_seq 2), log 0 (above 2)\n" +
				"d in g:1: unread mentions live 3 (1 mentions and 2 mentions_all rows above read_seq 0), log 2 (above 0)"},
		{"a read mark ahead", func(v views) { put(v, member(testConv, "a", "admin", 0, 2, false), "members") },
			"a in g:1: unread mentions live 0 (0 mentions and 0 mentions_all rows above read_seq 2), log 1 (above 1)"},
		{"a read mark below the joined seq", func(v views) { put(v, member(testConv, "e", "member", 4, 0, false), "members") }, ""},
		{"mentions in another conversation", func(v views) { put(v, mention("d", "g:2", 9), "mentions") }, ""},
		{"mentions of a former member", func(v views) {
			put(v, member(testConv, "f", "member", 0, 0, true), "members")
			put(v, mention("f", testConv, 1), "mentions")
		}, ""},
		{"a member by the live views only", func(v views) { put(v, member(testConv, "f", "member", 0, 0, false), "members") }, ""},
		{"no owner", func(v views) { put(v, member(testConv, "b", "admin", 0, 2, false), "members") },
			"owner of g:1: live none, log b"},
		{"the old owner still an owner", func(v views) { put(v, member(testConv, "a", "owner", 0, 1, false), "members") },
			"owner of g:1: live a, b, log b"},
		{"another owner", func(v views) {
			put(v, member(testConv, "b", "admin", 0, 2, false), "members")
			put(v, member(testConv, "c", "owner", 0, 3, false), "members")
		}, "owner of g:1: live c, log b"},
		{"a former owner's row", func(v views) { put(v, member(testConv, "f", "owner", 0, 0, true), "members") }, ""},
		{"an owner of a direct conversation", func(v views) { put(v, member(direct, "a", "owner", 0, 1, false), "members") },
			"owner of d:1: live a, log none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := good()
			tc.tamper(live)
			var got []string
			for _, d := range checkGovernance(live, check) {
				if !strings.Contains(d.text, " "+d.conv+":") {
					t.Errorf("%q reported for conversation %q", d.text, d.conv)
				}
				got = append(got, d.text)
			}
			var want []string
			if tc.want != "" {
				want = strings.Split(tc.want, "\n")
			}
			ok := len(got) == len(want)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.Contains(got[i], want[i])
			}
			if !ok {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), tc.want)
			}
		})
	}
}
