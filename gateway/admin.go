package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/eventlog"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The admin API (README.md, "Admin API"): HTTP for services, authenticated
// by the API keys of adminkeys.go. Every write is a Command appended to
// parley.commands with Command.service_principal = the key's id and
// decided by ingest like a device's; the answer is its decision.

const (
	// maxAdminBodyBytes bounds an admin request body.
	maxAdminBodyBytes = 64 << 10
	// adminDecisionWait bounds how long a write waits for the decider; it
	// then answers 202 with the command id (the outcome follows in the log).
	adminDecisionWait = 10 * time.Second
	// idempotencyHeader names a write's retry key.
	idempotencyHeader = "Idempotency-Key"
)

// adminResult answers an admin write.
type adminResult struct {
	// CommandID is the command appended (empty when nothing was appended:
	// the views or the bans showed the change made already).
	CommandID      string `json:"commandId,omitempty"`
	ConversationID string `json:"conversationId"`
	// Event is the type of the event that decided the command, e.g.
	// MessageSent; empty when the command changed nothing or was not
	// decided within the wait (202).
	Event string `json:"event,omitempty"`
	// Seq is a message's or member notice's seq.
	Seq int64 `json:"seq,omitempty"`
	// Repeated: this call repeats one already applied (the same
	// Idempotency-Key, or a change that is in place already): nothing new
	// happened, and the answer is what the first call made.
	Repeated bool `json:"repeated,omitempty"`
}

type adminCreate struct {
	AsUserID      string   `json:"asUserId"`
	Kind          string   `json:"kind"`
	Title         string   `json:"title,omitempty"`
	MemberUserIDs []string `json:"memberUserIds,omitempty"`
}

type adminAddMembers struct {
	AsUserID string   `json:"asUserId"`
	UserIDs  []string `json:"userIds"`
}

type adminRole struct {
	AsUserID string `json:"asUserId"`
	Role     string `json:"role"`
}

type adminSend struct {
	AsUserID    string `json:"asUserId"`
	Text        string `json:"text"`
	ContentType string `json:"contentType,omitempty"`
}

type adminBan struct {
	Until  *time.Time `json:"until,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

// adminClose is the optional body of a close.
type adminClose struct {
	Reason string `json:"reason,omitempty"`
}

type adminConversation struct {
	ConversationID string `json:"conversationId"`
	Kind           string `json:"kind"`
	Title          string `json:"title,omitempty"`
	JoinedSeq      int64  `json:"joinedSeq"`
}

type adminConversations struct {
	UserID        string              `json:"userId"`
	Conversations []adminConversation `json:"conversations"`
}

// admin serves /v1/admin/.
type admin struct {
	srv    *Server
	auth   *adminAuth
	tables *projector.Tables // nil without Cassandra
	log    *slog.Logger
}

// addAdminRoutes is the server's hook: the admin endpoints, when keys are
// configured (without keys they answer 401 like a wrong key).
func (s *Server) addAdminRoutes(mux *router) {
	a := &admin{srv: s, auth: newAdminAuth(s.cfg.AdminKeys), log: s.log.With("part", "admin")}
	if cv, ok := s.views.(*cassandraViews); ok {
		a.tables = cv.tables
	}
	mux.HandleFunc("POST /v1/admin/conversations", a.with(ScopeConversationsWrite, a.create))
	mux.HandleFunc("POST /v1/admin/conversations/{conversation}/members", a.with(ScopeConversationsWrite, a.addMembers))
	mux.HandleFunc("PUT /v1/admin/conversations/{conversation}/members/{user}/role", a.with(ScopeConversationsWrite, a.setRole))
	mux.HandleFunc("DELETE /v1/admin/conversations/{conversation}/members/{user}", a.with(ScopeConversationsWrite, a.removeMember))
	mux.HandleFunc("POST /v1/admin/conversations/{conversation}/messages", a.with(ScopeMessagesWrite, a.send))
	mux.HandleFunc("POST /v1/admin/conversations/{conversation}/close", a.with(ScopeConversationsWrite, a.lifecycle(lifecycleClose)))
	mux.HandleFunc("POST /v1/admin/conversations/{conversation}/reopen", a.with(ScopeConversationsWrite, a.lifecycle(lifecycleReopen)))
	mux.HandleFunc("DELETE /v1/admin/conversations/{conversation}", a.with(ScopeConversationsWrite, a.lifecycle(lifecycleDelete)))
	mux.HandleFunc("GET /v1/admin/conversations/{conversation}/export", a.with(ScopeExport, a.export))
	mux.HandleFunc("PUT /v1/admin/users/{user}/ban", a.with(ScopeUsersBan, a.ban))
	mux.HandleFunc("DELETE /v1/admin/users/{user}/ban", a.with(ScopeUsersBan, a.unban))
	mux.HandleFunc("GET /v1/admin/users/{user}/conversations", a.with(ScopeConversationsRead, a.conversations))
}

// with authenticates the key and checks it holds scope.
func (a *admin) with(scope string, h func(http.ResponseWriter, *http.Request, principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := a.auth.authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley-admin"`)
			a.refuse(w, http.StatusUnauthorized, pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, err.Error())
			return
		}
		if !p.has(scope) {
			a.refuse(w, http.StatusForbidden, pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED,
				fmt.Sprintf("key %s lacks the scope %s", p.key.ID, scope))
			return
		}
		a.log.Info("admin call", "key", p.key.ID, "method", r.Method, "path", r.URL.Path)
		h(w, r, p)
	}
}

