package query

import (
	"cmp"
	"context"
	"net/http"
	"slices"

	"github.com/parley-im/parley/schemas/token"
)

// The replies to a message (its thread): the replies view lists them by the
// message they answer, in seq order, and their content comes from messages,
// so they read as history items do (edits, recalls, reactions) and follow
// the same rules: members only, nothing below what the caller sees (the
// history visibility, its cleared history), not the seqs it deleted for
// itself.
//
// With thread=true the page is the whole thread below the message instead:
// its replies, the replies to those, and so on, in seq order (each item's
// reply_to names its parent). The walk reads one replies partition per
// message of the thread, level by level, and stops past maxThread
// messages (truncated: the deepest are left out).

// maxThread bounds the messages a thread walk collects.
const maxThread = 1000

type repliesPage struct {
	Seq       int64         `json:"seq"`
	Thread    bool          `json:"thread,omitempty"`
	Replies   []messageItem `json:"replies"`
	HasMore   bool          `json:"has_more"`
	NextAfter int64         `json:"next_after,omitempty"`
	Truncated bool          `json:"truncated,omitempty"`
}

// threadBelow walks the thread below seq: every reply, the replies to
// them and so on, by seq; at most maxThread of them, the shallowest
// (truncated says more were left).
func (s *Server) threadBelow(ctx context.Context, conv string, seq int64) ([]replyRow, bool, error) {
	var all []replyRow
	frontier := []int64{seq}
	for len(frontier) > 0 {
		kids := make([][]replyRow, len(frontier))
		err := forEach(ctx, len(frontier), fanOutWorkers, func(ctx context.Context, i int) (err error) {
			kids[i], err = s.db(ctx).replies(ctx, conv, frontier[i], 0, maxThread+1)
			return err
		})
		if err != nil {
			return nil, false, err
		}
		frontier = frontier[:0]
		for _, ks := range kids {
			for _, k := range ks {
				all = append(all, k)
				frontier = append(frontier, k.Seq)
			}
		}
		if len(all) > maxThread {
			slices.SortFunc(all[:maxThread], func(a, b replyRow) int { return cmp.Compare(a.Seq, b.Seq) })
			return all[:maxThread], true, nil
		}
	}
	slices.SortFunc(all, func(a, b replyRow) int { return cmp.Compare(a.Seq, b.Seq) })
	return all, false, nil
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
	var thread bool
	switch v := r.URL.Query().Get("thread"); v {
	case "", "false":
	case "true":
		thread = true
	default:
		s.fail(w, r, invalidArgument("thread must be true or false"))
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
	page := repliesPage{Seq: seq, Thread: thread}
	var refs []replyRow
	if thread {
		refs, page.Truncated, err = s.threadBelow(ctx, conv, seq)
		i, _ := slices.BinarySearchFunc(refs, after+1, func(r replyRow, q int64) int { return cmp.Compare(r.Seq, q) })
		refs = refs[i:min(len(refs), i+limit+1)]
	} else {
		refs, err = s.db(ctx).replies(ctx, conv, seq, after, limit+1)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
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
