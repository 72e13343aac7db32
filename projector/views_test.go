package projector

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// want is the rows one conversation must have; a nil map means no row. Only
// the listed columns are compared; nil means null.
type want struct {
	conversation map[string]any
	members      map[string]map[string]any // by user_id
	inbox        map[string]map[string]any // by user_id
	messages     map[int64]map[string]any  // by seq
}

type row = map[string]any

// TestViewsMapping applies short event sequences with Apply and reads the
// rows back. Each case runs forwards and backwards (on two conversation
// ids): the rows must be the same in both orders.
func TestViewsMapping(t *testing.T) {
	e := newEnv(t, true)
	long := strings.Repeat("é", 150) + "tail"
	cases := []struct {
		name   string
		events func(c string) []*pb.Event
		want   want
	}{
		{
			name:   "group created",
			events: func(c string) []*pb.Event { return []*pb.Event{group(c, "alice", "Team", "bob", "carol")} },
			want: want{
				conversation: row{"kind": "group", "title": "Team", "creator_user_id": "alice", "created_at": ts(0),
					"last_seq": 0, "updated_at": ts(0), "last_message_seq": nil, "last_message_preview": nil, "owner_user_id": "alice",
					"description": nil, "announcement_only": nil, "who_may_add": nil},
				members: map[string]row{
					"alice": {"role": "owner", "joined_seq": 0, "joined_at": ts(0), "read_seq": 0, "delivered_seq": 0, "removed": false, "removed_seq": nil},
					"bob":   {"role": "member", "joined_seq": 0, "read_seq": 0, "delivered_seq": 0, "removed": false},
					"carol": {"role": "member", "joined_seq": 0, "read_seq": 0, "delivered_seq": 0, "removed": false},
				},
				inbox: map[string]row{
					"alice": {"kind": "group", "title": "Team", "joined_seq": 0, "removed": false, "removed_seq": nil},
					"bob":   {"kind": "group", "title": "Team", "joined_seq": 0, "removed": false},
					"carol": {"kind": "group", "title": "Team", "joined_seq": 0, "removed": false},
				},
			},
		},
		{
			name: "direct message",
			events: func(c string) []*pb.Event {
				return []*pb.Event{
					created(c, "alice", pb.ConversationKind_CONVERSATION_KIND_DIRECT, "", "bob"),
					sent(c, 1, "bob", "hi"),
				}
			},
			want: want{
				conversation: row{"kind": "direct", "title": "", "last_seq": 1, "updated_at": ts(1),
					"last_message_seq": 1, "last_message_preview": "hi", "last_message_sender": "bob", "owner_user_id": nil},
				members: map[string]row{
					"alice": {"role": "member", "read_seq": 0, "delivered_seq": 0},
					"bob":   {"role": "member", "read_seq": 1, "delivered_seq": 1},
				},
				inbox: map[string]row{
					"alice": {"kind": "direct", "title": "", "joined_seq": 0, "removed": false},
					"bob":   {"kind": "direct", "title": "", "joined_seq": 0, "removed": false},
				},
				messages: map[int64]row{1: {"bucket": 0, "type": "MessageSent", "actor_user_id": "bob", "actor_device_id": "bob-phone",
					"client_msg_id": "c1", "content_type": "text/plain", "text": "hi", "occurred_at": ts(1), "command_id": "cmd-%c-1-bob"}},
			},
		},
		{
			name: "receipts only move forward",
			events: func(c string) []*pb.Event {
				return []*pb.Event{
					group(c, "alice", "T", "bob", "carol"),
					sent(c, 1, "alice", "one"),
					sent(c, 2, "alice", "two"),
					delivered(c, "bob", 2),
					read(c, "carol", 1),
					read(c, "bob", 1),      // read below delivered: delivered stays 2
					delivered(c, "bob", 1), // an older mark never wins
				}
			},
			want: want{
				conversation: row{"last_seq": 2, "last_message_seq": 2, "last_message_preview": "two", "last_message_sender": "alice"},
				members: map[string]row{
					"alice": {"read_seq": 2, "delivered_seq": 2},
					"bob":   {"read_seq": 1, "delivered_seq": 2},
					"carol": {"read_seq": 1, "delivered_seq": 1},
				},
				inbox: map[string]row{"alice": {}, "bob": {}, "carol": {}},
				messages: map[int64]row{
					1: {"text": "one"},
					2: {"text": "two"},
				},
			},
		},
		{
			name: "removed then re-added",
			events: func(c string) []*pb.Event {
				return []*pb.Event{
					group(c, "alice", "T", "bob"),
					sent(c, 1, "bob", "bye"),
					removed(c, 2, "alice", "bob"),
					added(c, 3, "alice", "bob"),
				}
			},
			want: want{
				conversation: row{"last_seq": 3, "updated_at": ts(3), "last_message_seq": 1, "last_message_preview": "bye"},
				members: map[string]row{
					"alice": {"role": "owner", "removed": false},
					"bob": {"role": "member", "joined_seq": 3, "joined_at": ts(3), "read_seq": 3, "delivered_seq": 3,
						"removed": false, "removed_seq": 2, "removed_reason": "removed"},
				},
				inbox: map[string]row{
					"alice": {"joined_seq": 0, "removed": false},
					"bob":   {"kind": "group", "title": "T", "joined_seq": 3, "removed": false, "removed_seq": 2},
				},
				messages: map[int64]row{
					1: {"type": "MessageSent"},
					2: {"type": "MemberRemoved", "actor_user_id": "alice", "text": nil, "client_msg_id": nil},
					3: {"type": "MembersAdded", "actor_user_id": "alice", "text": nil},
				},
			},
		},
		{
			name: "left",
			events: func(c string) []*pb.Event {
				return []*pb.Event{group(c, "alice", "T", "bob"), removed(c, 1, "bob", "bob")}
			},
			want: want{
				conversation: row{"last_seq": 1, "last_message_seq": nil},
				members: map[string]row{
					"alice": {"removed": false},
					"bob":   {"removed": true, "removed_seq": 1, "removed_reason": "left", "joined_seq": 0, "read_seq": 0},
				},
				inbox: map[string]row{
					"alice": {"removed": false},
					"bob":   {"kind": "group", "title": "T", "removed": true, "removed_seq": 1, "joined_seq": 0},
				},
				messages: map[int64]row{1: {"type": "MemberRemoved", "actor_user_id": "bob"}},
			},
		},
		{
			name: "new members",
			events: func(c string) []*pb.Event {
				return []*pb.Event{group(c, "alice", "New", "bob"), sent(c, 1, "alice", "x"), added(c, 2, "bob", "dave", "erin")}
			},
			want: want{
				conversation: row{"last_seq": 2, "last_message_seq": 1},
				members: map[string]row{
					"alice": {"read_seq": 1},
					"bob":   {"read_seq": 0},
					"dave":  {"role": "member", "joined_seq": 2, "read_seq": 2, "delivered_seq": 2, "removed": false, "removed_seq": nil},
					"erin":  {"role": "member", "joined_seq": 2, "read_seq": 2, "delivered_seq": 2, "removed": false},
				},
				inbox: map[string]row{
					"alice": {},
					"bob":   {},
					"dave":  {"kind": "group", "title": "New", "joined_seq": 2, "removed": false, "removed_seq": nil},
					"erin":  {"kind": "group", "title": "New", "joined_seq": 2, "removed": false},
				},
				messages: map[int64]row{1: {}, 2: {"type": "MembersAdded", "actor_user_id": "bob"}},
			},
		},
		{
			name: "preview is 140 runes",
			events: func(c string) []*pb.Event {
				return []*pb.Event{group(c, "alice", "T"), sent(c, 1, "alice", long)}
			},
			want: want{
				conversation: row{"last_message_preview": strings.Repeat("é", 140)},
				members:      map[string]row{"alice": {"read_seq": 1}},
				inbox:        map[string]row{"alice": {}},
				messages:     map[int64]row{1: {"text": long}},
			},
		},
		{
			name: "buckets",
			events: func(c string) []*pb.Event {
				return []*pb.Event{sent(c, 999, "alice", "a"), sent(c, 1000, "alice", "b")}
			},
			want: want{
				conversation: row{"last_seq": 1000, "kind": nil, "last_message_preview": "b"},
				members:      map[string]row{"alice": {"read_seq": 1000, "role": nil}},
				messages:     map[int64]row{999: {"bucket": 0}, 1000: {"bucket": 1}},
			},
		},
		{
			name: "not projected",
			events: func(c string) []*pb.Event {
				return []*pb.Event{rejected(c, "alice"), deduplicated(c, "alice", 1)}
			},
			want: want{},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range []string{"fwd", "rev"} {
				conv := fmt.Sprintf("g:map%d-%s", i, order)
				evs := tc.events(conv)
				if order == "rev" {
					slices.Reverse(evs)
				}
				e.applyAll(e.keyspace, evs)
				e.applyAll(e.keyspace, evs) // and once more: idempotent
				e.check(t, conv, tc.want)
			}
		})
	}
}