func (a *admin) refuse(w http.ResponseWriter, status int, code pb.ErrorCode, msg string) {
	a.srv.metrics.rejections.WithLabelValues(code.String()).Inc()
	writeError(w, status, code, msg)
}

// fail answers an httpError.
func (a *admin) fail(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		a.refuse(w, he.status, he.code, he.msg)
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	a.log.Warn("admin command not appended", "err", err)
	a.refuse(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the command was not appended; retry")
}

// readBody decodes a JSON body into v, refusing unknown fields.
func readBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBodyBytes))
	if err != nil {
		return refuse(http.StatusRequestEntityTooLarge, pb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE, "the body is larger than %d bytes", maxAdminBodyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "the body is not the documented JSON: %s", detail(err.Error()))
	}
	return nil
}

// actAs checks the user a write acts as.
func actAs(p principal, user string) error {
	if err := schemas.CheckID("asUserId", user); err != nil {
		return refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ID, "%v", err)
	}
	if !p.mayActAs(user) {
		return refuse(http.StatusForbidden, pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "key %s may not act as %s", p.key.ID, schemas.Clip(user))
	}
	return nil
}

// checkIDs checks each user id of a list.
func checkIDs(field string, ids []string) error {
	for i, u := range ids {
		if err := schemas.CheckID(fmt.Sprintf("%s[%d]", field, i), u); err != nil {
			return refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ID, "%v", err)
		}
	}
	return nil
}

// idempotencyKey is the request's Idempotency-Key ("" when none).
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get(idempotencyHeader)
	if k == "" {
		return "", nil
	}
	if err := schemas.CheckID(idempotencyHeader, k); err != nil {
		return "", refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
	}
	return k, nil
}

// derivedGroupID is the group id of a create retried with key: the same
// key of the same credential names the same group, so a retry finds it.
func derivedGroupID(p principal, key string) string {
	sum := sha256.Sum256([]byte("admin\x00" + p.key.ID + "\x00" + key))
	return "g:" + hex.EncodeToString(sum[:16])
}

// derivedClientMsgID is a send's client_msg_id for key: the decider's
// dedup then answers a retry with the first send's seq.
func derivedClientMsgID(p principal, key string) string {
	sum := sha256.Sum256([]byte("admin\x00" + p.key.ID + "\x00" + key))
	return "admin-" + hex.EncodeToString(sum[:16])
}

func (a *admin) command(p principal, user, conv string) *pb.Command {
	now := time.Now()
	return &pb.Command{CommandId: newID(now), UserId: user, DeviceId: "admin", ConversationId: conv,
		ReceivedAt: timestamppb.New(now), ServicePrincipal: p.key.ID}
}

func pathID(r *http.Request, name string, check func(string, string) error) (string, error) {
	v := r.PathValue(name)
	if err := check(name, v); err != nil {
		return "", refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ID, "%v", err)
	}
	return v, nil
}

