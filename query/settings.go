package query

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/token"
)

// GET /v1/me/settings: the caller's own settings, everything its user stream
// (schemas.UserStreamID) holds — conversation prefs, what it deleted for
// itself, whom it blocked — with the stream's version, so a fresh device
// takes them and continues the stream from version over the WebSocket
// (Resume with a ConversationCursor{user stream id, version}). version is
// read first and the rows after it: they are at least at that version (the
// projector writes last_version after every row of the changes it counts),
// and a change already shown that comes again on resume is harmless.

type settingsConversation struct {
	ConversationID    string    `json:"conversation_id"`
	Muted             bool      `json:"muted"`
	MutedUntil        time.Time `json:"muted_until,omitzero"`
	MutedForever      bool      `json:"muted_forever"`
	Pinned            bool      `json:"pinned"`
	PinnedAt          time.Time `json:"pinned_at,omitzero"`
	ArchivedUpToSeq   int64     `json:"archived_up_to_seq"`
	UnreadMarkedAtSeq int64     `json:"unread_marked_at_seq"`
	HiddenUpToSeq     int64     `json:"hidden_up_to_seq"`
	HiddenSeqs        []int64   `json:"hidden_seqs"`
}

type settingsBlock struct {
	UserID    string    `json:"user_id"`
	BlockedAt time.Time `json:"blocked_at,omitzero"`
}

type settingsView struct {
	UserStreamID  string                 `json:"user_stream_id"`
	Version       int64                  `json:"version"`
	Conversations []settingsConversation `json:"conversations"`
	Blocks        []settingsBlock        `json:"blocks"`
}

func (s *Server) handleSettings(w http.ResponseWriter, r *http.Request, id token.Identity) {
	ctx := r.Context()
	stream := schemas.UserStreamID(id.UserID)
	version, err := s.db(ctx).lastVersion(ctx, stream)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Then the rows: prefs, blocks and the inbox (the conversations whose
	// hidden messages are read: hidden_messages is keyed by user and
	// conversation) at once.
	var (
		prefs  map[string]prefsRow
		blocks []blockRow
		inbox  []inboxRow
	)
	err = forEach(ctx, 3, 3, func(ctx context.Context, i int) (err error) {
		switch i {
		case 0:
			prefs, err = s.db(ctx).prefs(ctx, id.UserID)
		case 1:
			blocks, err = s.db(ctx).blocks(ctx, id.UserID)
		default:
			inbox, err = s.db(ctx).inbox(ctx, id.UserID)
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ids := map[string]bool{}
	for c := range prefs {
		ids[c] = true
	}
	for _, row := range inbox {
		ids[row.ConversationID] = true
	}
	convs := slices.Sorted(maps.Keys(ids))
	out := make([]settingsConversation, len(convs))
	now := time.Now()
	err = forEach(ctx, len(convs), fanOutWorkers, func(ctx context.Context, i int) error {
		h, err := s.db(ctx).hidden(ctx, id.UserID, convs[i])
		if err != nil {
			return err
		}
		p := prefs[convs[i]]
		muted, until, forever := muteOf(&p, now)
		out[i] = settingsConversation{ConversationID: convs[i], Muted: muted, MutedUntil: until, MutedForever: forever,
			Pinned: p.Pinned, PinnedAt: pinOf(&p), ArchivedUpToSeq: p.ArchivedUpToSeq, UnreadMarkedAtSeq: p.UnreadMarkedAtSeq,
			HiddenUpToSeq: h.UpToSeq, HiddenSeqs: append([]int64{}, h.Seqs...)}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := settingsView{UserStreamID: stream, Version: version, Conversations: []settingsConversation{}, Blocks: []settingsBlock{}}
	for i, c := range out {
		// A conversation without prefs or anything hidden has nothing to say.
		if _, ok := prefs[convs[i]]; ok || c.HiddenUpToSeq > 0 || len(c.HiddenSeqs) > 0 {
			v.Conversations = append(v.Conversations, c)
		}
	}
	for _, b := range blocks {
		v.Blocks = append(v.Blocks, settingsBlock{UserID: b.UserID, BlockedAt: b.BlockedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, v)
}
