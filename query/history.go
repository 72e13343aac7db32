package query

import (
	"cmp"
	"context"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
)

// History pages are keyset pages on seq that walk the messages buckets
// (bucket = seq / schemas.MessagesPerBucket) one partition at a time; a
// cursor is a plain seq, never driver page state, so it stays valid across
// restarts and nodes. The walk is bounded by the conversation's last_seq, so
// an absurd before/after costs at most one query. The walk itself is the
// messages table's owner's (projector.Tables.MessagesBefore/After), the same
// one the gateway's resume uses.

// messageItem is one timeline item. Messages (MessageSent) carry their
// current content (the newest edit's text and content type, with edit_count
// and edited_at once edited), the message they answer (reply_to) and their
// current reactions; a recalled message carries recalled instead, and no
// content at all: no text, content_type, edits, reply_to or reactions.
// Notices carry member_ids (and removed_reason).
type messageItem struct {
	Seq           int64            `json:"seq"`
	Type          string           `json:"type"`
	Sender        string           `json:"sender"`
	SenderDevice  string           `json:"sender_device,omitempty"`
	ClientMsgID   string           `json:"client_msg_id,omitempty"`
	ContentType   string           `json:"content_type,omitempty"`
	Text          *string          `json:"text,omitempty"`
	OccurredAt    time.Time        `json:"occurred_at,omitzero"`
	EditCount     int              `json:"edit_count,omitempty"`
	EditedAt      time.Time        `json:"edited_at,omitzero"`
	Recalled      *recallInfo      `json:"recalled,omitempty"`
	ReplyTo       *replyRef        `json:"reply_to,omitempty"`
	ForwardedFrom *forwardRef      `json:"forwarded_from,omitempty"`
	Attachments   []attachmentItem `json:"attachments,omitempty"`
	Reactions     []reactionItem   `json:"reactions,omitempty"`
	MemberIDs     []string         `json:"member_ids,omitempty"`
	RemovedReason string           `json:"removed_reason,omitempty"`
}

// recallInfo says who recalled a message, and when.
type recallInfo struct {
	By string    `json:"by"`
	At time.Time `json:"at,omitzero"`
}

// replyRef is the message a reply answers, as it is now: its sender and the
// first snippetRunes runes of its current text, or recalled (and no
// snippet) once it is recalled. Only seq when there is no message at seq.
type replyRef struct {
	Seq      int64   `json:"seq"`
	Sender   string  `json:"sender,omitempty"`
	Snippet  *string `json:"snippet,omitempty"`
	Recalled bool    `json:"recalled,omitempty"`
}

// forwardRef is where a forwarded message came from: the message it copies
// as it was when forwarded (MessageSent.forwarded_from).
type forwardRef struct {
	ConversationID string    `json:"conversation_id"`
	Seq            int64     `json:"seq"`
	SenderUserID   string    `json:"sender_user_id"`
	SentAt         time.Time `json:"sent_at,omitzero"`
}

// reactionItem is one emoji on a message: who reacted with it, by user id.
type reactionItem struct {
	Emoji   string   `json:"emoji"`
	Count   int      `json:"count"`
	UserIDs []string `json:"user_ids"`
}

// snippetRunes is how much of a quoted message reply_to shows.
const snippetRunes = 100

type messagePage struct {
	Messages   []messageItem `json:"messages"`
	HasMore    bool          `json:"has_more"`
	NextBefore int64         `json:"next_before,omitempty"`
	NextAfter  int64         `json:"next_after,omitempty"`
}

