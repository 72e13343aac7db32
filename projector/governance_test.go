package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Builders of the governance events. They take no seq; versioned numbers
// them. Each happens at a time of its own, derived from its arguments.

func roleChanged(conv, actor, user string, role pb.MemberRole) *pb.Event {
	e := base(conv, 0, actor)
	e.CommandId = fmt.Sprintf("cmd-%s-role-%s-%v", conv, user, role)
	e.Body = &pb.Event_MemberRoleChanged{MemberRoleChanged: &pb.MemberRoleChanged{UserId: user, Role: role}}
	return e
}

func transferred(conv, from, to string, reason pb.OwnershipTransferReason) *pb.Event {
	e := base(conv, 0, from)
	e.CommandId = fmt.Sprintf("cmd-%s-transfer-%s-%s", conv, from, to)
	e.Body = &pb.Event_OwnershipTransferred{OwnershipTransferred: &pb.OwnershipTransferred{FromUserId: from, ToUserId: to, Reason: reason}}
	return e
}

func settingsChanged(conv, actor string, s *pb.GroupSettings) *pb.Event {
	e := base(conv, 0, actor)
	e.CommandId = fmt.Sprintf("cmd-%s-settings-%s", conv, s)
	e.Body = &pb.Event_GroupSettingsChanged{GroupSettingsChanged: &pb.GroupSettingsChanged{Settings: s}}
	return e
}

func muted(conv, actor, user string, until int64) *pb.Event {
	e := base(conv, 0, actor)
	e.CommandId = fmt.Sprintf("cmd-%s-mute-%s-%d", conv, user, until)
	m := &pb.MemberMuted{UserId: user}
	if until > 0 {
		m.Until = at(until)
	}
	e.Body = &pb.Event_MemberMuted{MemberMuted: m}
	return e
}

func unmuted(conv, actor, user string) *pb.Event {
	e := base(conv, 0, actor)
	e.CommandId = fmt.Sprintf("cmd-%s-unmute-%s", conv, user)
	e.Body = &pb.Event_MemberUnmuted{MemberUnmuted: &pb.MemberUnmuted{UserId: user}}
	return e
}

func pinned(conv, actor string, seq int64) *pb.Event {
	e := base(conv, 0, actor)
	e.CommandId = fmt.Sprintf("cmd-%s-pin-%d", conv, seq)
	e.OccurredAt = at(seq*10 + 5)
	e.Body = &pb.Event_MessagePinned{MessagePinned: &pb.MessagePinned{MessageSeq: seq}}
	return e
}

func unpinned(conv, actor string, seq int64) *pb.Event {
	e := base(conv, 0, actor)
	e.CommandId = fmt.Sprintf("cmd-%s-unpin-%d", conv, seq)
	e.Body = &pb.Event_MessageUnpinned{MessageUnpinned: &pb.MessageUnpinned{MessageSeq: seq}}
	return e
}

// mentioning is a message naming users (none and all: @all).
func mentioning(conv string, seq int64, sender, text string, all bool, users ...string) *pb.Event {
	e := sent(conv, seq, sender, text)
	e.GetMessageSent().MentionUserIds, e.GetMessageSent().MentionAll = users, all
	return e
}

func str(s string) *string { return &s }

var (
	admin        = pb.MemberRole_MEMBER_ROLE_ADMIN
	plain        = pb.MemberRole_MEMBER_ROLE_MEMBER
	byTransfer   = pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_TRANSFERRED
	byOwnerLeft  = pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_OWNER_LEFT
	policyAdmins = pb.GroupPolicy_GROUP_POLICY_ADMINS.Enum()
	sinceJoin    = pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN.Enum()
)

