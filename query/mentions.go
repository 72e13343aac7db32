package query

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/parley-im/parley/schemas/token"
)

// The caller's mentions in one conversation: the messages that named it
// (the mentions view) merged with the @all messages (mentions_all), newest
// first. An @all message mentions every member when it was sent: not the
// caller's own, nor those from before the caller joined. A recall takes a
// message's mentions away. None below visibleFrom shows (named mentions
// from before a re-added member's latest join, while the group's history
// visibility is since_join).

type mentionItem struct {
	Seq        int64     `json:"seq"`
	Sender     string    `json:"sender"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
	All        bool      `json:"all"`
}

type mentionsPage struct {
	ConversationID string        `json:"conversation_id"`
	Mentions       []mentionItem `json:"mentions"`
	HasMore        bool          `json:"has_more"`
}

func (s *Server) handleMentions(w http.ResponseWriter, r *http.Request, id token.Identity) {
	conv, err := conversationParam(r)
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
	// The members row decides, and bounds the @all mentions by the
	// caller's joined seq; the named mentions and the conversations row
	// (the history visibility) are read alongside it.
	var (
		named   []mentionRow
		c       conversationRow
		cleared int64
		rErr    error
		rDone   = make(chan struct{})
	)
	go func() {
		defer close(rDone)
		rErr = forEach(ctx, 3, 3, func(ctx context.Context, i int) (err error) {
			switch i {
			case 0:
				named, err = s.db(ctx).mentions(ctx, id.UserID, conv, after, limit+1)
			case 1:
				c, _, err = s.db(ctx).conversation(ctx, conv)
			default:
				cleared, err = s.db(ctx).historyCleared(ctx, id.UserID, conv)
			}
			return err
		})
	}()
	m, ok, mErr := s.db(ctx).member(ctx, conv, id.UserID)
	<-rDone
	if mErr == nil && (!ok || m.Removed) {
		mErr = errNotMember
	}
	if mErr != nil {
		s.fail(w, r, mErr)
		return
	}
	if rErr == nil && c.Deleted {
		rErr = errDeleted
	}
	if rErr != nil {
		s.fail(w, r, rErr)
		return
	}
	// Newest first: the rows below from, if any, are the last, and no
	// more above after can follow them.
	from := seenFrom(&c, &m, cleared)
	named = slices.DeleteFunc(named, func(r mentionRow) bool { return r.Seq < from })
	all, err := s.allMentions(ctx, conv, id.UserID, max(after, m.JoinedSeq, from-1), limit+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Both lists are newest first, and no seq is in both (an @all message
	// names nobody): merge them.
	page := mentionsPage{ConversationID: conv, Mentions: make([]mentionItem, 0, min(limit, len(named)+len(all)))}
	for len(page.Mentions) < limit && (len(named) > 0 || len(all) > 0) {
		var next mentionRow
		if len(all) == 0 || (len(named) > 0 && named[0].Seq > all[0].Seq) {
			next, named = named[0], named[1:]
		} else {
			next, all = all[0], all[1:]
		}
		page.Mentions = append(page.Mentions, mentionItem{Seq: next.Seq, Sender: next.Sender, OccurredAt: next.OccurredAt.UTC(), All: next.All})
	}
	page.HasMore = len(named) > 0 || len(all) > 0
	// The messages the caller deleted for itself are no mentions it lists
	// (one read over the page's seqs); the page may come out shorter.
	if n := len(page.Mentions); n > 0 {
		hidden, err := s.hiddenSet(ctx, id.UserID, conv, page.Mentions[n-1].Seq, page.Mentions[0].Seq)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		page.Mentions = slices.DeleteFunc(page.Mentions, func(it mentionItem) bool { return hidden[it.Seq] })
	}
	writeJSON(w, http.StatusOK, page)
}

// allMentions reads up to want @all mentions of conv with seq > after that
// user did not send, newest first. Its own @all messages are skipped, so
// a read that finds some reads again, four times as many, until it has
// want or the partition slice ends.
func (s *Server) allMentions(ctx context.Context, conv, user string, after int64, want int) ([]mentionRow, error) {
	for n := want; ; n *= 4 {
		rows, err := s.db(ctx).mentionsAll(ctx, conv, after, n)
		if err != nil {
			return nil, err
		}
		out := rows[:0:0]
		for _, r := range rows {
			if r.Sender != user {
				out = append(out, r)
			}
		}
		if len(out) >= want || len(rows) < n {
			return out[:min(len(out), want)], nil
		}
	}
}
