package system_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// syncState is what a device knows of its conversations, built either from
// the events it applied or from a fresh fetch through query. Both render to
// the same text, which is what the sync test compares.
type syncState map[string]*syncConv

type syncConv struct {
	kind, title string
	settings    syncSettings // a group's, besides its title
	version     int64
	members     map[string]*syncMember
	messages    map[int64]*syncMsg
	pins        map[int64]bool
}

// syncSettings are a group's settings as the API names them, each at its
// default until changed.
type syncSettings struct {
	Description       string `json:"description"`
	AvatarURL         string `json:"avatar_url"`
	AnnouncementOnly  bool   `json:"announcement_only"`
	WhoMayAdd         string `json:"who_may_add"`
	WhoMayMentionAll  string `json:"who_may_mention_all"`
	WhoMayPin         string `json:"who_may_pin"`
	HistoryVisibility string `json:"history_visibility"`
	JoinRequests      bool   `json:"join_requests"`
}

var defaultSettings = syncSettings{WhoMayAdd: "members", WhoMayMentionAll: "members", WhoMayPin: "members", HistoryVisibility: "all"}

func policyText(p pb.GroupPolicy) string {
	if p == pb.GroupPolicy_GROUP_POLICY_ADMINS {
		return "admins"
	}
	return "members"
}

// apply takes the settings a GroupSettingsChanged carries.
func (st *syncSettings) apply(g *pb.GroupSettings) {
	if g.Description != nil {
		st.Description = g.GetDescription()
	}
	if g.AvatarUrl != nil {
		st.AvatarURL = g.GetAvatarUrl()
	}
	if g.AnnouncementOnly != nil {
		st.AnnouncementOnly = g.GetAnnouncementOnly()
	}
	if g.WhoMayAdd != nil {
		st.WhoMayAdd = policyText(g.GetWhoMayAdd())
	}
	if g.WhoMayMentionAll != nil {
		st.WhoMayMentionAll = policyText(g.GetWhoMayMentionAll())
	}
	if g.WhoMayPin != nil {
		st.WhoMayPin = policyText(g.GetWhoMayPin())
	}
	if g.HistoryVisibility != nil {
		st.HistoryVisibility = strings.ToLower(strings.TrimPrefix(g.GetHistoryVisibility().String(), "HISTORY_VISIBILITY_"))
	}
	if g.JoinRequests != nil {
		st.JoinRequests = g.GetJoinRequests()
	}
}

type syncMember struct {
	role            string
	read, delivered int64
}

type syncMsg struct {
	sender, text string
	edits        int
	recalled     bool
	replyTo      int64
	forwarded    string                     // "conversation/seq/sender" of a forward's origin
	reactions    map[string]map[string]bool // emoji -> users
}

// syncUser is what a device knows of its user's own stream: the settings
// made on any of its devices.
type syncUser struct {
	version int64
	prefs   map[string]*syncPrefs // conversation -> settings
	blocks  map[string]bool
}

type syncPrefs struct {
	muted            string // "", "forever" or the end, RFC 3339
	pinned           bool
	archived, marked int64
	hiddenUpTo       int64
	hidden           map[int64]bool
}

func newSyncUser() *syncUser {
	return &syncUser{prefs: map[string]*syncPrefs{}, blocks: map[string]bool{}}
}

func (u *syncUser) of(conv string) *syncPrefs {
	if u.prefs[conv] == nil {
		u.prefs[conv] = &syncPrefs{hidden: map[int64]bool{}}
	}
	return u.prefs[conv]
}

func muteText(forever bool, until time.Time) string {
	switch {
	case forever:
		return "forever"
	case until.IsZero():
		return ""
	}
	return until.UTC().Format(time.RFC3339)
}