// governanceLog: bob is made admin, removed and added back (a plain member
// again); carol is muted until a time and unmuted, dave muted for good,
// removed and added back (unmuted); the group is renamed and its settings
// changed twice (the history visibility to since_join and back to all);
// alice transfers ownership to carol, who leaves, handing it back to alice
// (now an admin); bob ends muted until t0+500s. Messages 1 and 5 name
// members, 2 and 9 mention @all; 2 is recalled (its pin and its @all go), 1
// unpinned, 5 pinned.
func governanceLog(c string) []*pb.Event {
	return versioned(
		/* 1 */ group(c, "alice", "Team", "bob", "carol"),
		/* 2 */ roleChanged(c, "alice", "bob", admin),
		/* 3 */ mentioning(c, 1, "alice", "hi @bob @carol", false, "bob", "carol"),
		/* 4 */ mentioning(c, 2, "bob", "@all meeting", true),
		/* 5 */ muted(c, "alice", "carol", 100),
		/* 6 */ pinned(c, "alice", 1),
		/* 7 */ pinned(c, "bob", 2),
		/* 8 */ settingsChanged(c, "bob", &pb.GroupSettings{Title: str("Team 2"), Description: str("about"),
			AnnouncementOnly: proto.Bool(true), WhoMayPin: policyAdmins, HistoryVisibility: sinceJoin}),
		/* 9 */ removed(c, 3, "alice", "bob"),
		/* 10 */ added(c, 4, "alice", "bob", "dave"),
		/* 11 */ muted(c, "alice", "dave", 0),
		/* 12 */ unmuted(c, "alice", "carol"),
		/* 13 */ recalled(c, 2, "alice", "bob"),
		/* 14 */ mentioning(c, 5, "carol", "@dave look", false, "dave"),
		/* 15 */ unpinned(c, "alice", 1),
		/* 16 */ pinned(c, "alice", 5),
		/* 17 */ removed(c, 6, "alice", "dave"),
		/* 18 */ added(c, 7, "alice", "dave"),
		/* 19 */ transferred(c, "alice", "carol", byTransfer),
		/* 20 */ settingsChanged(c, "carol", &pb.GroupSettings{Description: str(""), WhoMayPin: pb.GroupPolicy_GROUP_POLICY_MEMBERS.Enum(),
			HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_ALL.Enum()}),
		/* 21 */ removed(c, 8, "carol", "carol"),
		/* 22 */ transferred(c, "carol", "alice", byOwnerLeft),
		/* 23 */ mentioning(c, 9, "alice", "@all bye", true),
		/* 24 */ muted(c, "alice", "bob", 500),
	)
}