// create serves POST /v1/admin/conversations.
func (a *admin) create(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminCreate
	key, err := idempotencyKey(r)
	if err == nil {
		err = readBody(w, r, &body)
	}
	if err == nil {
		err = actAs(p, body.AsUserID)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := checkIDs("memberUserIds", body.MemberUserIDs); err != nil {
		a.fail(w, err)
		return
	}
	cc := &pb.CreateConversation{Title: body.Title, MemberUserIds: body.MemberUserIDs}
	var conv string
	switch body.Kind {
	case "group":
		cc.Kind = pb.ConversationKind_CONVERSATION_KIND_GROUP
		conv = schemas.NewGroupConversationID()
		if key != "" {
			conv = derivedGroupID(p, key)
		}
	case "direct":
		cc.Kind = pb.ConversationKind_CONVERSATION_KIND_DIRECT
		if len(body.MemberUserIDs) != 1 || body.MemberUserIDs[0] == body.AsUserID {
			a.refuse(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a direct conversation names exactly one other user in memberUserIds")
			return
		}
		conv = schemas.DirectConversationID(body.AsUserID, body.MemberUserIDs[0])
	default:
		a.refuse(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, `kind must be "group" or "direct"`)
		return
	}
	cmd := a.command(p, body.AsUserID, conv)
	cmd.Body = &pb.Command_CreateConversation{CreateConversation: cc}
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	// A retry of a create made with this key (the id is the key's own), or
	// of a direct conversation's: the conversation is there.
	if rej := ev.GetCommandRejected(); rej != nil && rej.GetCode() == pb.ErrorCode_ERROR_CODE_CONVERSATION_EXISTS && key != "" {
		writeJSON(w, http.StatusOK, adminResult{CommandID: cmd.GetCommandId(), ConversationID: conv, Event: schemas.TypeConversationCreated, Repeated: true})
		return
	}
	a.answer(w, cmd, ev, http.StatusCreated)
}

// addMembers serves POST /v1/admin/conversations/{conversation}/members.
func (a *admin) addMembers(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminAddMembers
	conv, err := pathID(r, "conversation", schemas.CheckConversationID)
	if err == nil {
		_, err = idempotencyKey(r)
	}
	if err == nil {
		err = readBody(w, r, &body)
	}
	if err == nil {
		err = actAs(p, body.AsUserID)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	if len(body.UserIDs) == 0 {
		a.refuse(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "userIds names nobody")
		return
	}
	if err := checkIDs("userIds", body.UserIDs); err != nil {
		a.fail(w, err)
		return
	}
	// Adding members who are all members already yields no event: answer
	// from the view (a retry), without appending.
	if cur := a.currentMembers(r.Context(), conv); slices.Contains(cur, body.AsUserID) &&
		!slices.ContainsFunc(body.UserIDs, func(u string) bool { return !slices.Contains(cur, u) }) {
		writeJSON(w, http.StatusOK, adminResult{ConversationID: conv, Event: schemas.TypeMembersAdded, Repeated: true})
		return
	}
	cmd := a.command(p, body.AsUserID, conv)
	cmd.Body = &pb.Command_AddMembers{AddMembers: &pb.AddMembers{UserIds: body.UserIDs}}
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.answer(w, cmd, ev, http.StatusOK)
}

// currentMembers are the conversation's members as the view has them
// (none without the views).
func (a *admin) currentMembers(ctx context.Context, conv string) []string {
	var out []string
	for _, m := range a.memberRows(ctx, conv) {
		out = append(out, m.UserID)
	}
	return out
}

// memberRows are the view's rows of the conversation's current members.
func (a *admin) memberRows(ctx context.Context, conv string) []projector.Member {
	if a.tables == nil {
		return nil
	}
	rows, err := a.tables.Members(ctx, conv)
	if err != nil {
		return nil
	}
	var out []projector.Member
	for _, m := range rows {
		if !m.Removed {
			out = append(out, m)
		}
	}
	return out
}

// setRole serves PUT /v1/admin/conversations/{conversation}/members/{user}/role.
func (a *admin) setRole(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminRole
	conv, err := pathID(r, "conversation", schemas.CheckConversationID)
	var user string
	if err == nil {
		user, err = pathID(r, "user", schemas.CheckID)
	}
	if err == nil {
		_, err = idempotencyKey(r)
	}
	if err == nil {
		err = readBody(w, r, &body)
	}
	if err == nil {
		err = actAs(p, body.AsUserID)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	role := map[string]pb.MemberRole{"admin": pb.MemberRole_MEMBER_ROLE_ADMIN, "member": pb.MemberRole_MEMBER_ROLE_MEMBER}[body.Role]
	if role == pb.MemberRole_MEMBER_ROLE_UNSPECIFIED {
		a.refuse(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, `role must be "admin" or "member"`)
		return
	}
	// The role the member has already yields no event: answer from the view.
	rows := a.memberRows(r.Context(), conv)
	actor := slices.ContainsFunc(rows, func(m projector.Member) bool { return m.UserID == body.AsUserID })
	if actor && slices.ContainsFunc(rows, func(m projector.Member) bool { return m.UserID == user && m.Role == body.Role }) {
		writeJSON(w, http.StatusOK, adminResult{ConversationID: conv, Event: schemas.TypeMemberRoleChanged, Repeated: true})
		return
	}
	cmd := a.command(p, body.AsUserID, conv)
	cmd.Body = &pb.Command_SetMemberRole{SetMemberRole: &pb.SetMemberRole{UserId: user, Role: role}}
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.answer(w, cmd, ev, http.StatusOK)
}

// removeMember serves DELETE
// /v1/admin/conversations/{conversation}/members/{user}?asUserId=.
func (a *admin) removeMember(w http.ResponseWriter, r *http.Request, p principal) {
	conv, err := pathID(r, "conversation", schemas.CheckConversationID)
	var user string
	if err == nil {
		user, err = pathID(r, "user", schemas.CheckID)
	}
	if err == nil {
		_, err = idempotencyKey(r)
	}
	as := r.URL.Query().Get("asUserId")
	if err == nil {
		err = actAs(p, as)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	// A user who is no member (any more) while the actor is one: a retry.
	if cur := a.currentMembers(r.Context(), conv); slices.Contains(cur, as) && !slices.Contains(cur, user) {
		writeJSON(w, http.StatusOK, adminResult{ConversationID: conv, Event: schemas.TypeMemberRemoved, Repeated: true})
		return
	}
	cmd := a.command(p, as, conv)
	if user == as {
		cmd.Body = &pb.Command_LeaveConversation{LeaveConversation: &pb.LeaveConversation{}}
	} else {
		cmd.Body = &pb.Command_RemoveMember{RemoveMember: &pb.RemoveMember{UserId: user}}
	}
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.answer(w, cmd, ev, http.StatusOK)
}

// send serves POST /v1/admin/conversations/{conversation}/messages.
func (a *admin) send(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminSend
	conv, err := pathID(r, "conversation", schemas.CheckConversationID)
	var key string
	if err == nil {
		key, err = idempotencyKey(r)
	}
	if err == nil {
		err = readBody(w, r, &body)
	}
	if err == nil {
		err = actAs(p, body.AsUserID)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	if len(body.Text) > a.srv.cfg.Limits.MaxMessageBytes {
		a.refuse(w, http.StatusRequestEntityTooLarge, pb.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE,
			fmt.Sprintf("text is %d bytes, at most %d", len(body.Text), a.srv.cfg.Limits.MaxMessageBytes))
		return
	}
	clientID := newID(time.Now())
	if key != "" {
		clientID = derivedClientMsgID(p, key)
	}
	cmd := a.command(p, body.AsUserID, conv)
	cmd.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: clientID, Text: body.Text, ContentType: body.ContentType}}
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	if d := ev.GetMessageDeduplicated(); d != nil {
		writeJSON(w, http.StatusOK, adminResult{CommandID: cmd.GetCommandId(), ConversationID: conv, Event: schemas.TypeMessageSent,
			Seq: d.GetOriginalSeq(), Repeated: true})
		return
	}
	a.answer(w, cmd, ev, http.StatusCreated)
}

// The admin API's changes of a whole conversation.
type lifecycleOp int

const (
	lifecycleClose lifecycleOp = iota
	lifecycleReopen
	lifecycleDelete
)

// lifecycle serves POST /v1/admin/conversations/{conversation}/close (an
// optional JSON body {"reason"}), .../reopen, and DELETE
// /v1/admin/conversations/{conversation}?reason=. The service acts as
// itself: the command's user is the key's id, and it needs no membership.
// A change in place already (by the views) is answered 200 repeated
// without appending; so is one the decider found in place (it decides no
// event: the views then show it).
func (a *admin) lifecycle(op lifecycleOp) func(http.ResponseWriter, *http.Request, principal) {
	return func(w http.ResponseWriter, r *http.Request, p principal) {
		conv, err := pathID(r, "conversation", schemas.CheckConversationID)
		if err == nil {
			_, err = idempotencyKey(r)
		}
		var body adminClose
		if err == nil && op == lifecycleClose && r.ContentLength != 0 {
			err = readBody(w, r, &body)
		}
		if op == lifecycleDelete {
			body.Reason = r.URL.Query().Get("reason")
		}
		if err != nil {
			a.fail(w, err)
			return
		}
		if len(body.Reason) > schemas.MaxCloseReasonBytes || !utf8.ValidString(body.Reason) {
			a.refuse(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT,
				fmt.Sprintf("reason must be UTF-8 of at most %d bytes", schemas.MaxCloseReasonBytes))
			return
		}
		cmd := a.command(p, p.key.ID, conv)
		var typ string
		switch op {
		case lifecycleClose:
			cmd.Body, typ = &pb.Command_CloseConversation{CloseConversation: &pb.CloseConversation{Reason: body.Reason}}, schemas.TypeConversationClosed
		case lifecycleReopen:
			cmd.Body, typ = &pb.Command_ReopenConversation{ReopenConversation: &pb.ReopenConversation{}}, schemas.TypeConversationReopened
		default:
			cmd.Body, typ = &pb.Command_DeleteConversation{DeleteConversation: &pb.DeleteConversation{Reason: body.Reason}}, schemas.TypeConversationDeleted
		}
		inPlace := func() bool {
			if a.tables == nil {
				return false
			}
			c, found, err := a.tables.Conversation(r.Context(), conv)
			if err != nil || !found {
				return false
			}
			switch op {
			case lifecycleClose:
				return c.Closed && !c.Deleted
			case lifecycleReopen:
				return !c.Closed && !c.Deleted
			}
			return c.Deleted
		}
		if inPlace() {
			writeJSON(w, http.StatusOK, adminResult{ConversationID: conv, Event: typ, Repeated: true})
			return
		}
		ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
		if err != nil {
			a.fail(w, err)
			return
		}
		if ev == nil && inPlace() {
			// Decided into no event: the change was made by an earlier call.
			writeJSON(w, http.StatusOK, adminResult{CommandID: cmd.GetCommandId(), ConversationID: conv, Event: typ, Repeated: true})
			return
		}
		a.answer(w, cmd, ev, http.StatusOK)
	}
}

// ban serves PUT /v1/admin/users/{user}/ban.
func (a *admin) ban(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminBan
	user, err := pathID(r, "user", schemas.CheckID)
	if err == nil {
		_, err = idempotencyKey(r)
	}
	if err == nil {
		err = readBody(w, r, &body)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	b := &pb.BanUser{Reason: body.Reason}
	if body.Until != nil {
		b.Until = timestamppb.New(*body.Until)
	}
	// The very ban that stands yields no event: answer from the bans held.
	if cur, ok := a.srv.banOf(user); ok && cur.Reason == body.Reason &&
		((body.Until == nil && cur.Until.IsZero()) || (body.Until != nil && cur.Until.Equal(body.Until.Truncate(time.Millisecond)))) {
		writeJSON(w, http.StatusOK, adminResult{ConversationID: schemas.UserStreamID(user), Event: schemas.TypeUserBanned, Repeated: true})
		return
	}
	cmd := a.command(p, user, schemas.UserStreamID(user))
	cmd.Body = &pb.Command_BanUser{BanUser: b}
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.answer(w, cmd, ev, http.StatusOK)
}

// unban serves DELETE /v1/admin/users/{user}/ban.
func (a *admin) unban(w http.ResponseWriter, r *http.Request, p principal) {
	user, err := pathID(r, "user", schemas.CheckID)
	if err == nil {
		_, err = idempotencyKey(r)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	if _, ok := a.srv.banOf(user); !ok {
		writeJSON(w, http.StatusOK, adminResult{ConversationID: schemas.UserStreamID(user), Event: schemas.TypeUserUnbanned, Repeated: true})
		return
	}
	cmd := a.command(p, user, schemas.UserStreamID(user))
	cmd.Body = &pb.Command_UnbanUser{UnbanUser: &pb.UnbanUser{}}
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.answer(w, cmd, ev, http.StatusOK)
}

// answer writes a write's decision: status with the deciding event, the
// refusal, or 202 when none came within the wait.
func (a *admin) answer(w http.ResponseWriter, cmd *pb.Command, ev *pb.Event, status int) {
	switch {
	case ev == nil:
		writeJSON(w, http.StatusAccepted, adminResult{CommandID: cmd.GetCommandId(), ConversationID: cmd.GetConversationId()})
	case ev.GetCommandRejected() != nil:
		rej := ev.GetCommandRejected()
		a.decision(w, rej.GetCode(), rej.GetMessage())
	default:
		writeJSON(w, status, adminResult{CommandID: cmd.GetCommandId(), ConversationID: cmd.GetConversationId(),
			Event: schemas.EventType(ev), Seq: ev.GetSeq()})
	}
}

// decision answers the decider's refusal with its status.
func (a *admin) decision(w http.ResponseWriter, code pb.ErrorCode, msg string) {
	a.refuse(w, adminStatus(code), code, msg)
}

// adminStatus is the HTTP status of a decider's refusal.
func adminStatus(code pb.ErrorCode) int {
	switch code {
	case pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, pb.ErrorCode_ERROR_CODE_INVALID_ID:
		return http.StatusBadRequest
	case pb.ErrorCode_ERROR_CODE_NOT_MEMBER, pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, pb.ErrorCode_ERROR_CODE_USER_BANNED,
		pb.ErrorCode_ERROR_CODE_BLOCKED, pb.ErrorCode_ERROR_CODE_MUTED:
		return http.StatusForbidden
	case pb.ErrorCode_ERROR_CODE_CONVERSATION_EXISTS, pb.ErrorCode_ERROR_CODE_GROUP_FULL:
		return http.StatusConflict
	case pb.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE:
		return http.StatusRequestEntityTooLarge
	case pb.ErrorCode_ERROR_CODE_NOT_FOUND, pb.ErrorCode_ERROR_CODE_CONVERSATION_DELETED:
		return http.StatusNotFound
	case pb.ErrorCode_ERROR_CODE_CONVERSATION_CLOSED:
		return http.StatusConflict
	}
	return http.StatusUnprocessableEntity
}

// conversations serves GET /v1/admin/users/{user}/conversations: the
// user's current conversations from the inbox view.
func (a *admin) conversations(w http.ResponseWriter, r *http.Request, _ principal) {
	user, err := pathID(r, "user", schemas.CheckID)
	if err != nil {
		a.fail(w, err)
		return
	}
	if a.tables == nil {
		a.refuse(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the views are not configured on this gateway")
		return
	}
	rows, err := a.tables.Inbox(r.Context(), user)
	if err != nil {
		a.refuse(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the views did not answer; retry")
		return
	}
	out := adminConversations{UserID: user, Conversations: []adminConversation{}}
	for _, row := range rows {
		if !row.Gone() {
			out.Conversations = append(out.Conversations, adminConversation{ConversationID: row.ConversationID, Kind: row.Kind,
				Title: row.Title, JoinedSeq: row.JoinedSeq})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// export serves GET /v1/admin/conversations/{conversation}/export: the
// conversation's events as they are in the log when the export starts,
// one eventlog JSON line each (schemas README, "Export and tail").
func (a *admin) export(w http.ResponseWriter, r *http.Request, _ principal) {
	conv, err := pathID(r, "conversation", schemas.CheckConversationID)
	if err != nil {
		a.fail(w, err)
		return
	}
	src := eventlog.Source{Seeds: a.srv.cfg.Seeds, Topic: a.srv.cfg.EventsTopic}
	wrote := false
	_, err = eventlog.Export(r.Context(), src, eventlog.ExportQuery{Conversation: conv}, func(rec *eventlog.Record) error {
		line, err := rec.MarshalLine()
		if err != nil {
			return err
		}
		if !wrote {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			wrote = true
		}
		_, err = w.Write(line) // with its newline
		return err
	})
	switch {
	case err != nil && !wrote:
		a.log.Warn("export failed", "conversation", conv, "err", err)
		a.refuse(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the log could not be read; retry")
	case err != nil:
		a.log.Warn("export cut short", "conversation", conv, "err", err) // the client sees a cut stream
	case !wrote:
		// Nothing in the log: no such conversation (or not yet).
		a.refuse(w, http.StatusNotFound, pb.ErrorCode_ERROR_CODE_NOT_FOUND, "no events of "+conv+" in the log")
	}
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