func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request, id token.Identity) {
	conv, err := conversationParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := parseLimit(r, s.cfg.MaxPageSize, s.cfg.MaxPageSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	before, hasBefore, err := parseSeq(r, "before", 1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	after, hasAfter, err := parseSeq(r, "after", 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if hasBefore && hasAfter {
		s.fail(w, r, &schemas.IDError{Code: parleyv1.ErrorCode_ERROR_CODE_INVALID_CURSOR, Field: "before, after",
			Message: "give at most one of before and after"})
		return
	}
	ctx := r.Context()
	// The caller's members row decides; the conversations row (for
	// last_seq and the history visibility) and its cleared history are read
	// alongside it and ignored unless the caller is a member.
	c, _, from, err := s.access(ctx, conv, id.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The page never reaches below from (the history visibility, the
	// caller's cleared history): an after page starts there at the lowest,
	// a before page ends there (without has_more).
	// Ask for one more row than the page holds to learn whether there is
	// another page without a second round trip.
	var rows []messageRow
	if hasAfter {
		rows, err = s.db(ctx).messagesAfter(ctx, conv, max(after, from-1), c.LastSeq, limit+1)
	} else {
		if !hasBefore {
			before = math.MaxInt64
		}
		rows, err = s.db(ctx).messagesBefore(ctx, conv, before, from, c.LastSeq, limit+1)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var page messagePage
	if len(rows) > limit {
		rows, page.HasMore = rows[:limit], true
	}
	// The cursors step over the seqs the caller hid, as over any other: a
	// page may hold fewer items than limit, and paging on visits every
	// seq once.
	if _, page.Messages, err = s.visibleItems(ctx, conv, id.UserID, from, rows); err != nil {
		s.fail(w, r, err)
		return
	}
	if page.HasMore {
		if hasAfter {
			page.NextAfter = rows[len(rows)-1].Seq
		} else {
			page.NextBefore = rows[len(rows)-1].Seq
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// item turns a messages row into its JSON form. Notices carry the members
// they are about, which live only in the event blob.
func (s *Server) item(ctx context.Context, conv string, m *messageRow) messageItem {
	it := messageItem{
		Seq: m.Seq, Type: m.Type, Sender: m.ActorUserID, SenderDevice: m.ActorDeviceID,
		OccurredAt: m.OccurredAt.UTC(),
	}
	switch m.Type {
	case schemas.TypeMessageSent:
		it.ClientMsgID = m.ClientMsgID
		if isRecalled(m) {
			// Who and when only: whatever else the row may still hold
			// (edit count, the message it answered), no content.
			it.Recalled = &recallInfo{By: m.RecalledBy, At: m.RecalledAt.UTC()}
			break
		}
		it.ContentType = m.ContentType
		text := m.Text
		it.Text = &text
		if m.EditCount > 0 {
			it.EditCount, it.EditedAt = m.EditCount, m.EditedAt.UTC()
		}
		if f := m.ForwardedFrom; f.ConversationID != "" {
			it.ForwardedFrom = &forwardRef{ConversationID: f.ConversationID, Seq: f.Seq, SenderUserID: f.SenderUserID, SentAt: f.SentAt.UTC()}
		}
		var e parleyv1.Event
		if err := proto.Unmarshal(m.Event, &e); err != nil {
			s.log.WarnContext(ctx, "undecodable event blob in messages", "conversation_id", schemas.Clip(conv), "seq", m.Seq, "err", err)
			break
		}
		for _, a := range e.GetMessageSent().GetAttachments() {
			it.Attachments = append(it.Attachments, attachmentOf(conv, a))
		}
	case schemas.TypeMembersAdded, schemas.TypeMemberRemoved:
		var e parleyv1.Event
		if err := proto.Unmarshal(m.Event, &e); err != nil {
			s.log.WarnContext(ctx, "undecodable event blob in messages", "conversation_id", schemas.Clip(conv), "seq", m.Seq, "err", err)
			break
		}
		switch b := e.Body.(type) {
		case *parleyv1.Event_MembersAdded:
			it.MemberIDs = b.MembersAdded.GetUserIds()
		case *parleyv1.Event_MemberRemoved:
			it.MemberIDs = []string{b.MemberRemoved.GetUserId()}
			switch b.MemberRemoved.GetReason() {
			case parleyv1.MemberRemovedReason_MEMBER_REMOVED_REASON_REMOVED:
				it.RemovedReason = "removed"
			case parleyv1.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT:
				it.RemovedReason = "left"
			}
		}
	}
	return it
}

func isRecalled(m *messageRow) bool { return m.RecalledBy != "" }

// isLiveMessage reports whether m is a message that is not recalled: one
// that shows content, a reply and reactions.
func isLiveMessage(m *messageRow) bool { return m.Type == schemas.TypeMessageSent && !isRecalled(m) }

// seqSpan is a range of seqs whose reactions one Reactions read covers.
type seqSpan struct{ from, to int64 }

// spanGap is the widest gap between two live messages that one reactions
// read spans: a history page (contiguous seqs, a notice or a recalled
// message between) is one read, or two across a bucket boundary, which
// Reactions splits anyway; the sparse messages of the pins get a read each
// rather than one over everything between them.
const spanGap = 16

// spans covers the seqs (in any order) with as few reads as spanGap allows.
func spans(seqs []int64) []seqSpan {
	seqs = slices.Clone(seqs)
	slices.Sort(seqs)
	var out []seqSpan
	for _, q := range seqs {
		if n := len(out); n > 0 && q-out[n-1].to <= spanGap {
			out[n-1].to = q
			continue
		}
		out = append(out, seqSpan{q, q})
	}
	return out
}

// visibleItems turns rows (every seq at least from, what the reader sees of
// the history) into the items user sees: the seqs it deleted for itself
// (hidden_messages, one read over the seqs of rows and of the messages they
// quote) are left out, and a reply quoting one shows its seq alone. It
// returns the rows kept and their items, with their actions (addActions).
func (s *Server) visibleItems(ctx context.Context, conv, user string, from int64, rows []messageRow) ([]messageRow, []messageItem, error) {
	items := make([]messageItem, 0, len(rows))
	if len(rows) == 0 {
		return rows, items, nil
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for i := range rows {
		for _, q := range []int64{rows[i].Seq, rows[i].ReplyToSeq} {
			if q >= max(from, 1) {
				lo, hi = min(lo, q), max(hi, q)
			}
		}
	}
	hidden, err := s.hiddenSet(ctx, user, conv, lo, hi)
	if err != nil {
		return nil, nil, err
	}
	kept := slices.DeleteFunc(slices.Clone(rows), func(m messageRow) bool { return hidden[m.Seq] })
	for i := range kept {
		items = append(items, s.item(ctx, conv, &kept[i]))
	}
	if err := s.addActions(ctx, conv, from, hidden, kept, items); err != nil {
		return nil, nil, err
	}
	return kept, items, nil
}

// addActions fills in reply_to and reactions of the live messages of rows
// (items[i] is rows[i]; every seq of rows at least from, what the reader
// sees): the reactions of their seqs (one Reactions read over the seq
// range of a history page; one per pinned message far from the others),
// and one MessageAt read per distinct quoted seq from from on that is not
// in rows itself, at most fanOutWorkers at once, alongside each other. A
// quoted seq below from, or one the reader hid, is not read: its reply_to
// is the seq alone.
func (s *Server) addActions(ctx context.Context, conv string, from int64, hidden map[int64]bool, rows []messageRow, items []messageItem) error {
	onPage := make(map[int64]*messageRow, len(rows))
	var (
		live   []int64
		quoted []int64 // distinct, not on the page
		seen   = map[int64]bool{}
	)
	for i := range rows {
		onPage[rows[i].Seq] = &rows[i]
	}
	for i := range rows {
		m := &rows[i]
		if !isLiveMessage(m) {
			continue
		}
		live = append(live, m.Seq)
		if q := m.ReplyToSeq; q > 0 && q >= from && !hidden[q] && onPage[q] == nil && !seen[q] {
			seen[q] = true
			quoted = append(quoted, q)
		}
	}
	if len(live) == 0 {
		return nil // no live message on the page
	}
	ranges := spans(live)
	reactions := make([][]reactionRow, len(ranges))
	found := make([]messageRow, len(quoted))
	ok := make([]bool, len(quoted))
	// Tasks 0 … len(ranges)-1 read the reactions of a span, the others the
	// quoted seqs.
	err := forEach(ctx, len(ranges)+len(quoted), fanOutWorkers, func(ctx context.Context, i int) error {
		var err error
		if i < len(ranges) {
			reactions[i], err = s.db(ctx).reactions(ctx, conv, ranges[i].from, ranges[i].to)
			return err
		}
		j := i - len(ranges)
		found[j], ok[j], err = s.db(ctx).messageAt(ctx, conv, quoted[j])
		return err
	})
	if err != nil {
		return err
	}
	for i, q := range quoted {
		if ok[i] {
			onPage[q] = &found[i]
		}
	}
	bySeq := groupReactions(slices.Concat(reactions...))
	for i := range rows {
		m := &rows[i]
		if !isLiveMessage(m) {
			continue
		}
		items[i].Reactions = bySeq[m.Seq]
		if q := m.ReplyToSeq; q > 0 {
			var quoted *messageRow
			if q >= from && !hidden[q] {
				quoted = onPage[q]
			}
			items[i].ReplyTo = replyTo(q, quoted)
		}
	}
	return nil
}

// replyTo describes the quoted message q at seq (nil: no row at seq, or
// one the reader does not see).
func replyTo(seq int64, q *messageRow) *replyRef {
	ref := &replyRef{Seq: seq}
	if q == nil || q.Type != schemas.TypeMessageSent {
		return ref // a reply names a message; anything else shows as seq only
	}
	ref.Sender = q.ActorUserID
	if isRecalled(q) {
		ref.Recalled = true
		return ref
	}
	snip := snippet(q.Text)
	ref.Snippet = &snip
	return ref
}

// snippet returns the first snippetRunes runes of text.
func snippet(text string) string {
	n := 0
	for i := range text {
		if n == snippetRunes {
			return text[:i]
		}
		n++
	}
	return text
}

// groupReactions groups reaction rows by message: each message's emoji
// ordered by emoji (bytewise, as Cassandra orders text), each emoji's users
// by id. Reactions returns the rows in that order already; sorting them
// again is cheap and keeps the documented order independent of it.
func groupReactions(rows []reactionRow) map[int64][]reactionItem {
	slices.SortFunc(rows, func(a, b reactionRow) int {
		if c := cmp.Compare(a.MessageSeq, b.MessageSeq); c != 0 {
			return c
		}
		if c := strings.Compare(a.Emoji, b.Emoji); c != 0 {
			return c
		}
		return strings.Compare(a.UserID, b.UserID)
	})
	out := map[int64][]reactionItem{}
	for _, r := range rows {
		list := out[r.MessageSeq]
		if n := len(list); n > 0 && list[n-1].Emoji == r.Emoji {
			list[n-1].UserIDs = append(list[n-1].UserIDs, r.UserID)
			list[n-1].Count++
		} else {
			list = append(list, reactionItem{Emoji: r.Emoji, Count: 1, UserIDs: []string{r.UserID}})
		}
		out[r.MessageSeq] = list
	}
	return out
}
