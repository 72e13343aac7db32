package query

import (
	"context"
	"net/http"

	"github.com/parley-im/parley/schemas/token"
)

// The replies to a message (its thread): the replies view lists them by the
// message they answer, in seq order, and their content comes from messages,
// so they read as history items do (edits, recalls, reactions) and follow
// the same rules: members only, nothing below what the caller sees (the
// history visibility, its cleared history), not the seqs it deleted for
// itself.

type repliesPage struct {
	Seq       int64         `json:"seq"`
	Replies   []messageItem `json:"replies"`
	HasMore   bool          `json:"has_more"`
	NextAfter int64         `json:"next_after,omitempty"`
}

func (s *Server) handleReplies(w http.ResponseWriter, r *http.Request, id token.Identity) {
	conv, err := conversationParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	seq, err := messageSeqParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	after, _, err := parseSeq(r, "after", 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := parseLimit(r, s.cfg.inboxDefaultLimit(), s.cfg.MaxPageSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	from, err := s.memberFrom(ctx, conv, id.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if seq < from {
		s.fail(w, r, errNoMessage) // a message the caller does not see
		return
	}
	// Replies come after what they answer: none is below from.
	refs, err := s.db(ctx).replies(ctx, conv, seq, after, limit+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page := repliesPage{Seq: seq}
	if len(refs) > limit {
		refs, page.HasMore = refs[:limit], true
		page.NextAfter = refs[len(refs)-1].Seq
	}
	rows := make([]messageRow, len(refs))
	found := make([]bool, len(refs))
	err = forEach(ctx, len(refs), fanOutWorkers, func(ctx context.Context, i int) (err error) {
		rows[i], found[i], err = s.db(ctx).messageAt(ctx, conv, refs[i].Seq)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var msgs []messageRow
	for i := range rows {
		if found[i] && rows[i].Seq >= from {
			msgs = append(msgs, rows[i])
		}
	}
	if _, page.Replies, err = s.visibleItems(ctx, conv, id.UserID, from, msgs); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}