// apply applies one event of the user's stream; it reports whether it was new.
func (u *syncUser) apply(ev *pb.Event) bool {
	if ev.GetVersion() <= u.version {
		return false
	}
	u.version = ev.GetVersion()
	switch b := ev.GetBody().(type) {
	case *pb.Event_ConversationPrefsChanged:
		c := b.ConversationPrefsChanged
		p := u.of(c.GetConversationId())
		if c.Mute != nil {
			var until time.Time
			if c.GetMute().GetUntil() != nil {
				until = c.GetMute().GetUntil().AsTime()
			}
			p.muted = muteText(c.GetMute().GetForever(), until)
		}
		if c.Pinned != nil {
			p.pinned = c.GetPinned()
		}
		if c.ArchivedUpToSeq != nil {
			p.archived = c.GetArchivedUpToSeq()
		}
		if c.UnreadMarkedAtSeq != nil {
			p.marked = c.GetUnreadMarkedAtSeq()
		}
	case *pb.Event_MessagesHidden:
		h := b.MessagesHidden
		p := u.of(h.GetConversationId())
		p.hiddenUpTo = max(p.hiddenUpTo, h.GetUpToSeq())
		for _, seq := range h.GetSeqs() {
			p.hidden[seq] = true
		}
	case *pb.Event_UserBlocked:
		u.blocks[b.UserBlocked.GetUserId()] = true
	case *pb.Event_UserUnblocked:
		delete(u.blocks, b.UserUnblocked.GetUserId())
	}
	return true
}

// hides reports whether the user deleted message seq of conv for itself.
func (u *syncUser) hides(conv string, seq int64) bool {
	if u == nil {
		return false
	}
	p := u.prefs[conv]
	return p != nil && (seq <= p.hiddenUpTo || p.hidden[seq])
}

// render prints the user's settings canonically: conversations whose
// settings are all defaults print nothing, however they got there.
func (u *syncUser) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "user stream at %d, blocks %v\n", u.version, slices.Sorted(maps.Keys(u.blocks)))
	for _, id := range slices.Sorted(maps.Keys(u.prefs)) {
		p := u.prefs[id]
		if p.muted == "" && !p.pinned && p.archived == 0 && p.marked == 0 && p.hiddenUpTo == 0 && len(p.hidden) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  prefs %s muted %q pinned %v archived %d marked %d hidden up to %d %v\n",
			id, p.muted, p.pinned, p.archived, p.marked, p.hiddenUpTo, slices.Sorted(maps.Keys(p.hidden)))
	}
	return b.String()
}

func roleName(r pb.MemberRole) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "MEMBER_ROLE_"))
}

