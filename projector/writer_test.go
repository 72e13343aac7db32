package projector

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func mustEvent(t *testing.T, e *pb.Event) *event {
	t.Helper()
	raw, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := decode([]byte(e.GetConversationId()), raw)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// describe renders the writes of step 2 of a batch (conversations, members;
// the inbox needs a session) as "table row: values @ts", sorted.
func describe(stmts []stmt) []string {
	var out []string
	for _, st := range stmts {
		table := strings.Fields(st.cql)[1]
		table = table[strings.IndexByte(table, '.')+1:]
		set := st.cql[strings.Index(st.cql, "SET")+4 : strings.Index(st.cql, "WHERE")]
		set = strings.Join(strings.Fields(set), " ")
		out = append(out, fmt.Sprintf("%s %s: %s @%d", table, st.row, set, st.ts))
	}
	slices.Sort(out)
	return out
}

// TestCoalesce: events in → writes out. Of the writes of one cell set of
// one row, only the highest timestamp's is kept; different rows, different
// cell sets and statements without a row are all kept.
func TestCoalesce(t *testing.T) {
	ks := "ks"
	conv, mem := newConversations(ks), newMembers(ks)
	plan := func(evs ...*pb.Event) []stmt {
		var out []stmt
		for _, e := range evs {
			ev := mustEvent(t, e)
			for _, p := range []planner{conv, mem} {
				st, err := p.plan(context.Background(), nil, ev)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, st...)
			}
		}
		return out
	}
	const c = "g:x"
	cases := []struct {
		name string
		in   []*pb.Event
		want []string
	}{
		{
			name: "messages of one conversation: last one's row, each sender's highest mark",
			in:   []*pb.Event{sent(c, 1, "alice", "a"), sent(c, 2, "bob", "b"), sent(c, 3, "alice", "c")},
			want: []string{
				"conversations g:x: last_message_preview = ? @3145728",
				"conversations g:x: last_seq = ?, updated_at = ?, last_message_seq = ?, last_message_sender = ? @3",
				"members alice: read_seq = ?, delivered_seq = ? @3",
				"members bob: read_seq = ?, delivered_seq = ? @2",
			},
		},
		{
			name: "out of order in the batch: still the highest",
			in:   []*pb.Event{sent(c, 5, "alice", "a"), read(c, "alice", 9), sent(c, 4, "alice", "b")},
			want: []string{
				"conversations g:x: last_message_preview = ? @5242880",
				"conversations g:x: last_seq = ?, updated_at = ?, last_message_seq = ?, last_message_sender = ? @5",
				"members alice: read_seq = ?, delivered_seq = ? @9",
			},
		},
		{
			name: "different cell sets are kept apart",
			in:   []*pb.Event{sent(c, 1, "alice", "a"), removed(c, 2, "alice", "bob"), delivered(c, "carol", 2), read(c, "carol", 1)},
			want: []string{
				"conversations g:x: last_message_preview = ? @1048576",
				"conversations g:x: last_seq = ?, updated_at = ? @2",
				"conversations g:x: last_seq = ?, updated_at = ?, last_message_seq = ?, last_message_sender = ? @1",
				"members alice: read_seq = ?, delivered_seq = ? @1",
				"members bob: removed = true, removed_seq = ?, removed_reason = ?, removed_version = ? @2",
				"members carol: delivered_seq = ? @2",
				"members carol: read_seq = ?, delivered_seq = ? @1",
			},
		},
		{
			name: "role on the version clock: the re-add's role above the admin it was, the rest of its row on the seq clock",
			in: func() []*pb.Event {
				evs := []*pb.Event{
					roleChanged(c, "alice", "bob", admin), removed(c, 4, "alice", "bob"), added(c, 5, "alice", "bob"),
					transferred(c, "alice", "carol", byTransfer), muted(c, "carol", "dave", 0), unmuted(c, "carol", "dave"),
				}
				for i, ev := range evs {
					ev.Version = int64(8 + i)
				}
				return evs
			}(),
			want: []string{
				"conversations g:x: last_seq = ?, updated_at = ? @5",
				"conversations g:x: owner_user_id = ? @11",
				"members alice: role = ? @11",
				"members bob: joined_seq = ?, joined_at = ?, read_seq = ?, delivered_seq = ?, removed = false @5",
				"members bob: muted = false @9",
				"members bob: removed = true, removed_seq = ?, removed_reason = ?, removed_version = ? @4",
				"members bob: role = ? @10",
				"members carol: muted = false @11",
				"members carol: role = ? @11",
				"members dave: muted = false, muted_until = null @13",
				"members dave: muted = true, muted_until = ?, muted_by = ? @12",
			},
		},
		{
			name: "settings: a statement per setting, the newest of each",
			in: func() []*pb.Event {
				evs := []*pb.Event{
					settingsChanged(c, "alice", &pb.GroupSettings{Title: str("one"), WhoMayPin: policyAdmins}),
					settingsChanged(c, "alice", &pb.GroupSettings{Title: str("two"), Description: str("d"), HistoryVisibility: sinceJoin}),
				}
				evs[0].Version, evs[1].Version = 3, 4
				return evs
			}(),
			want: []string{
				"conversations g:x: description = ? @4",
				"conversations g:x: history_visibility = ? @4",
				"conversations g:x: title = ? @4",
				"conversations g:x: who_may_pin = ? @3",
			},
		},
		{
			name: "two conversations never merge",
			in:   []*pb.Event{sent(c, 1, "alice", "a"), sent("g:y", 7, "alice", "b")},
			want: []string{
				"conversations g:x: last_message_preview = ? @1048576",
				"conversations g:x: last_seq = ?, updated_at = ?, last_message_seq = ?, last_message_sender = ? @1",
				"conversations g:y: last_message_preview = ? @7340032",
				"conversations g:y: last_seq = ?, updated_at = ?, last_message_seq = ?, last_message_sender = ? @7",
				"members alice: read_seq = ?, delivered_seq = ? @1",
				"members alice: read_seq = ?, delivered_seq = ? @7",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := describe(coalesce(plan(tc.in...)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}

	// The role kept for bob is the re-add's.
	for _, st := range coalesce(plan(versioned(roleChanged(c, "alice", "bob", admin), added(c, 5, "alice", "bob"))...)) {
		if strings.Contains(st.cql, "SET role") && st.args[1] != "member" {
			t.Errorf("role %v, want the re-add's member", st.args[1])
		}
	}

	// The kept statement carries its own values, not the first one's.
	got := coalesce(plan(sent(c, 1, "alice", "first"), sent(c, 2, "bob", "second")))
	for _, st := range got {
		if st.part == convPart(c) && strings.Contains(st.cql, "last_message_preview") && st.args[1] != "second" {
			t.Errorf("preview %v, want the highest seq's", st.args[1])
		}
	}
}

// TestGroupByPartition: rows of one partition share a batch, within the
// statement and size bounds; rows without a partition go alone.
func TestGroupByPartition(t *testing.T) {
	st := func(part string, size int) stmt {
		return stmt{cql: part, args: []any{strings.Repeat("x", size)}, part: part}
	}
	in := []stmt{st("a", 10), st("b", 10), st("a", 10), st("", 1), st("", 1), st("a", 10), st("a", 100), st("a", 10)}
	var got []string
	for _, g := range groupByPartition(in, 3, 50) {
		var parts []string
		for _, s := range g {
			parts = append(parts, fmt.Sprintf("%s%d", s.part, argBytes(s.args)))
		}
		got = append(got, strings.Join(parts, "+"))
	}
	want := []string{"a10+a10+a10", "b10", "1", "1", "a100", "a10"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Mixed: in order, whatever the partition, within the same bounds.
	got = nil
	for _, g := range groupInOrder(in, 3, 50) {
		var parts []string
		for _, s := range g {
			parts = append(parts, fmt.Sprintf("%s%d", s.part, argBytes(s.args)))
		}
		got = append(got, strings.Join(parts, "+"))
	}
	want = []string{"a10+b10+a10", "1+1+a10", "a100", "a10"}
	if !slices.Equal(got, want) {
		t.Errorf("mixed: got %v, want %v", got, want)
	}
}
