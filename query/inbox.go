package query

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/parley-im/parley/schemas/token"
)

// The inbox is computed on read: inbox rows change only with membership, so
// a message does not rewrite one row per member. Each request reads the
// user's inbox partition, then the conversations row of every conversation
// (to sort by activity) and the members row of those it returns (read_seq),
// and, for those with unread messages, counts the unread mentions
// (projector.Tables.CountMentions: two COUNTs), with at most fanOutWorkers
// conversations in flight.

type preview struct {
	Seq    int64  `json:"seq"`
	Sender string `json:"sender"`
	Text   string `json:"text"`
}

// previewOf is c's last message for a reader who sees the seqs from from
// on (visibleFrom): none before the first message, nor when the last one
// is below from.
func previewOf(c *conversationRow, from int64) *preview {
	if c.LastMessageSeq <= 0 || c.LastMessageSeq < from {
		return nil
	}
	return &preview{Seq: c.LastMessageSeq, Sender: c.LastMessageSender, Text: c.LastMessagePreview}
}

type inboxItem struct {
	ConversationID string    `json:"conversation_id"`
	Kind           string    `json:"kind"`
	Title          string    `json:"title"`
	LastSeq        int64     `json:"last_seq"`
	Version        int64     `json:"version"`
	LastActivity   time.Time `json:"last_activity,omitzero"`
	Preview        *preview  `json:"preview,omitempty"`
	ReadSeq        int64     `json:"read_seq"`
	Unread         int64     `json:"unread"`
	UnreadMentions int64     `json:"unread_mentions"`
}

type inboxPage struct {
	Conversations []inboxItem `json:"conversations"`
	NextCursor    string      `json:"next_cursor,omitempty"`
}

type unreadTotals struct {
	Total          int64 `json:"total"`
	Conversations  int   `json:"conversations"`
	UnreadMentions int64 `json:"unread_mentions"`
}

func unread(lastSeq, readSeq int64) int64 { return max(0, lastSeq-readSeq) }

// unreadMentions counts m's mentions above its read mark in conversation c
// (explicit and @all; the mark is at least the joined seq, so an @all from
// before the member joined is not counted, and a sender's mark is at its
// own message). Only a conversation with unread messages can have unread
// mentions: the others cost no read.
func (s *Server) unreadMentions(ctx context.Context, c *conversationRow, m *memberRow) (int64, error) {
	if unread(c.LastSeq, m.ReadSeq) == 0 {
		return 0, nil
	}
	return s.db(ctx).countMentions(ctx, m.UserID, c.ID, max(m.ReadSeq, m.JoinedSeq))
}

// compareInbox orders newest activity first, then by conversation id.
func compareInbox(aMS int64, aID string, bMS int64, bID string) int {
	if c := cmp.Compare(bMS, aMS); c != 0 {
		return c
	}
	return cmp.Compare(aID, bID)
}

// activeConversations returns the user's current conversations with their
// conversations rows (zero but for the id when the projector has not written
// it yet, in which case kind and title come from the inbox row: the title
// the group was created with, which the conversations row's — a rename's —
// supersedes) and, when withUnread, the user's read_seq and unread mentions
// in each.
func (s *Server) activeConversations(ctx context.Context, user string, withUnread bool) ([]conversationRow, []int64, []int64, error) {
	rows, err := s.db(ctx).inbox(ctx, user)
	if err != nil {
		return nil, nil, nil, err
	}
	rows = slices.DeleteFunc(rows, func(r inboxRow) bool { return r.Removed })
	convs := make([]conversationRow, len(rows))
	var readSeqs, mentions []int64
	if withUnread {
		readSeqs, mentions = make([]int64, len(rows)), make([]int64, len(rows))
	}
	err = forEach(ctx, len(rows), fanOutWorkers, func(ctx context.Context, i int) error {
		c, ok, err := s.db(ctx).conversation(ctx, rows[i].ConversationID)
		if err != nil {
			return err
		}
		if !ok {
			c = conversationRow{ID: rows[i].ConversationID}
		}
		if withUnread {
			m, _, err := s.db(ctx).member(ctx, rows[i].ConversationID, user)
			if err != nil {
				return err
			}
			m.UserID = user
			readSeqs[i] = m.ReadSeq
			if mentions[i], err = s.unreadMentions(ctx, &c, &m); err != nil {
				return err
			}
		}
		if c.Kind == "" {
			c.Kind = rows[i].Kind
		}
		if c.Title == "" {
			c.Title = rows[i].Title
		}
		convs[i] = c
		return nil
	})
	return convs, readSeqs, mentions, err
}

func (s *Server) handleInbox(w http.ResponseWriter, r *http.Request, id token.Identity) {
	limit, err := parseLimit(r, s.cfg.inboxDefaultLimit(), s.cfg.MaxPageSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var after *inboxCursor
	if v := r.URL.Query().Get("cursor"); v != "" {
		c, err := decodeInboxCursor(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		after = &c
	}
	ctx := r.Context()
	convs, _, _, err := s.activeConversations(ctx, id.UserID, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	slices.SortFunc(convs, func(a, b conversationRow) int {
		return compareInbox(a.LastActivity().UnixMilli(), a.ID, b.LastActivity().UnixMilli(), b.ID)
	})
	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(convs, *after, func(c conversationRow, k inboxCursor) int {
			if x := compareInbox(c.LastActivity().UnixMilli(), c.ID, k.ActivityMS, k.ID); x != 0 {
				return x
			}
			return -1 // the cursor's own item belongs to the previous page
		})
	}
	end := min(start+limit, len(convs))
	page := convs[start:end]
	items := make([]inboxItem, len(page))
	err = forEach(ctx, len(page), fanOutWorkers, func(ctx context.Context, i int) error {
		c := &page[i]
		m, _, err := s.db(ctx).member(ctx, c.ID, id.UserID)
		if err != nil {
			return err
		}
		m.UserID = id.UserID
		mentions, err := s.unreadMentions(ctx, c, &m)
		if err != nil {
			return err
		}
		items[i] = inboxItem{
			ConversationID: c.ID, Kind: c.Kind, Title: c.Title,
			LastSeq: c.LastSeq, Version: c.LastVersion, LastActivity: c.LastActivity().UTC(), Preview: previewOf(c, visibleFrom(c, &m)),
			ReadSeq: m.ReadSeq, Unread: unread(c.LastSeq, m.ReadSeq), UnreadMentions: mentions,
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := inboxPage{Conversations: items}
	if end < len(convs) && len(page) > 0 {
		last := page[len(page)-1]
		resp.NextCursor = inboxCursor{ActivityMS: last.LastActivity().UnixMilli(), ID: last.ID}.encode()
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleUnread(w http.ResponseWriter, r *http.Request, id token.Identity) {
	ctx := r.Context()
	convs, readSeqs, mentions, err := s.activeConversations(ctx, id.UserID, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var t unreadTotals
	for i, c := range convs {
		n := unread(c.LastSeq, readSeqs[i])
		t.Total += n
		if n > 0 {
			t.Conversations++
		}
		t.UnreadMentions += mentions[i]
	}
	writeJSON(w, http.StatusOK, t)
}