// apply applies one event the device received; it reports whether the event
// was new (its version above what the conversation holds).
func (s syncState) apply(ev *pb.Event) bool {
	id := ev.GetConversationId()
	c := s[id]
	if cc := ev.GetConversationCreated(); cc != nil {
		if c != nil {
			return false
		}
		c = &syncConv{kind: strings.ToLower(strings.TrimPrefix(cc.GetKind().String(), "CONVERSATION_KIND_")), title: cc.GetTitle(),
			members: map[string]*syncMember{}, messages: map[int64]*syncMsg{}, pins: map[int64]bool{}, version: ev.GetVersion()}
		if cc.GetKind() == pb.ConversationKind_CONVERSATION_KIND_GROUP {
			c.settings = defaultSettings
		}
		for i, u := range cc.GetMemberUserIds() {
			role := "member"
			if i == 0 && cc.GetKind() == pb.ConversationKind_CONVERSATION_KIND_GROUP {
				role = "owner"
			}
			c.members[u] = &syncMember{role: role}
		}
		s[id] = c
		return true
	}
	if c == nil || ev.GetVersion() <= c.version {
		return false
	}
	c.version = ev.GetVersion()
	actor := ev.GetActorUserId()
	mark := func(u string, read, delivered int64) {
		if m := c.members[u]; m != nil {
			m.read, m.delivered = max(m.read, read), max(m.delivered, delivered, read)
		}
	}
	msg := func(seq int64) *syncMsg {
		if m := c.messages[seq]; m != nil {
			return m
		}
		return &syncMsg{} // a message this state never saw: changes to it go nowhere
	}
	switch b := ev.GetBody().(type) {
	case *pb.Event_MembersAdded:
		for _, u := range b.MembersAdded.GetUserIds() {
			c.members[u] = &syncMember{role: "member", read: ev.GetSeq(), delivered: ev.GetSeq()}
		}
	case *pb.Event_MemberRemoved:
		delete(c.members, b.MemberRemoved.GetUserId())
	case *pb.Event_MessageSent:
		c.messages[ev.GetSeq()] = &syncMsg{sender: actor, text: b.MessageSent.GetText(), replyTo: b.MessageSent.GetReplyToSeq(),
			reactions: map[string]map[string]bool{}}
		if o := b.MessageSent.GetForwardedFrom(); o != nil {
			c.messages[ev.GetSeq()].forwarded = fmt.Sprintf("%s/%d/%s", o.GetConversationId(), o.GetSeq(), o.GetSenderUserId())
		}
		mark(actor, ev.GetSeq(), ev.GetSeq())
	case *pb.Event_ReadUpTo:
		mark(actor, b.ReadUpTo.GetUpToSeq(), 0)
	case *pb.Event_DeliveredUpTo:
		mark(actor, 0, b.DeliveredUpTo.GetUpToSeq())
	case *pb.Event_MessageEdited:
		m := msg(b.MessageEdited.GetMessageSeq())
		m.text, m.edits = b.MessageEdited.GetText(), int(b.MessageEdited.GetEditNumber())
	case *pb.Event_MessageRecalled:
		m := msg(b.MessageRecalled.GetMessageSeq())
		m.text, m.recalled, m.reactions = "", true, map[string]map[string]bool{}
		delete(c.pins, b.MessageRecalled.GetMessageSeq())
	case *pb.Event_ReactionAdded:
		m := msg(b.ReactionAdded.GetMessageSeq())
		if m.reactions != nil {
			if m.reactions[b.ReactionAdded.GetEmoji()] == nil {
				m.reactions[b.ReactionAdded.GetEmoji()] = map[string]bool{}
			}
			m.reactions[b.ReactionAdded.GetEmoji()][actor] = true
		}
	case *pb.Event_ReactionRemoved:
		m := msg(b.ReactionRemoved.GetMessageSeq())
		delete(m.reactions[b.ReactionRemoved.GetEmoji()], actor)
		if len(m.reactions[b.ReactionRemoved.GetEmoji()]) == 0 {
			delete(m.reactions, b.ReactionRemoved.GetEmoji())
		}
	case *pb.Event_MessagePinned:
		c.pins[b.MessagePinned.GetMessageSeq()] = true
	case *pb.Event_MessageUnpinned:
		delete(c.pins, b.MessageUnpinned.GetMessageSeq())
	case *pb.Event_MemberRoleChanged:
		if m := c.members[b.MemberRoleChanged.GetUserId()]; m != nil {
			m.role = roleName(b.MemberRoleChanged.GetRole())
		}
	case *pb.Event_OwnershipTransferred:
		o := b.OwnershipTransferred
		if m := c.members[o.GetFromUserId()]; m != nil {
			m.role = "admin"
		}
		if m := c.members[o.GetToUserId()]; m != nil {
			m.role = "owner"
		}
	case *pb.Event_GroupSettingsChanged:
		if st := b.GroupSettingsChanged.GetSettings(); st.Title != nil {
			c.title = st.GetTitle()
		}
		c.settings.apply(b.GroupSettingsChanged.GetSettings())
	}
	return true
}

// render prints a state canonically, without the messages user deleted for
// itself (a fresh fetch never sees them).
func (s syncState) render(user *syncUser) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(s)) {
		c := s[id]
		fmt.Fprintf(&b, "%s %s %q %+v\n", id, c.kind, c.title, c.settings)
		for _, u := range slices.Sorted(maps.Keys(c.members)) {
			m := c.members[u]
			fmt.Fprintf(&b, "  member %s %s read %d delivered %d\n", u, m.role, m.read, m.delivered)
		}
		for _, seq := range slices.Sorted(maps.Keys(c.messages)) {
			m := c.messages[seq]
			if user.hides(id, seq) {
				continue
			}
			fmt.Fprintf(&b, "  %d %s %q edits %d recalled %v reply %d from %q", seq, m.sender, m.text, m.edits, m.recalled, m.replyTo, m.forwarded)
			for _, e := range slices.Sorted(maps.Keys(m.reactions)) {
				fmt.Fprintf(&b, " %s%v", e, slices.Sorted(maps.Keys(m.reactions[e])))
			}
			b.WriteString("\n")
		}
		var pins []int64
		for _, seq := range slices.Sorted(maps.Keys(c.pins)) {
			if !user.hides(id, seq) { // a pin of a message deleted for oneself is not listed
				pins = append(pins, seq)
			}
		}
		fmt.Fprintf(&b, "  pins %v\n", pins)
	}
	return b.String()
}

