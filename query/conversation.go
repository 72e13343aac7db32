package query

import (
	"cmp"
	"net/http"
	"time"

	"github.com/parley-im/parley/schemas/token"
)

// memberItem is a current member: its role ("owner", "admin" or
// "member"; both users of a direct conversation are members), its marks
// and, while a mute is in force, muted (with muted_until unless it lasts
// until unmuted).
type memberItem struct {
	UserID       string    `json:"user_id"`
	Role         string    `json:"role"`
	JoinedSeq    int64     `json:"joined_seq"`
	ReadSeq      int64     `json:"read_seq"`
	DeliveredSeq int64     `json:"delivered_seq"`
	Muted        bool      `json:"muted,omitempty"`
	MutedUntil   time.Time `json:"muted_until,omitzero"`
}

// groupSettings are a group's settings with the defaults filled in
// (HistoryVisibility: visibility.go).
type groupSettings struct {
	Description       string `json:"description"`
	AvatarURL         string `json:"avatar_url"`
	AnnouncementOnly  bool   `json:"announcement_only"`
	WhoMayAdd         string `json:"who_may_add"`
	WhoMayMentionAll  string `json:"who_may_mention_all"`
	WhoMayPin         string `json:"who_may_pin"`
	HistoryVisibility string `json:"history_visibility"`
	JoinRequests      bool   `json:"join_requests"`
}

// The group policies' names and the default of each who_may_* setting.
const (
	policyMembers = "members"
	policyAdmins  = "admins"
)

type conversationView struct {
	ConversationID string         `json:"conversation_id"`
	Kind           string         `json:"kind"`
	Title          string         `json:"title"`
	CreatorUserID  string         `json:"creator_user_id"`
	CreatedAt      time.Time      `json:"created_at,omitzero"`
	LastSeq        int64          `json:"last_seq"`
	Version        int64          `json:"version"`
	LastActivity   time.Time      `json:"last_activity,omitzero"`
	Preview        *preview       `json:"preview,omitempty"`
	OwnerUserID    string         `json:"owner_user_id,omitempty"`
	Settings       *groupSettings `json:"settings,omitempty"`
	// Closed (present only when true): read-only since ClosedAt
	// (ConversationClosed), by ClosedBy (a service's key id or the group's
	// owner), for ClosedReason.
	Closed       bool         `json:"closed,omitempty"`
	ClosedAt     time.Time    `json:"closed_at,omitzero"`
	ClosedBy     string       `json:"closed_by,omitempty"`
	ClosedReason string       `json:"closed_reason,omitempty"`
	Members      []memberItem `json:"members"`
}

// settingsOf is c's settings as the API shows them: null (never set)
// settings take their defaults — no description or avatar, not
// announcement-only, every policy "members", the history visibility
// "all".
func settingsOf(c *conversationRow) *groupSettings {
	policy := func(p string) string {
		if p == policyAdmins {
			return policyAdmins
		}
		return policyMembers
	}
	st := &groupSettings{
		Description: c.Description, AvatarURL: c.AvatarURL, AnnouncementOnly: c.AnnouncementOnly,
		WhoMayAdd: policy(c.WhoMayAdd), WhoMayMentionAll: policy(c.WhoMayMentionAll), WhoMayPin: policy(c.WhoMayPin),
		HistoryVisibility: visibilityAll, JoinRequests: c.JoinRequests,
	}
	if c.HistoryVisibility == visibilitySinceJoin {
		st.HistoryVisibility = visibilitySinceJoin
	}
	return st
}

// memberItemOf is m as the API shows it at now: a mute whose end has
// passed is over (the decider lets the member send again) and not shown.
func memberItemOf(m *memberRow, now time.Time) memberItem {
	it := memberItem{UserID: m.UserID, Role: m.Role, JoinedSeq: m.JoinedSeq, ReadSeq: m.ReadSeq, DeliveredSeq: m.DeliveredSeq}
	if m.Muted && (m.MutedUntil.IsZero() || m.MutedUntil.After(now)) {
		it.Muted, it.MutedUntil = true, m.MutedUntil.UTC()
	}
	return it
}

type receiptItem struct {
	UserID       string `json:"user_id"`
	ReadSeq      int64  `json:"read_seq"`
	DeliveredSeq int64  `json:"delivered_seq"`
}

type receiptsView struct {
	ConversationID string        `json:"conversation_id"`
	Receipts       []receiptItem `json:"receipts"`
}

// currentMembers reads the members partition of conv once and checks the
// caller's membership in it, then keeps only current members.
func (s *Server) currentMembers(r *http.Request, conv, user string) ([]memberRow, error) {
	all, err := s.db(r.Context()).members(r.Context(), conv)
	if err != nil {
		return nil, err
	}
	var cur []memberRow
	member := false
	for _, m := range all {
		if m.Removed {
			continue
		}
		member = member || m.UserID == user
		cur = append(cur, m)
	}
	if !member {
		return nil, errNotMember
	}
	return cur, nil
}

func (s *Server) handleConversation(w http.ResponseWriter, r *http.Request, id token.Identity) {
	conv, err := conversationParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The conversations row first: its version, written after every row
	// of the changes it counts, then describes the members read after it
	// (a device resumes from it). Nothing is answered before the access
	// check.
	c, ok, err := s.db(r.Context()).conversation(r.Context(), conv)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	members, err := s.currentMembers(r, conv, id.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if c.Deleted {
		s.fail(w, r, errDeleted)
		return
	}
	if !ok {
		// A member of a conversation the projector has not finished
		// writing: it may tell the caller so.
		s.fail(w, r, &apiError{http.StatusNotFound, codeNotFound, "conversation not projected yet; retry shortly"})
		return
	}
	v := conversationView{
		ConversationID: conv, Kind: c.Kind, Title: c.Title, CreatorUserID: c.CreatorUserID,
		CreatedAt: c.CreatedAt.UTC(), LastSeq: c.LastSeq, Version: c.LastVersion, LastActivity: c.LastActivity().UTC(),
		Members: make([]memberItem, 0, len(members)),
		Closed:  c.Closed, ClosedBy: c.ClosedBy, ClosedReason: c.ClosedReason,
	}
	if c.Closed {
		v.ClosedAt = c.ClosedAt.UTC()
	}
	now := time.Now()
	for i := range members {
		v.Members = append(v.Members, memberItemOf(&members[i], now))
		if members[i].UserID == id.UserID {
			v.Preview = previewOf(&c, visibleFrom(&c, &members[i]))
		}
	}
	if c.Kind == "group" {
		v.Settings = settingsOf(&c)
		v.OwnerUserID = c.OwnerUserID
		if v.OwnerUserID == "" {
			// A row projected before owners were: the member whose role
			// says so.
			for _, m := range members {
				if m.Role == "owner" {
					v.OwnerUserID = m.UserID
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) handleReceipts(w http.ResponseWriter, r *http.Request, id token.Identity) {
	conv, err := conversationParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	members, err := s.currentMembers(r, conv, id.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if c, _, err := s.db(r.Context()).conversation(r.Context(), conv); err != nil || c.Deleted {
		s.fail(w, r, cmp.Or(err, error(errDeleted)))
		return
	}
	v := receiptsView{ConversationID: conv, Receipts: make([]receiptItem, 0, len(members))}
	for _, m := range members {
		v.Receipts = append(v.Receipts, receiptItem{UserID: m.UserID, ReadSeq: m.ReadSeq, DeliveredSeq: m.DeliveredSeq})
	}
	writeJSON(w, http.StatusOK, v)
}
