package query

import "context"

// A group's history visibility (settings.history_visibility). With
// since_join, a member added after the creation (joined_seq > 0, the seq of
// the MembersAdded that last added it) sees nothing below its joined seq:
// history pages end there, versions of an earlier message are 404, pins of
// earlier messages are hidden, mentions start after it, a reply quoting an
// earlier message shows its seq alone, and the reactions of hidden messages
// are never read. Members present at the creation (joined_seq 0) see
// everything, and so does everyone with all, the default. The setting read
// with the request applies: switching it later applies to every member from
// then on, both ways (nothing is recorded per member).

// The history visibility's values, as the views and the API spell them; a
// null column is visibilityAll.
const (
	visibilityAll       = "all"
	visibilitySinceJoin = "since_join"
)

// visibleFrom is the lowest seq m sees of c's timeline: m's joined seq
// when c is a group whose history visibility is since_join and m joined
// after its creation; else 0, everything.
func visibleFrom(c *conversationRow, m *memberRow) int64 {
	if c.Kind == "group" && c.HistoryVisibility == visibilitySinceJoin && m.JoinedSeq > 0 {
		return m.JoinedSeq
	}
	return 0
}

// access is the access check of the endpoints that show items by seq:
// user must be a current member of conv, else errNotMember, which decides
// over the other reads' errors; a missing conversation looks the same, so a
// non-member cannot probe which conversations exist. It reads user's
// members row, the conversations row and the user's cleared history of conv
// at once, and returns the lowest seq user sees (seenFrom). A deleted
// conversation answers its members errDeleted.
func (s *Server) access(ctx context.Context, conv, user string) (c conversationRow, m memberRow, from int64, err error) {
	var (
		cleared int64
		rErr    error
		rDone   = make(chan struct{})
	)
	go func() {
		defer close(rDone)
		rErr = forEach(ctx, 2, 2, func(ctx context.Context, i int) (err error) {
			if i == 0 {
				c, _, err = s.db(ctx).conversation(ctx, conv)
			} else {
				cleared, err = s.db(ctx).historyCleared(ctx, user, conv)
			}
			return err
		})
	}()
	m, ok, err := s.db(ctx).member(ctx, conv, user)
	<-rDone
	switch {
	case err != nil:
		return c, m, 0, err
	case !ok || m.Removed:
		return c, m, 0, errNotMember
	case rErr != nil:
		return c, m, 0, rErr
	case c.Deleted:
		return c, m, 0, errDeleted
	}
	return c, m, seenFrom(&c, &m, cleared), nil
}

// seenFrom is the lowest seq a member sees: its history visibility
// (visibleFrom), raised above what it cleared of its history for itself
// (HideMessages.up_to_seq, the latest clear).
func seenFrom(c *conversationRow, m *memberRow, cleared int64) int64 {
	from := visibleFrom(c, m)
	if cleared > 0 {
		from = max(from, cleared+1)
	}
	return from
}

// memberFrom is access without the rows.
func (s *Server) memberFrom(ctx context.Context, conv, user string) (int64, error) {
	_, _, from, err := s.access(ctx, conv, user)
	return from, err
}

// hiddenSet reads the seqs lo..hi user deleted for itself in conv (one
// slice of one partition); nil when there are none.
func (s *Server) hiddenSet(ctx context.Context, user, conv string, lo, hi int64) (map[int64]bool, error) {
	seqs, err := s.db(ctx).hiddenSeqs(ctx, user, conv, lo, hi)
	if err != nil || len(seqs) == 0 {
		return nil, err
	}
	out := make(map[int64]bool, len(seqs))
	for _, q := range seqs {
		out[q] = true
	}
	return out, nil
}
