package replay

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// streamModel is what the log says the user streams and the replies leave
// in the views, from the events alone (not through the projector's code):
// each user's conversation prefs (the newest value of each field), hidden
// seqs and clears, and blocks; each conversation's replies. Verify feeds it
// every record it checks, in log order per stream (a stream is in one
// partition), and checkStreams compares it with the live rows.
type streamModel struct {
	mu      sync.Mutex
	users   map[string]string // user stream id → its user
	prefs   map[userConv]*prefsModel
	hidden  map[userConv]map[int64]time.Time // seq → time of its newest hide
	cleared map[userConv]map[int64]time.Time // up_to_seq → time of the clear
	blocks  map[string]map[string]time.Time  // user → blocked user → since
	replies map[string]map[[2]int64]string   // conversation → (reply_to_seq, seq) → sender
}

type userConv struct{ user, conv string }

// prefsModel: one user's prefs of one conversation; nil fields were never
// set (null in the row).
type prefsModel struct {
	mutedForever           *bool
	mutedUntil, pinnedAt   *time.Time
	pinned                 *bool
	archived, markedUnread *int64
	updatedAt              time.Time
}

func newStreamModel() *streamModel {
	return &streamModel{users: map[string]string{}, prefs: map[userConv]*prefsModel{}, hidden: map[userConv]map[int64]time.Time{},
		cleared: map[userConv]map[int64]time.Time{}, blocks: map[string]map[string]time.Time{}, replies: map[string]map[[2]int64]string{}}
}

// event takes one event of the log into the model. Events the projector
// treats as poison (a user stream event not on its actor's stream, or
// without a version) are left out: they write no row.
func (m *streamModel) event(ev *pb.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := ev.GetMessageSent().GetReplyToSeq(); r > 0 && ev.GetSeq() > 0 {
		c := ev.GetConversationId()
		if m.replies[c] == nil {
			m.replies[c] = map[[2]int64]string{}
		}
		m.replies[c][[2]int64{r, ev.GetSeq()}] = ev.GetActorUserId()
		return
	}
	user, at := ev.GetActorUserId(), ev.GetOccurredAt().AsTime().Truncate(time.Millisecond)
	switch ev.GetBody().(type) {
	case *pb.Event_ConversationPrefsChanged, *pb.Event_MessagesHidden, *pb.Event_UserBlocked, *pb.Event_UserUnblocked,
		*pb.Event_PushTargetRegistered, *pb.Event_PushTargetUnregistered, *pb.Event_UserBanned, *pb.Event_UserUnbanned,
		*pb.Event_DeviceRevoked, *pb.Event_DeviceRestored,
		*pb.Event_WebhookCreated, *pb.Event_WebhookDeleted:
		if user == "" || schemas.UserStreamID(user) != ev.GetConversationId() || ev.GetVersion() < 1 {
			return
		}
		m.users[ev.GetConversationId()] = user
	default:
		return
	}
	switch b := ev.GetBody().(type) {
	case *pb.Event_ConversationPrefsChanged:
		c := b.ConversationPrefsChanged
		k := userConv{user, c.GetConversationId()}
		p := m.prefs[k]
		if p == nil {
			p = &prefsModel{}
			m.prefs[k] = p
		}
		if c.Mute != nil {
			forever := c.GetMute().GetForever()
			p.mutedForever, p.mutedUntil = &forever, nil
			if u := c.GetMute().GetUntil(); u != nil && !forever {
				t := u.AsTime().Truncate(time.Millisecond)
				p.mutedUntil = &t
			}
		}
		if c.Pinned != nil {
			pinned := c.GetPinned()
			p.pinned, p.pinnedAt = &pinned, nil
			if pinned {
				p.pinnedAt = &at
			}
		}
		if c.ArchivedUpToSeq != nil {
			v := c.GetArchivedUpToSeq()
			p.archived = &v
		}
		if c.UnreadMarkedAtSeq != nil {
			v := c.GetUnreadMarkedAtSeq()
			p.markedUnread = &v
		}
		p.updatedAt = at
	case *pb.Event_MessagesHidden:
		h := b.MessagesHidden
		k := userConv{user, h.GetConversationId()}
		for _, seq := range h.GetSeqs() {
			if m.hidden[k] == nil {
				m.hidden[k] = map[int64]time.Time{}
			}
			m.hidden[k][seq] = at
		}
		if up := h.GetUpToSeq(); up > 0 {
			if m.cleared[k] == nil {
				m.cleared[k] = map[int64]time.Time{}
			}
			m.cleared[k][up] = at
		}
	case *pb.Event_UserBlocked:
		if m.blocks[user] == nil {
			m.blocks[user] = map[string]time.Time{}
		}
		m.blocks[user][b.UserBlocked.GetUserId()] = at
	case *pb.Event_UserUnblocked:
		delete(m.blocks[user], b.UserUnblocked.GetUserId())
	}
}