// TestViewsGovernance applies governanceLog one by one and as one log-order
// batch, twice each: roles, the owner, settings, mutes, pins and mentions
// as the last event of each left them, and the reads of Tables on them.
func TestViewsGovernance(t *testing.T) {
	e := newEnv(t, true)
	w, err := NewWriter(e.s, WriterConfig{Keyspace: e.keyspace, LogOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	tables, err := NewTables(e.s, e.keyspace)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"apply", "batch"} {
		t.Run(mode, func(t *testing.T) {
			c := "g:gov-" + mode
			evs := governanceLog(c)
			for range 2 {
				if mode == "apply" {
					e.applyAll(e.keyspace, evs)
					continue
				}
				recs := make([]Record, len(evs))
				for i, ev := range evs {
					b, _ := proto.Marshal(ev)
					recs[i] = Record{Key: []byte(c), Value: b}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if _, err := w.Apply(ctx, recs); err != nil {
					t.Fatal(err)
				}
				cancel()
			}
			// The first pin of the recalled message, replayed late, stays
			// deleted; so do its @all and the unpinned message's pin. The
			// first settings change, replayed late, changes none of the
			// settings the second changed after it.
			e.applyAll(e.keyspace, []*pb.Event{evs[6], evs[3], evs[5], evs[7]})

			e.check(t, c, want{
				conversation: row{"title": "Team 2", "description": "", "avatar_url": nil, "announcement_only": true,
					"who_may_add": nil, "who_may_mention_all": nil, "who_may_pin": "members", "history_visibility": "all", "owner_user_id": "alice",
					"last_version": 24},
				members: map[string]row{
					"alice": {"role": "owner", "removed": false, "muted": false},
					"bob":   {"role": "member", "removed": false, "joined_seq": 4, "muted": true, "muted_until": ts(500), "muted_by": "alice"},
					// The owner who left keeps the role it left with.
					"carol": {"role": "owner", "removed": true, "muted": false, "muted_until": nil, "muted_by": "alice"},
					"dave":  {"role": "member", "removed": false, "joined_seq": 7, "muted": false, "muted_until": nil},
				},
				// The inbox keeps the title the group was created with, also
				// for the members added after the rename.
				inbox:    map[string]row{"alice": {"title": "Team"}, "bob": {"title": "Team"}, "carol": {"title": "Team"}, "dave": {"title": "Team"}},
				messages: map[int64]row{1: {}, 2: {"recalled_by": "alice", "text": nil}, 3: {}, 4: {}, 5: {}, 6: {}, 7: {}, 8: {}, 9: {}},
			})
			var pins []string
			for _, r := range e.rows(e.keyspace, "pins", "conversation_id = ?", c) {
				pins = append(pins, fmt.Sprintf("%v:%v:%v", r["message_seq"], r["pinned_by"], r["pinned_at"]))
			}
			if want := []string{"5:alice:" + ts(55)}; !slices.Equal(pins, want) {
				t.Errorf("pins %v, want %v", pins, want)
			}
			var ments []string
			for _, r := range e.rows(e.keyspace, "mentions", "conversation_id = ?", c) {
				ments = append(ments, fmt.Sprintf("%v@%v:%v:%v", r["user_id"], r["seq"], r["sender_user_id"], r["occurred_at"]))
			}
			slices.Sort(ments)
			if want := []string{"bob@1:alice:" + ts(1), "carol@1:alice:" + ts(1), "dave@5:carol:" + ts(5)}; !slices.Equal(ments, want) {
				t.Errorf("mentions %v, want %v", ments, want)
			}
			var all []string
			for _, r := range e.rows(e.keyspace, "mentions_all", "conversation_id = ?", c) {
				all = append(all, fmt.Sprintf("%v:%v", r["seq"], r["sender_user_id"]))
			}
			if want := []string{"9:alice"}; !slices.Equal(all, want) {
				t.Errorf("mentions_all %v, want %v (the recalled message's gone)", all, want)
			}

			// The reads.
			ctx := t.Context()
			conv, found, err := tables.Conversation(ctx, c)
			if err != nil || !found {
				t.Fatalf("Conversation: %v, %v", found, err)
			}
			if conv.Title != "Team 2" || conv.Description != "" || conv.AvatarURL != "" || !conv.AnnouncementOnly ||
				conv.WhoMayAdd != "" || conv.WhoMayMentionAll != "" || conv.WhoMayPin != "members" || conv.HistoryVisibility != "all" || conv.OwnerUserID != "alice" {
				t.Errorf("Conversation = %+v", conv)
			}
			members, err := tables.Members(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range members {
				got = append(got, fmt.Sprintf("%s:%s:removed=%v:muted=%v:%s:%s", m.UserID, m.Role, m.Removed, m.Muted,
					m.MutedUntil.Format(time.RFC3339), m.MutedBy))
			}
			zero := time.Time{}.Format(time.RFC3339)
			wantMembers := []string{
				"alice:owner:removed=false:muted=false:" + zero + ":",
				"bob:member:removed=false:muted=true:" + at(500).AsTime().Format(time.RFC3339) + ":alice",
				"carol:owner:removed=true:muted=false:" + zero + ":", // an unmute's muted_by is not shown
				"dave:member:removed=false:muted=false:" + zero + ":",
			}
			if !slices.Equal(got, wantMembers) {
				t.Errorf("Members\n got %v\nwant %v", got, wantMembers)
			}
			if m, _, err := tables.Member(ctx, c, "bob"); err != nil || !m.Muted || !m.MutedUntil.Equal(at(500).AsTime()) || m.MutedBy != "alice" {
				t.Errorf("Member(bob) = %+v, %v", m, err)
			}
			if ps, err := tables.Pins(ctx, c); err != nil || len(ps) != 1 || ps[0] != (Pin{5, "alice", at(55).AsTime()}) {
				t.Errorf("Pins = %+v, %v", ps, err)
			}
			for _, tc := range []struct {
				user  string
				after int64
				named []int64
				all   []int64
				count int64
			}{
				{"bob", 0, []int64{1}, []int64{9}, 2},
				{"bob", 4, nil, []int64{9}, 1}, // bob's read mark after the re-add
				{"carol", 0, []int64{1}, []int64{9}, 2},
				{"dave", 0, []int64{5}, []int64{9}, 2},
				{"dave", 7, nil, []int64{9}, 1},
				{"dave", 9, nil, nil, 0},
				{"erin", 0, nil, []int64{9}, 1},
			} {
				named, err := tables.Mentions(ctx, tc.user, c, tc.after, 10)
				if err != nil || !slices.Equal(mentionSeqs(named, false), tc.named) {
					t.Errorf("Mentions(%s, after %d) = %+v, %v; want seqs %v", tc.user, tc.after, named, err, tc.named)
				}
				all, err := tables.MentionsAll(ctx, c, tc.after, 10)
				if err != nil || !slices.Equal(mentionSeqs(all, true), tc.all) {
					t.Errorf("MentionsAll(after %d) = %+v, %v; want seqs %v", tc.after, all, err, tc.all)
				}
				if n, err := tables.CountMentions(ctx, tc.user, c, tc.after); err != nil || n != tc.count {
					t.Errorf("CountMentions(%s, after %d) = %d, %v; want %d", tc.user, tc.after, n, err, tc.count)
				}
			}
			if m, err := tables.Mentions(ctx, "dave", c, 0, 1); err != nil || len(m) != 1 || m[0] != (Mention{5, "carol", at(5).AsTime(), false}) {
				t.Errorf("Mentions(dave) = %+v, %v", m, err)
			}
		})
	}
}

// mentionSeqs are the seqs of ms, nil when none, checking All on the way.
func mentionSeqs(ms []Mention, all bool) []int64 {
	var out []int64
	for _, m := range ms {
		if m.All != all {
			return []int64{-1}
		}
		out = append(out, m.Seq)
	}
	return out
}

// TestViewsGovernanceAnyOrder: a rename (with other settings), an added
// member, a role change and a transfer, forwards, backwards and twice: the
// same rows, the inbox copy of the title the creation's in both orders.
func TestViewsGovernanceAnyOrder(t *testing.T) {
	e := newEnv(t, true)
	for _, order := range []string{"fwd", "rev"} {
		c := "g:gov-order-" + order
		evs := versioned(
			group(c, "alice", "Team", "bob"),
			settingsChanged(c, "alice", &pb.GroupSettings{Title: str("Renamed"), WhoMayAdd: policyAdmins, HistoryVisibility: sinceJoin}),
			added(c, 1, "alice", "dave"),
			roleChanged(c, "alice", "bob", admin),
			transferred(c, "alice", "bob", byTransfer),
			roleChanged(c, "bob", "dave", admin),
			roleChanged(c, "bob", "dave", plain),
			muted(c, "bob", "dave", 0),
			unmuted(c, "bob", "dave"),
			muted(c, "bob", "alice", 90),
		)
		if order == "rev" {
			slices.Reverse(evs)
		}
		e.applyAll(e.keyspace, evs)
		e.applyAll(e.keyspace, evs)
		e.check(t, c, want{
			conversation: row{"title": "Renamed", "who_may_add": "admins", "history_visibility": "since_join", "owner_user_id": "bob", "kind": "group"},
			members: map[string]row{
				"alice": {"role": "admin", "muted": true, "muted_until": ts(90), "muted_by": "bob"},
				"bob":   {"role": "owner", "muted": false},
				"dave":  {"role": "member", "muted": false, "muted_until": nil, "muted_by": "bob"},
			},
			inbox:    map[string]row{"alice": {"title": "Team"}, "bob": {"title": "Team"}, "dave": {"title": "Team", "kind": "group"}},
			messages: map[int64]row{1: {"type": "MembersAdded"}},
		})
	}
	// A direct conversation has no owner.
	d := "d:gov-direct"
	e.applyAll(e.keyspace, versioned(created(d, "alice", pb.ConversationKind_CONVERSATION_KIND_DIRECT, "", "bob")))
	e.check(t, d, want{conversation: row{"owner_user_id": nil, "kind": "direct"},
		members: map[string]row{"alice": {"role": "member"}, "bob": {"role": "member"}}, inbox: map[string]row{"alice": {}, "bob": {}}})
}

// TestDecodeGovernance: a governance event without the user it is about,
// or a pin without its message, is poison.
func TestDecodeGovernance(t *testing.T) {
	c := "g:decode"
	for _, tc := range []struct {
		ev     *pb.Event
		poison string
	}{
		{roleChanged(c, "alice", "bob", admin), ""},
		{roleChanged(c, "alice", "", admin), "without its user_id"},
		{roleChanged(c, "alice", "bob", pb.MemberRole_MEMBER_ROLE_OWNER), "with role"},
		{roleChanged(c, "alice", "bob", pb.MemberRole_MEMBER_ROLE_UNSPECIFIED), "with role"},
		{transferred(c, "alice", "bob", byTransfer), ""},
		{transferred(c, "alice", "", byTransfer), "without its user_id"},
		{transferred(c, "", "bob", byTransfer), "without"},
		{transferred(c, "alice", "bob", pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_UNSPECIFIED), "unknown reason"},
		{muted(c, "alice", "bob", 0), ""},
		{muted(c, "alice", "", 5), "without its user_id"},
		{unmuted(c, "alice", ""), "without its user_id"},
		{settingsChanged(c, "alice", &pb.GroupSettings{Title: str("x")}), ""},
		{settingsChanged(c, "", &pb.GroupSettings{Title: str("x")}), "without actor_user_id"},
		{pinned(c, "alice", 1), ""},
		{pinned(c, "alice", 0), "without a message_seq"},
		{unpinned(c, "alice", -1), "without a message_seq"},
		{pinned(c, "", 1), "without actor_user_id"},
		{mentioning(c, 1, "alice", "hi", false, "bob", ""), "empty mention"},
		{mentioning(c, 1, "alice", "hi", true), ""},
		{&pb.Event{ConversationId: c, Version: 3, CommandId: "w", Body: &pb.Event_Withheld{Withheld: &pb.Withheld{}}}, "never an event of the log"},
	} {
		raw, _ := proto.Marshal(tc.ev)
		_, err := decode([]byte(c), raw)
		switch {
		case tc.poison == "" && err != nil:
			t.Errorf("%v: %v", tc.ev, err)
		case tc.poison != "" && (!errors.Is(err, ErrPoison) || !strings.Contains(err.Error(), tc.poison)):
			t.Errorf("%v: error %v, want poison %q", tc.ev, err, tc.poison)
		}
	}
}
