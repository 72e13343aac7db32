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
	// The caller's own settings of the conversation (its user stream).
	Muted        bool      `json:"muted"`
	MutedUntil   time.Time `json:"muted_until,omitzero"`
	MutedForever bool      `json:"muted_forever"`
	Pinned       bool      `json:"pinned"`
	PinnedAt     time.Time `json:"pinned_at,omitzero"`
	Archived     bool      `json:"archived"`
	MarkedUnread bool      `json:"marked_unread"`
	// Closed: the conversation is read-only (closed by a service or the
	// group's owner) until it is reopened.
	Closed bool `json:"closed,omitempty"`
}

// muteOf is how a user's prefs show a mute at now: muted (forever, or until
// a time after now), with muted_until only for a timed mute in force.
func muteOf(p *prefsRow, now time.Time) (muted bool, until time.Time, forever bool) {
	muted = p.MutedAt(now)
	if muted && !p.MutedForever {
		until = p.MutedUntil.UTC()
	}
	return muted, until, p.MutedForever
}

// pinOf is p's pin for the API and the sort: its time, zero when not pinned.
func pinOf(p *prefsRow) time.Time {
	if !p.Pinned {
		return time.Time{}
	}
	return p.PinnedAt.UTC()
}

// pinKey is the inbox sort's pin key: the pin's time in ms, 0 when not
// pinned (and at least 1 when pinned, whatever its time says).
func pinKey(p *prefsRow) int64 {
	if !p.Pinned {
		return 0
	}
	return max(1, p.PinnedAt.UnixMilli())
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

// compareInbox orders pinned conversations first (the newest pin first),
// then newest activity first, then by conversation id.
func compareInbox(a, b inboxCursor) int {
	if c := cmp.Compare(b.PinnedMS, a.PinnedMS); c != 0 {
		return c
	}
	if c := cmp.Compare(b.ActivityMS, a.ActivityMS); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// activeConversations returns the user's current conversations with their
// conversations rows (zero but for the id when the projector has not written
// it yet, in which case kind and title come from the inbox row: the title
// the group was created with, which the conversations row's — a rename's —
// supersedes) and, when withMembers, the user's members row in each and,
// when withMentions too, its unread mentions.
func (s *Server) activeConversations(ctx context.Context, user string, withMembers, withMentions bool) ([]conversationRow, []memberRow, []int64, error) {
	rows, err := s.db(ctx).inbox(ctx, user)
	if err != nil {
		return nil, nil, nil, err
	}
	rows = slices.DeleteFunc(rows, func(r inboxRow) bool { return r.Gone() })
	convs := make([]conversationRow, len(rows))
	var members []memberRow
	var mentions []int64
	if withMembers {
		members = make([]memberRow, len(rows))
	}
	if withMentions {
		mentions = make([]int64, len(rows))
	}
	err = forEach(ctx, len(rows), fanOutWorkers, func(ctx context.Context, i int) error {
		c, ok, err := s.db(ctx).conversation(ctx, rows[i].ConversationID)
		if err != nil {
			return err
		}
		if !ok {
			c = conversationRow{ID: rows[i].ConversationID}
		}
		if withMembers {
			m, _, err := s.db(ctx).member(ctx, rows[i].ConversationID, user)
			if err != nil {
				return err
			}
			m.UserID = user
			members[i] = m
			if withMentions {
				if mentions[i], err = s.unreadMentions(ctx, &c, &m); err != nil {
					return err
				}
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
	if err != nil {
		return nil, nil, nil, err
	}
	// A deletion whose inbox rows are not written yet (they are written in
	// the same step as the conversations row): not the user's either.
	n := 0
	for i := range convs {
		if convs[i].Deleted {
			continue
		}
		convs[n] = convs[i]
		if withMembers {
			members[n] = members[i]
		}
		if withMentions {
			mentions[n] = mentions[i]
		}
		n++
	}
	convs = convs[:n]
	if withMembers {
		members = members[:n]
	}
	if withMentions {
		mentions = mentions[:n]
	}
	return convs, members, mentions, nil
}

// inboxFilters are the inbox's filters: archived and muted include, exclude
// or only; unread include or only (unread messages, or marked unread).
type inboxFilters struct{ archived, muted, unread string }

func parseInboxFilters(r *http.Request) (f inboxFilters, err error) {
	if f.archived, err = parseChoice(r, "archived", "include", "exclude", "only"); err != nil {
		return f, err
	}
	if f.muted, err = parseChoice(r, "muted", "include", "exclude", "only"); err != nil {
		return f, err
	}
	f.unread, err = parseChoice(r, "unread", "include", "only")
	return f, err
}

// keeps applies one include/exclude/only filter to a state.
func keeps(filter string, state bool) bool {
	switch filter {
	case "exclude":
		return !state
	case "only":
		return state
	}
	return true
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
	filters, err := parseInboxFilters(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	now := time.Now()
	// The caller's prefs (one partition) are read alongside its
	// conversations. The unread filter needs every members row, not only
	// the page's.
	var (
		prefs map[string]prefsRow
		pErr  error
		pDone = make(chan struct{})
	)
	go func() {
		defer close(pDone)
		prefs, pErr = s.db(ctx).prefs(ctx, id.UserID)
	}()
	convs, members, _, err := s.activeConversations(ctx, id.UserID, filters.unread == "only", false)
	<-pDone
	if err == nil {
		err = pErr
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type entry struct {
		c   *conversationRow
		m   *memberRow // nil until read (the page's), unless the unread filter read it
		p   prefsRow
		key inboxCursor
	}
	entries := make([]entry, 0, len(convs))
	for i := range convs {
		c := &convs[i]
		p := prefs[c.ID]
		e := entry{c: c, p: p, key: inboxCursor{PinnedMS: pinKey(&p), ActivityMS: c.LastActivity().UnixMilli(), ID: c.ID}}
		if members != nil {
			e.m = &members[i]
			if !(unread(c.LastSeq, e.m.ReadSeq) > 0 || p.MarkedUnread(e.m.ReadSeq)) {
				continue
			}
		}
		if !keeps(filters.archived, p.Archived(c.LastMessageSeq, now)) || !keeps(filters.muted, p.MutedAt(now)) {
			continue
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b entry) int { return compareInbox(a.key, b.key) })
	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(entries, *after, func(e entry, k inboxCursor) int {
			if x := compareInbox(e.key, k); x != 0 {
				return x
			}
			return -1 // the cursor's own item belongs to the previous page
		})
	}
	end := min(start+limit, len(entries))
	page := entries[start:end]
	items := make([]inboxItem, len(page))
	err = forEach(ctx, len(page), fanOutWorkers, func(ctx context.Context, i int) error {
		c, m, p := page[i].c, page[i].m, &page[i].p
		if m == nil {
			row, _, err := s.db(ctx).member(ctx, c.ID, id.UserID)
			if err != nil {
				return err
			}
			row.UserID = id.UserID
			m = &row
		}
		mentions, err := s.unreadMentions(ctx, c, m)
		if err != nil {
			return err
		}
		muted, until, forever := muteOf(p, now)
		items[i] = inboxItem{
			ConversationID: c.ID, Kind: c.Kind, Title: c.Title,
			LastSeq: c.LastSeq, Version: c.LastVersion, LastActivity: c.LastActivity().UTC(), Preview: previewOf(c, visibleFrom(c, m)),
			ReadSeq: m.ReadSeq, Unread: unread(c.LastSeq, m.ReadSeq), UnreadMentions: mentions,
			Muted: muted, MutedUntil: until, MutedForever: forever, Pinned: p.Pinned, PinnedAt: pinOf(p),
			Archived: p.Archived(c.LastMessageSeq, now), MarkedUnread: p.MarkedUnread(m.ReadSeq), Closed: c.Closed,
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := inboxPage{Conversations: items}
	if end < len(entries) && len(page) > 0 {
		resp.NextCursor = page[len(page)-1].key.encode()
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleUnread(w http.ResponseWriter, r *http.Request, id token.Identity) {
	ctx := r.Context()
	convs, members, mentions, err := s.activeConversations(ctx, id.UserID, true, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var t unreadTotals
	for i, c := range convs {
		n := unread(c.LastSeq, members[i].ReadSeq)
		t.Total += n
		if n > 0 {
			t.Conversations++
		}
		t.UnreadMentions += mentions[i]
	}
	writeJSON(w, http.StatusOK, t)
}
