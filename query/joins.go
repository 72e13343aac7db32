package query

import (
	"net/http"
	"time"

	"github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
)

// Joining a group by invitation link or by request (ingest/README.md,
// "Joining by link or by request"): the links and the pending requests
// are shown to the members who may manage them (the group's who_may_add:
// every member, or the owner and admins); a user sees its own request.

var codePermissionDenied = codeName(parleyv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED)

type inviteItem struct {
	InviteID         string    `json:"invite_id"`
	CreatedBy        string    `json:"created_by"`
	CreatedAt        time.Time `json:"created_at,omitzero"`
	ExpiresAt        time.Time `json:"expires_at,omitzero"`
	MaxUses          int       `json:"max_uses"`
	Uses             int       `json:"uses"`
	RequiresApproval bool      `json:"requires_approval"`
	// Open: not revoked, not expired, not used up: a join with it is
	// decided by its terms (the decider is the judge, at its receive time).
	Open      bool      `json:"open"`
	RevokedBy string    `json:"revoked_by,omitempty"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

type invitesView struct {
	ConversationID string       `json:"conversation_id"`
	Invites        []inviteItem `json:"invites"`
}

type joinRequestItem struct {
	UserID      string    `json:"user_id"`
	State       string    `json:"state"`
	RequestedAt time.Time `json:"requested_at,omitzero"`
	InviteID    string    `json:"invite_id,omitempty"`
	Note        string    `json:"note,omitempty"`
	DecidedBy   string    `json:"decided_by,omitempty"`
	DecidedAt   time.Time `json:"decided_at,omitzero"`
}

type joinRequestsView struct {
	ConversationID string            `json:"conversation_id"`
	Requests       []joinRequestItem `json:"requests"`
}

// ownJoinRequest is the caller's own standing: "member", "pending",
// "declined" or "none" (never asked, or the group does not exist: a
// non-member cannot tell which).
type ownJoinRequest struct {
	ConversationID string    `json:"conversation_id"`
	UserID         string    `json:"user_id"`
	State          string    `json:"state"`
	RequestedAt    time.Time `json:"requested_at,omitzero"`
	InviteID       string    `json:"invite_id,omitempty"`
	DecidedAt      time.Time `json:"decided_at,omitzero"`
}

// mayManage checks that user is a current member of conv allowed to add
// members, and so to see the links and requests (a direct conversation
// has none: its members see empty lists).
func (s *Server) mayManage(r *http.Request, conv, user string) error {
	ctx := r.Context()
	c, m, _, err := s.access(ctx, conv, user)
	if err != nil {
		return err
	}
	if c.WhoMayAdd == policyAdmins && m.Role != "owner" && m.Role != "admin" {
		return &apiError{http.StatusForbidden, codePermissionDenied, "only the owner and admins see this group's invitation links and join requests"}
	}
	return nil
}

func (s *Server) handleInvites(w http.ResponseWriter, r *http.Request, id token.Identity) {
	conv, err := conversationParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.mayManage(r, conv, id.UserID); err != nil {
		s.fail(w, r, err)
		return
	}
	rows, err := s.db(r.Context()).invites(r.Context(), conv)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := time.Now()
	v := invitesView{ConversationID: conv, Invites: make([]inviteItem, 0, len(rows))}
	for _, i := range rows {
		it := inviteItem{InviteID: i.ID, CreatedBy: i.CreatedBy, CreatedAt: i.CreatedAt.UTC(), MaxUses: i.MaxUses, Uses: i.Uses,
			RequiresApproval: i.RequiresApproval, RevokedBy: i.RevokedBy}
		if !i.ExpiresAt.IsZero() {
			it.ExpiresAt = i.ExpiresAt.UTC()
		}
		if !i.RevokedAt.IsZero() {
			it.RevokedAt = i.RevokedAt.UTC()
		}
		it.Open = i.RevokedBy == "" && (i.ExpiresAt.IsZero() || now.Before(i.ExpiresAt)) && (i.MaxUses == 0 || i.Uses < i.MaxUses)
		v.Invites = append(v.Invites, it)
	}
	writeJSON(w, http.StatusOK, v)
}

func joinRequestItemOf(j *joinRequestRow) joinRequestItem {
	it := joinRequestItem{UserID: j.UserID, State: j.State, InviteID: j.InviteID, Note: j.Note, DecidedBy: j.DecidedBy}
	if !j.RequestedAt.IsZero() {
		it.RequestedAt = j.RequestedAt.UTC()
	}
	if !j.DecidedAt.IsZero() {
		it.DecidedAt = j.DecidedAt.UTC()
	}
	return it
}

// handleJoinRequests lists a group's requests: the pending ones, or with
// state=declined the declined ones, or state=all both.
func (s *Server) handleJoinRequests(w http.ResponseWriter, r *http.Request, id token.Identity) {
	conv, err := conversationParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	want := r.URL.Query().Get("state")
	switch want {
	case "":
		want = "pending"
	case "pending", "declined", "all":
	default:
		s.fail(w, r, invalidArgument("state must be pending, declined or all"))
		return
	}
	if err := s.mayManage(r, conv, id.UserID); err != nil {
		s.fail(w, r, err)
		return
	}
	rows, err := s.db(r.Context()).joinRequests(r.Context(), conv)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := joinRequestsView{ConversationID: conv, Requests: []joinRequestItem{}}
	for i := range rows {
		if want == "all" || rows[i].State == want {
			v.Requests = append(v.Requests, joinRequestItemOf(&rows[i]))
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// handleOwnJoinRequest answers any authenticated user about itself.
func (s *Server) handleOwnJoinRequest(w http.ResponseWriter, r *http.Request, id token.Identity) {
	conv, err := conversationParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	m, member, err := s.db(ctx).member(ctx, conv, id.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := ownJoinRequest{ConversationID: conv, UserID: id.UserID, State: "none"}
	if member && !m.Removed {
		v.State = "member"
		writeJSON(w, http.StatusOK, v)
		return
	}
	j, found, err := s.db(ctx).joinRequestOf(ctx, conv, id.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if found {
		it := joinRequestItemOf(&j)
		v.State, v.RequestedAt, v.InviteID, v.DecidedAt = it.State, it.RequestedAt, it.InviteID, it.DecidedAt
	}
	writeJSON(w, http.StatusOK, v)
}
