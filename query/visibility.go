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

// memberFrom is the access check of the endpoints that show items by seq:
// user must be a current member of conv, else errNotMember, which decides
// over the other read's error; a missing conversation looks the same, so a
// non-member cannot probe which conversations exist. It reads user's
// members row and the conversations row at once, and returns visibleFrom
// of them.
func (s *Server) memberFrom(ctx context.Context, conv, user string) (int64, error) {
	var (
		c     conversationRow
		cErr  error
		cDone = make(chan struct{})
	)
	go func() {
		defer close(cDone)
		c, _, cErr = s.db(ctx).conversation(ctx, conv)
	}()
	m, ok, err := s.db(ctx).member(ctx, conv, user)
	<-cDone
	switch {
	case err != nil:
		return 0, err
	case !ok || m.Removed:
		return 0, errNotMember
	case cErr != nil:
		return 0, cErr
	}
	return visibleFrom(&c, &m), nil
}
