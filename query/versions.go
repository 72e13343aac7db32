package query

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
)

// A message's versions: number 0 is the message as it was sent (the
// MessageSent the messages row keeps as its event), 1, 2, … its edits
// (message_edits, oldest first). A recalled message has none: its row keeps
// the MessageSent without content and its recall deleted the edits, and the
// answer says who recalled it and when.

type messageVersion struct {
	Number      int       `json:"number"`
	Text        string    `json:"text"`
	ContentType string    `json:"content_type,omitempty"`
	At          time.Time `json:"at,omitzero"`
}

type messageVersions struct {
	Seq      int64            `json:"seq"`
	Recalled *recallInfo      `json:"recalled,omitempty"`
	Versions []messageVersion `json:"versions"`
}

var errNoMessage = &apiError{http.StatusNotFound, codeNotFound, "no message at this seq"}

func (s *Server) handleVersions(w http.ResponseWriter, r *http.Request, id token.Identity) {
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
	ctx := r.Context()
	// The membership check decides; the message's row, its edits and
	// whether the caller hid it are read alongside it and ignored unless the caller is a member who sees
	// seq.
	var (
		m     messageRow
		found bool
		edits []editRow
		hid   map[int64]bool
		rErr  error
		rDone = make(chan struct{})
	)
	go func() {
		defer close(rDone)
		rErr = forEach(ctx, 3, 3, func(ctx context.Context, i int) (err error) {
			switch i {
			case 0:
				m, found, err = s.db(ctx).messageAt(ctx, conv, seq)
			case 1:
				edits, err = s.db(ctx).edits(ctx, conv, seq)
			default:
				hid, err = s.hiddenSet(ctx, id.UserID, conv, seq, seq)
			}
			return err
		})
	}()
	from, mErr := s.memberFrom(ctx, conv, id.UserID)
	<-rDone
	if mErr != nil {
		s.fail(w, r, mErr)
		return
	}
	if seq < from {
		s.fail(w, r, errNoMessage) // before the caller's join or cleared by it: it does not see it
		return
	}
	if rErr != nil {
		s.fail(w, r, rErr)
		return
	}
	if hid[seq] {
		s.fail(w, r, errNoMessage) // deleted by the caller for itself
		return
	}
	if !found || m.Type != schemas.TypeMessageSent {
		s.fail(w, r, errNoMessage) // nothing, or a notice: notices have no versions
		return
	}
	v := messageVersions{Seq: seq, Versions: []messageVersion{}}
	if isRecalled(&m) {
		// The row decides: edits read before the recall reached their
		// table are not shown either.
		v.Recalled = &recallInfo{By: m.RecalledBy, At: m.RecalledAt.UTC()}
		writeJSON(w, http.StatusOK, v)
		return
	}
	var e parleyv1.Event
	if err := proto.Unmarshal(m.Event, &e); err != nil || e.GetMessageSent() == nil {
		s.fail(w, r, fmt.Errorf("query: the event of message %s/%d is not a MessageSent (%v)", schemas.Clip(conv), seq, err))
		return
	}
	sent := e.GetMessageSent()
	v.Versions = append(v.Versions, messageVersion{Number: 0, Text: sent.GetText(), ContentType: sent.GetContentType(), At: m.OccurredAt.UTC()})
	for _, ed := range edits {
		v.Versions = append(v.Versions, messageVersion{Number: ed.Number, Text: ed.Text, ContentType: ed.ContentType, At: ed.EditedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, v)
}