// streamUsers are the users of the chosen user stream ids the model knows.
func (m *streamModel) streamUsers(ids []string) []string {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, id := range ids {
		if u, ok := m.users[id]; ok {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// hiddenKeys are the (user, conversation) pairs of user whose hidden rows
// the log wrote.
func (m *streamModel) hiddenKeys(user string) []userConv {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := map[userConv]bool{}
	for k := range m.hidden {
		if k.user == user {
			set[k] = true
		}
	}
	for k := range m.cleared {
		if k.user == user {
			set[k] = true
		}
	}
	return slices.SortedFunc(maps.Keys(set), func(a, b userConv) int {
		if a.conv < b.conv {
			return -1
		}
		if a.conv > b.conv {
			return 1
		}
		return 0
	})
}

// cqlTime is a timestamp as Cassandra's JSON writes it.
func cqlTime(t *time.Time) string {
	if t == nil {
		return "null"
	}
	return fmt.Sprintf("%q", t.UTC().Format("2006-01-02 15:04:05.000Z"))
}

func cqlBool(b *bool) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprint(*b)
}

func cqlInt(n *int64) string {
	if n == nil {
		return "null"
	}
	return fmt.Sprint(*n)
}

// checkStreams compares the live rows of the user stream views and of
// replies with what the log says (streamModel), beyond equality with a
// rebuild (which a projector bug shared by both would pass):
//
//   - each conversation_prefs row holds, per field, the newest value the
//     user's ConversationPrefsChanged events set (null when none did): a
//     mute with neither forever nor until is false and null, pinned_at is
//     the pin's time, updated_at the newest change's;
//   - hidden_messages holds a row per seq the user's MessagesHidden named
//     (hidden_at: its newest hide), history_cleared one per up_to_seq;
//   - blocks holds the users blocked and not unblocked since (blocked_at:
//     the block's time);
//   - replies holds a row per MessageSent with reply_to_seq, by its sender,
//     recalled or not.
//
// With only (Verify's Conversations), only the users whose streams are in
// it and the replies of its conversations are checked.
func checkStreams(live views, m *streamModel, only map[string]bool) []rowDiff {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []rowDiff
	report := func(conv, format string, args ...any) {
		out = append(out, rowDiff{conv, fmt.Sprintf(format, args...)})
	}
	stream := schemas.UserStreamID
	known := func(user string) bool { return only == nil || only[stream(user)] }

	seenPrefs := map[userConv]bool{}
	for _, r := range sortedRows(live, "conversation_prefs") {
		k := userConv{str(r["user_id"]), str(r["conversation_id"])}
		if !known(k.user) {
			continue
		}
		seenPrefs[k] = true
		p := m.prefs[k]
		if p == nil {
			report(stream(k.user), "prefs of %s for %s: live, none in the log", k.user, k.conv)
			continue
		}
		want := map[string]string{
			"muted_forever": cqlBool(p.mutedForever), "muted_until": cqlTime(p.mutedUntil),
			"pinned": cqlBool(p.pinned), "pinned_at": cqlTime(p.pinnedAt),
			"archived_up_to_seq": cqlInt(p.archived), "unread_marked_at_seq": cqlInt(p.markedUnread),
			"updated_at": cqlTime(&p.updatedAt),
		}
		for _, col := range slices.Sorted(maps.Keys(want)) {
			if got := orNull(r[col]); got != want[col] {
				report(stream(k.user), "prefs of %s for %s: %s live %s, log %s", k.user, k.conv, col, got, want[col])
			}
		}
	}
	for _, k := range sortedKeys(m.prefs) {
		if !seenPrefs[k] && known(k.user) {
			report(stream(k.user), "prefs of %s for %s: in the log, no live row", k.user, k.conv)
		}
	}

	type entry struct{ conv, val string }
	// compareSet compares the live rows of a table that holds a set, named
	// by name (ok false: a row of a user not checked), with the log's, by
	// their column col.
	compareSet := func(table, col string, want map[string]entry, name func(r row) (n, conv string, ok bool)) {
		got := map[string]bool{}
		for _, r := range sortedRows(live, table) {
			n, conv, ok := name(r)
			if !ok {
				continue
			}
			got[n] = true
			switch w, in := want[n]; {
			case !in:
				report(conv, "%s: live, not in the log", n)
			case orNull(r[col]) != w.val:
				report(conv, "%s: %s live %s, log %s", n, col, orNull(r[col]), w.val)
			}
		}
		for _, n := range slices.Sorted(maps.Keys(want)) {
			if !got[n] && (only == nil || only[want[n].conv]) {
				report(want[n].conv, "%s: in the log, no live row", n)
			}
		}
	}
	seqName := func(table, user, conv string, seq int64) string {
		return fmt.Sprintf("%s(user_id=%q, conversation_id=%q, %d)", table, user, conv, seq)
	}
	for _, table := range []string{"hidden_messages", "history_cleared"} {
		src, col, seqCol := m.hidden, "hidden_at", "seq"
		if table == "history_cleared" {
			src, col, seqCol = m.cleared, "cleared_at", "up_to_seq"
		}
		want := map[string]entry{}
		for k, seqs := range src {
			for seq, at := range seqs {
				want[seqName(table, k.user, k.conv, seq)] = entry{stream(k.user), cqlTime(&at)}
			}
		}
		compareSet(table, col, want, func(r row) (string, string, bool) {
			user := str(r["user_id"])
			return seqName(table, user, str(r["conversation_id"]), num(r[seqCol])), stream(user), known(user)
		})
	}
	blockName := func(user, other string) string {
		return fmt.Sprintf("blocks(user_id=%q, blocked_user_id=%q)", user, other)
	}
	want := map[string]entry{}
	for user, bs := range m.blocks {
		for other, at := range bs {
			want[blockName(user, other)] = entry{stream(user), cqlTime(&at)}
		}
	}
	compareSet("blocks", "blocked_at", want, func(r row) (string, string, bool) {
		user := str(r["user_id"])
		return blockName(user, str(r["blocked_user_id"])), stream(user), known(user)
	})
	replyName := func(conv string, to, seq int64) string {
		return fmt.Sprintf("replies(conversation_id=%q, reply_to_seq=%d, seq=%d)", conv, to, seq)
	}
	want = map[string]entry{}
	for conv, rs := range m.replies {
		for k, sender := range rs {
			want[replyName(conv, k[0], k[1])] = entry{conv, fmt.Sprintf("%q", sender)}
		}
	}
	compareSet("replies", "sender_user_id", want, func(r row) (string, string, bool) {
		conv := str(r["conversation_id"])
		return replyName(conv, num(r["reply_to_seq"]), num(r["seq"])), conv, only == nil || only[conv]
	})
	return out
}

func sortedKeys[V any](m map[userConv]V) []userConv {
	return slices.SortedFunc(maps.Keys(m), func(a, b userConv) int {
		if a.user != b.user {
			if a.user < b.user {
				return -1
			}
			return 1
		}
		if a.conv < b.conv {
			return -1
		}
		if a.conv > b.conv {
			return 1
		}
		return 0
	})
}
