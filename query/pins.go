package query

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/parley-im/parley/schemas/token"
)

// A conversation's pinned messages: the pins view (projector.Tables.Pins,
// one query), then each pinned message's row, read like a history page's
// (its newest text, reply_to, reactions), so a pin shows what the message
// says now. A recall unpins its message; a pin whose message row the views
// do not hold yet shows without message. The pins of messages the caller
// does not see (below visibleFrom) are left out, unread.

type pinItem struct {
	Seq      int64        `json:"seq"`
	PinnedBy string       `json:"pinned_by"`
	PinnedAt time.Time    `json:"pinned_at,omitzero"`
	Message  *messageItem `json:"message,omitempty"`
}

type pinsView struct {
	ConversationID string    `json:"conversation_id"`
	Pins           []pinItem `json:"pins"`
}

func (s *Server) handlePins(w http.ResponseWriter, r *http.Request, id token.Identity) {
	conv, err := conversationParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	// The membership check decides; the pins are read alongside it and
	// ignored unless the caller is a member.
	var (
		pins  []pinRow
		pErr  error
		pDone = make(chan struct{})
	)
	go func() {
		defer close(pDone)
		pins, pErr = s.db(ctx).pins(ctx, conv)
	}()
	from, mErr := s.memberFrom(ctx, conv, id.UserID)
	<-pDone
	if mErr != nil {
		s.fail(w, r, mErr)
		return
	}
	if pErr != nil {
		s.fail(w, r, pErr)
		return
	}
	pins = slices.DeleteFunc(pins, func(p pinRow) bool { return p.MessageSeq < from })
	rows := make([]messageRow, len(pins))
	found := make([]bool, len(pins))
	err = forEach(ctx, len(pins), fanOutWorkers, func(ctx context.Context, i int) (err error) {
		rows[i], found[i], err = s.db(ctx).messageAt(ctx, conv, pins[i].MessageSeq)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The messages found, as history items (actions filled in for all of
	// them at once); the pins of messages the caller hid are left out.
	var msgs []messageRow
	for i := range pins {
		if found[i] {
			msgs = append(msgs, rows[i])
		}
	}
	kept, items, err := s.visibleItems(ctx, conv, id.UserID, from, msgs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	at := make(map[int64]int, len(kept)) // seq → index in items
	for i := range kept {
		at[kept[i].Seq] = i
	}
	v := pinsView{ConversationID: conv, Pins: make([]pinItem, 0, len(pins))}
	for i, p := range pins {
		it := pinItem{Seq: p.MessageSeq, PinnedBy: p.PinnedBy, PinnedAt: p.PinnedAt.UTC()}
		if j, ok := at[p.MessageSeq]; ok {
			it.Message = &items[j]
		} else if found[i] {
			continue // hidden by the caller
		}
		v.Pins = append(v.Pins, it)
	}
	writeJSON(w, http.StatusOK, v)
}