// fetchConv is a fresh device's full fetch of one conversation through
// query: the conversation (members, marks, roles, version) and its whole
// history.
func fetchConv(t *testing.T, sys *system.System, user, conv string) (*syncConv, error) {
	t.Helper()
	var cv struct {
		Kind     string        `json:"kind"`
		Title    string        `json:"title"`
		Version  int64         `json:"version"`
		Settings *syncSettings `json:"settings"`
		Members  []struct {
			UserID       string `json:"user_id"`
			Role         string `json:"role"`
			ReadSeq      int64  `json:"read_seq"`
			DeliveredSeq int64  `json:"delivered_seq"`
		} `json:"members"`
	}
	if code := api(t, sys, user, "/v1/conversations/"+conv, &cv); code != 200 {
		return nil, fmt.Errorf("conversation %s: status %d", conv, code)
	}
	c := &syncConv{kind: cv.Kind, title: cv.Title, version: cv.Version, members: map[string]*syncMember{},
		messages: map[int64]*syncMsg{}, pins: map[int64]bool{}}
	if cv.Settings != nil {
		c.settings = *cv.Settings
	}
	for _, m := range cv.Members {
		c.members[m.UserID] = &syncMember{role: m.Role, read: m.ReadSeq, delivered: m.DeliveredSeq}
	}
	var pins struct {
		Pins []struct {
			Seq int64 `json:"seq"`
		} `json:"pins"`
	}
	if code := api(t, sys, user, "/v1/conversations/"+conv+"/pins", &pins); code != 200 {
		return nil, fmt.Errorf("pins of %s: status %d", conv, code)
	}
	for _, p := range pins.Pins {
		c.pins[p.Seq] = true
	}
	after := int64(0)
	for {
		var page struct {
			Messages []struct {
				Seq       int64   `json:"seq"`
				Type      string  `json:"type"`
				Sender    string  `json:"sender"`
				Text      *string `json:"text"`
				EditCount int     `json:"edit_count"`
				Recalled  *struct {
					By string `json:"by"`
				} `json:"recalled"`
				ReplyTo *struct {
					Seq int64 `json:"seq"`
				} `json:"reply_to"`
				ForwardedFrom *struct {
					ConversationID string `json:"conversation_id"`
					Seq            int64  `json:"seq"`
					SenderUserID   string `json:"sender_user_id"`
				} `json:"forwarded_from"`
				Reactions []struct {
					Emoji   string   `json:"emoji"`
					UserIDs []string `json:"user_ids"`
				} `json:"reactions"`
			} `json:"messages"`
		}
		if code := api(t, sys, user, fmt.Sprintf("/v1/conversations/%s/messages?after=%d&limit=200", conv, after), &page); code != 200 {
			return nil, fmt.Errorf("history of %s: status %d", conv, code)
		}
		for _, it := range page.Messages {
			after = it.Seq
			if it.Type != "MessageSent" {
				continue
			}
			m := &syncMsg{sender: it.Sender, edits: it.EditCount, recalled: it.Recalled != nil, reactions: map[string]map[string]bool{}}
			if it.Text != nil {
				m.text = *it.Text
			}
			if it.ReplyTo != nil {
				m.replyTo = it.ReplyTo.Seq
			}
			if o := it.ForwardedFrom; o != nil {
				m.forwarded = fmt.Sprintf("%s/%d/%s", o.ConversationID, o.Seq, o.SenderUserID)
			}
			for _, r := range it.Reactions {
				m.reactions[r.Emoji] = map[string]bool{}
				for _, u := range r.UserIDs {
					m.reactions[r.Emoji][u] = true
				}
			}
			c.messages[it.Seq] = m
		}
		if len(page.Messages) < 200 {
			return c, nil
		}
	}
}

