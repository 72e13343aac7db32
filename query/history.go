package query

import (
	"context"
	"math"
	"net/http"
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

type messageItem struct {
	Seq           int64     `json:"seq"`
	Type          string    `json:"type"`
	Sender        string    `json:"sender"`
	SenderDevice  string    `json:"sender_device,omitempty"`
	ClientMsgID   string    `json:"client_msg_id,omitempty"`
	ContentType   string    `json:"content_type,omitempty"`
	Text          *string   `json:"text,omitempty"`
	OccurredAt    time.Time `json:"occurred_at,omitzero"`
	MemberIDs     []string  `json:"member_ids,omitempty"`
	RemovedReason string    `json:"removed_reason,omitempty"`
}

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
	// The membership check decides; the conversations row (for last_seq)
	// is read alongside it and ignored unless the caller is a member.
	var (
		c     conversationRow
		cErr  error
		cDone = make(chan struct{})
	)
	go func() {
		defer close(cDone)
		c, _, cErr = s.db(ctx).conversation(ctx, conv)
	}()
	mErr := s.requireMember(ctx, conv, id.UserID)
	<-cDone
	if mErr != nil {
		s.fail(w, r, mErr)
		return
	}
	if cErr != nil {
		s.fail(w, r, cErr)
		return
	}
	// Ask for one more row than the page holds to learn whether there is
	// another page without a second round trip.
	var rows []messageRow
	if hasAfter {
		rows, err = s.db(ctx).messagesAfter(ctx, conv, after, c.LastSeq, limit+1)
	} else {
		if !hasBefore {
			before = math.MaxInt64
		}
		rows, err = s.db(ctx).messagesBefore(ctx, conv, before, c.LastSeq, limit+1)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page := messagePage{Messages: make([]messageItem, 0, min(len(rows), limit))}
	if len(rows) > limit {
		rows, page.HasMore = rows[:limit], true
	}
	for i := range rows {
		page.Messages = append(page.Messages, s.item(ctx, conv, &rows[i]))
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
		it.ClientMsgID, it.ContentType = m.ClientMsgID, m.ContentType
		text := m.Text
		it.Text = &text
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