// ts is the JSON form of at(seq).
func ts(seq int64) string { return at(seq).AsTime().Format("2006-01-02 15:04:05.000Z") }

func (e *env) check(t *testing.T, conv string, w want) {
	t.Helper()
	convs := e.rows(e.keyspace, "conversations", "conversation_id = ?", conv)
	switch {
	case w.conversation == nil && len(convs) > 0:
		t.Errorf("%s: unexpected conversations row %v", conv, convs[0])
	case w.conversation != nil && len(convs) != 1:
		t.Errorf("%s: %d conversations rows, want 1", conv, len(convs))
	case w.conversation != nil:
		compare(t, conv, "conversations", convs[0], w.conversation)
	}
	checkRows(t, conv, "members", e.rows(e.keyspace, "members", "conversation_id = ?", conv), "user_id", w.members)
	checkRows(t, conv, "inbox", e.rows(e.keyspace, "inbox", "conversation_id = ?", conv), "user_id", w.inbox)
	msgs := map[string]row{}
	for seq, r := range w.messages {
		msgs[fmt.Sprint(seq)] = r
	}
	checkRows(t, conv, "messages", e.rows(e.keyspace, "messages", "conversation_id = ?", conv), "seq", msgs)
	for _, m := range e.rows(e.keyspace, "messages", "conversation_id = ?", conv) {
		if m["event"] == nil || !strings.HasPrefix(m["event"].(string), "0x") {
			t.Errorf("%s: messages seq %v has no event blob", conv, m["seq"])
		}
		if b := m["bucket"].(float64); int64(b) != schemas.Bucket(int64(m["seq"].(float64))) {
			t.Errorf("%s: messages seq %v in bucket %v", conv, m["seq"], b)
		}
	}
}

func checkRows(t *testing.T, conv, table string, got []map[string]any, key string, w map[string]row) {
	t.Helper()
	seen := map[string]bool{}
	for _, g := range got {
		k := fmt.Sprint(g[key])
		seen[k] = true
		r, ok := w[k]
		if !ok {
			t.Errorf("%s: unexpected %s row %s=%s: %v", conv, table, key, k, g)
			continue
		}
		compare(t, conv, table+" "+k, g, r)
	}
	for k := range w {
		if !seen[k] {
			t.Errorf("%s: missing %s row %s=%s", conv, table, key, k)
		}
	}
}

func compare(t *testing.T, conv, what string, got, w row) {
	t.Helper()
	for col, v := range w {
		g, ok := got[col]
		if !ok {
			t.Errorf("%s: %s has no column %s", conv, what, col)
			continue
		}
		switch x := v.(type) {
		case int:
			v = float64(x)
		case string:
			v = strings.ReplaceAll(x, "%c", conv)
		}
		if fmt.Sprint(g) != fmt.Sprint(v) || (g == nil) != (v == nil) {
			t.Errorf("%s: %s.%s = %#v, want %#v", conv, what, col, g, v)
		}
	}
}