// fetchUser is a fresh device's fetch of its user's settings.
func fetchUser(t *testing.T, sys *system.System, user string) (*syncUser, error) {
	t.Helper()
	var st settings
	if code := api(t, sys, user, "/v1/me/settings", &st); code != 200 {
		return nil, fmt.Errorf("settings: status %d", code)
	}
	u := newSyncUser()
	u.version = st.Version
	for _, c := range st.Conversations {
		p := u.of(c.ConversationID)
		var until time.Time
		if c.MutedUntil != "" {
			var err error
			if until, err = time.Parse(time.RFC3339Nano, c.MutedUntil); err != nil {
				return nil, fmt.Errorf("muted_until %q: %v", c.MutedUntil, err)
			}
		}
		p.muted = muteText(c.MutedForever, until)
		p.pinned, p.archived, p.marked, p.hiddenUpTo = c.Pinned, c.ArchivedUpToSeq, c.UnreadMarkedAtSeq, c.HiddenUpToSeq
		for _, seq := range c.HiddenSeqs {
			p.hidden[seq] = true
		}
	}
	for _, b := range st.Blocks {
		u.blocks[b.UserID] = true
	}
	return u, nil
}

// fetchAll is a fresh device's full fetch of every conversation in user's
// inbox, and of its user's settings.
func fetchAll(t *testing.T, sys *system.System, user string) (syncState, *syncUser, error) {
	t.Helper()
	u, err := fetchUser(t, sys, user)
	if err != nil {
		return nil, nil, err
	}
	var in inbox
	if code := api(t, sys, user, "/v1/inbox?limit=200", &in); code != 200 {
		return nil, nil, fmt.Errorf("inbox: status %d", code)
	}
	out := syncState{}
	for _, it := range in.Conversations {
		c, err := fetchConv(t, sys, user, it.ConversationID)
		if err != nil {
			return nil, nil, err
		}
		out[it.ConversationID] = c
	}
	return out, u, nil
}

// TestSyncMissesNothing: a device of u follows 20 conversations live, goes
// offline, and while it is away the others (and u on another device) do
// every kind of action in them; u is removed from one and added to three
// new ones, and u's laptop changes u's settings (pins, mutes, archive, mark
// unread, delete for me, blocks) and forwards a message. On reconnecting
// the device resumes from the versions it holds, its user stream included
// (fetching the added conversations), and its reconstructed state equals a
// fresh device's full fetch exactly, settings included, with no event
// applied twice.
func TestSyncMissesNothing(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	rng := rand.New(rand.NewPCG(7, 11))
	others := []string{"a", "b", "c", "d", "e", "f"}
	devs := map[string]*testenv.WSClient{}
	for i, u := range others {
		devs[u] = connect(t, sys, i%2, u, "phone")
	}
	phone := connect(t, sys, 0, "u", "phone")
	laptop := connect(t, sys, 1, "u", "laptop")
	state, user := syncState{}, newSyncUser()
	stream := schemas.UserStreamID("u")
	seen := map[string]bool{} // conversation/version applied
	// joinedAt is, per since_join group u was added to later, the seq of
	// its join: nothing of an earlier message may reach the phone but
	// withheld.
	joinedAt, withheld := map[string]int64{}, 0
	take := func(evs []*pb.Event) {
		for _, ev := range evs {
			if ev.GetVersion() == 0 {
				continue // an answer to one of the phone's own commands
			}
			key := fmt.Sprintf("%s/%d", ev.GetConversationId(), ev.GetVersion())
			if seen[key] {
				t.Fatalf("the phone got %s twice: %v", key, ev)
			}
			seen[key] = true
			id := ev.GetConversationId()
			if q := schemas.MessageSeq(ev); q > 0 && q < joinedAt[id] {
				t.Fatalf("the phone got a change of message %d, from before its join at %d: %v", q, joinedAt[id], ev)
			}
			if ev.GetWithheld() != nil {
				withheld++
			}
			if ma := ev.GetMembersAdded(); ma != nil && state[id] == nil && slices.Contains(ma.GetUserIds(), "u") {
				// Added to a conversation it never saw: fetch it, as a
				// device does, from at least this event on.
				joinedAt[id] = ev.GetSeq()
				testenv.Eventually(t, time.Minute, func() string {
					c, err := fetchConv(t, sys, "u", id)
					switch {
					case err != nil:
						return err.Error()
					case c.version < ev.GetVersion():
						return fmt.Sprintf("fetched %s at version %d, before the join at %d", id, c.version, ev.GetVersion())
					}
					state[id] = c
					return ""
				})
				continue
			}
			if ev.GetConversationId() == stream {
				user.apply(ev)
			} else {
				state.apply(ev)
			}
		}
	}

	// 20 conversations: 14 groups of a with u and others, 6 direct ones;
	// then one more, see below.
	type conv struct {
		id      string
		members []string // besides u
		group   bool
	}
	var convs []conv
	for i := range 14 {
		m := []string{"a", others[1+i%5], others[1+(i+2)%5]}
		id := accepted(t, devs["a"].MustDo("", group(fmt.Sprintf("g%d", i), append(slices.Clone(m[1:]), "u")...)))
		convs = append(convs, conv{id, m, true})
	}
	for _, u := range others {
		convs = append(convs, conv{accepted(t, devs[u].MustDo("", direct("u"))), []string{u}, false})
	}
	// And a group whose history is visible since the join, which u joins
	// after two messages: their changes reach u withheld.
	sj := accepted(t, devs["a"].MustDo("", group("since join", "b")))
	accepted(t, devs["a"].MustDo(sj, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{
		HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN.Enum()}}))
	accepted(t, devs["a"].MustDo(sj, send("sj-1", "before u")))
	accepted(t, devs["b"].MustDo(sj, send("sj-2", "before u too")))
	accepted(t, devs["a"].MustDo(sj, &pb.AddMembers{UserIds: []string{"u"}}))
	convs = append(convs, conv{sj, []string{"a", "b"}, true})
	for i, cv := range convs {
		sender := devs[cv.members[0]]
		accepted(t, sender.MustDo(cv.id, send(fmt.Sprintf("hello-%d", i), "hello")))
	}
	// The phone follows all of it live, then goes away.
	hellos := map[string]bool{}
	var live []*pb.Event
	phone.WaitEvent("every hello", func(e *pb.Event) bool {
		live = append(live, e)
		if e.GetMessageSent() != nil {
			hellos[e.GetConversationId()] = true
		}
		return len(hellos) == len(convs)
	})
	take(live)
	if len(state) != len(convs) {
		t.Fatalf("the phone follows %d conversations, want %d", len(state), len(convs))
	}
	// The phone follows u's own stream too.
	yes := true
	pin := laptop.MustDo(convs[1].id, &pb.UpdateConversationPrefs{Pinned: &yes}).GetAccepted().GetCommandId()
	take(until(t, phone, stream, func(e *pb.Event) bool { return e.GetCommandId() == pin }))
	cursors := map[string]int64{stream: user.version}
	for id, c := range state {
		cursors[id] = c.version
	}
	phone.Close()

	// While away: every kind of action, from the others and from u's laptop.
	n := 0
	next := func() string { n++; return fmt.Sprintf("x%d", n) }
	for round := range 4 {
		for i, cv := range convs {
			who := cv.members[rng.IntN(len(cv.members))]
			d := devs[who]
			seqs := len(state[cv.id].messages) + round // an estimate: actions on a missing seq are refused, which is fine
			target := int64(1 + rng.IntN(max(seqs, 1)))
			switch k := (round*7 + i) % 9; k {
			case 0:
				accepted(t, d.MustDo(cv.id, &pb.SendMessage{ClientMsgId: next(), Text: "re", ReplyToSeq: target}))
			case 1:
				accepted(t, d.MustDo(cv.id, &pb.SendMessage{ClientMsgId: next(), Text: "@u", MentionUserIds: []string{"u"}}))
			case 2:
				accepted(t, d.MustDo(cv.id, &pb.AddReaction{Seq: target, Emoji: "+1"}))
			case 3:
				accepted(t, d.MustDo(cv.id, &pb.EditMessage{Seq: 1, Text: "hello, edited", ClientMsgId: next()}))
			case 4:
				accepted(t, d.MustDo(cv.id, &pb.MarkRead{UpToSeq: target}))
			case 5:
				accepted(t, laptop.MustDo(cv.id, &pb.AddReaction{Seq: 1, Emoji: "👀"}))
				accepted(t, laptop.MustDo(cv.id, &pb.MarkRead{UpToSeq: target}))
			case 6:
				accepted(t, laptop.MustDo(cv.id, send(next(), "from the laptop")))
			case 7:
				if cv.group {
					accepted(t, devs["a"].MustDo(cv.id, &pb.PinMessage{Seq: 1}))
					accepted(t, devs["a"].MustDo(cv.id, &pb.SetMemberRole{UserId: cv.members[1], Role: pb.MemberRole_MEMBER_ROLE_ADMIN}))
				} else {
					accepted(t, d.MustDo(cv.id, &pb.RecallMessage{Seq: 1}))
				}
			case 8:
				if cv.group {
					title := fmt.Sprintf("renamed %d", round)
					accepted(t, devs["a"].MustDo(cv.id, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{Title: &title}}))
					accepted(t, devs["a"].MustDo(cv.id, &pb.AddMembers{UserIds: []string{"f"}}))
				} else {
					accepted(t, d.MustDo(cv.id, &pb.RemoveReaction{Seq: target, Emoji: "+1"}))
				}
			}
		}
	}
	// u's own settings, on the laptop: every kind.
	no := false
	mutedUntil := timestamppb.New(time.Now().Add(72 * time.Hour).Truncate(time.Second))
	for _, c := range []struct {
		conv int
		body proto.Message
	}{
		{1, &pb.UpdateConversationPrefs{Pinned: &no}},
		{6, &pb.UpdateConversationPrefs{Pinned: &yes}},
		{2, &pb.UpdateConversationPrefs{Mute: &pb.Mute{Forever: true}}},
		{3, &pb.UpdateConversationPrefs{Mute: &pb.Mute{Until: mutedUntil}}},
		{3, &pb.UpdateConversationPrefs{ArchivedUpToSeq: proto.Int64(2)}},
		{4, &pb.UpdateConversationPrefs{Mute: &pb.Mute{Forever: true}}},
		{4, &pb.UpdateConversationPrefs{Mute: &pb.Mute{}}}, // unmuted again
		{5, &pb.UpdateConversationPrefs{UnreadMarkedAtSeq: proto.Int64(1)}},
		{7, &pb.HideMessages{Seqs: []int64{1, 2}}},
		{8, &pb.HideMessages{UpToSeq: 2}},
		{15, &pb.HideMessages{Seqs: []int64{1}}},
		{-1, &pb.BlockUser{UserId: "e"}},
		{-1, &pb.BlockUser{UserId: "f"}},
		{-1, &pb.UnblockUser{UserId: "e"}},
	} {
		conv := ""
		if c.conv >= 0 {
			conv = convs[c.conv].id
		}
		accepted(t, laptop.MustDo(conv, c.body))
	}
	accepted(t, devs["f"].MustDo(convs[19].id, send(next(), "blocked, refused"))) // f's direct conversation with u
	// A forward, from the laptop: the gateway reads the message from the
	// views, which may not have it yet (NOT_FOUND before anything is appended).
	testenv.Eventually(t, time.Minute, func() string {
		f := laptop.MustDo(convs[9].id, &pb.ForwardMessage{Seq: 1, TargetConversationId: convs[10].id, ClientMsgId: "fwd"})
		if f.GetAccepted() == nil {
			return fmt.Sprintf("forward: %v", f)
		}
		return ""
	})
	// Settings, and joins by link and by request, in one group.
	joinable := convs[11].id
	accepted(t, devs["a"].MustDo(joinable, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{Description: proto.String("joinable"),
		JoinRequests: &yes, WhoMayPin: pb.GroupPolicy_GROUP_POLICY_ADMINS.Enum(), AnnouncementOnly: &yes}}))
	accepted(t, devs["a"].MustDo(joinable, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{AnnouncementOnly: &no}}))
	accepted(t, devs["a"].MustDo(joinable, &pb.CreateInvite{Token: "sync-link-0123456789abcdef"}))
	for _, j := range []struct {
		user    string
		body    *pb.JoinConversation
		approve *bool
	}{{"g", &pb.JoinConversation{Token: "sync-link-0123456789abcdef"}, nil}, {"h", &pb.JoinConversation{Note: "me too"}, &yes},
		{"i", &pb.JoinConversation{}, &no}} {
		d := connect(t, sys, 0, j.user, "phone")
		accepted(t, d.MustDo(joinable, j.body))
		if j.approve != nil {
			d.WaitEvent("the request", func(e *pb.Event) bool { return e.GetJoinRequested().GetUserId() == j.user })
			accepted(t, devs["a"].MustDo(joinable, &pb.DecideJoinRequest{UserId: j.user, Approve: *j.approve}))
		} else {
			d.WaitEvent("the join", func(e *pb.Event) bool { return slices.Contains(e.GetMembersAdded().GetUserIds(), j.user) })
			accepted(t, d.MustDo(joinable, send(next(), "joined by link")))
		}
	}
	// Changes of the messages from before u's join: withheld on resume.
	accepted(t, devs["a"].MustDo(sj, &pb.EditMessage{Seq: 1, Text: "before u, edited", ClientMsgId: next()}))
	accepted(t, devs["b"].MustDo(sj, &pb.AddReaction{Seq: 1, Emoji: "🙈"}))
	accepted(t, devs["a"].MustDo(sj, &pb.PinMessage{Seq: 2}))
	accepted(t, devs["b"].MustDo(sj, &pb.RecallMessage{Seq: 2}))
	removed := convs[0].id
	accepted(t, devs["a"].MustDo(removed, &pb.RemoveMember{UserId: "u"}))
	accepted(t, devs["a"].MustDo(removed, send(next(), "after u left")))
	var added []string
	for i := range 3 {
		id := accepted(t, devs["b"].MustDo("", group(fmt.Sprintf("new%d", i), "u", "c")))
		accepted(t, devs["c"].MustDo(id, send(next(), "welcome")))
		added = append(added, id)
	}

	// Back: resume from the cursors until complete; fetch what was added.
	testenv.Eventually(t, 2*time.Minute, func() string {
		d := connectResuming(t, sys, 1, "u", "phone")
		defer d.Close()
		evs, r := resume(t, d, cursors)
		if _, named := cursors[stream]; !named {
			t.Fatalf("the phone's cursors lack its user stream")
		}
		if len(r.GetFailed()) > 0 || r.GetMore() || len(r.GetRefetch()) > 0 {
			return fmt.Sprintf("resumed %v: resume again", r)
		}
		take(evs)
		for _, rm := range r.GetRemoved() {
			delete(state, rm.GetConversationId())
		}
		for _, a := range r.GetAdded() {
			if a.GetConversationId() == stream {
				return "the user stream was named but is reported added"
			}
			c, err := fetchConv(t, sys, "u", a.GetConversationId())
			if err != nil {
				return err.Error()
			}
			state[a.GetConversationId()] = c
		}
		for id, c := range state {
			cursors[id] = c.version
		}
		cursors[stream] = user.version
		// What was decided after the Resume arrives live.
		take(d.DrainEvents())
		fresh, freshUser, err := fetchAll(t, sys, "u")
		if err != nil {
			return err.Error()
		}
		if got, want := user.render()+state.render(user), freshUser.render()+fresh.render(nil); got != want {
			return fmt.Sprintf("the resumed state differs from a fresh fetch:\n--- resumed\n%s--- fresh\n%s", got, want)
		}
		return ""
	})
	if withheld < 4 {
		t.Fatalf("%d withheld changes reached the phone, want at least the 4 of the messages from before its join", withheld)
	}
	if _, ok := state[removed]; ok {
		t.Fatalf("the conversation u was removed from is still in its state")
	}
	for _, a := range added {
		if _, ok := state[a]; !ok {
			t.Fatalf("added conversation %s is missing", a)
		}
	}
}
