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
	mux.HandleFunc("PUT /v1/admin/users/{user}/devices/{device}/revocation", a.with(ScopeUsersBan, a.revoke))
	mux.HandleFunc("DELETE /v1/admin/users/{user}/devices/{device}/revocation", a.with(ScopeUsersBan, a.restore))
	mux.HandleFunc("GET /v1/admin/users/{user}/conversations", a.with(ScopeConversationsRead, a.conversations))
	a.addWebhookRoutes(mux)
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
func derivedGroupID(p principal, key string) string { return "g:" + keyDigest(p, key) }

// derivedClientMsgID is a send's client_msg_id for key: the decider's
// dedup then answers a retry with the first send's seq.
func derivedClientMsgID(p principal, key string) string { return "admin-" + keyDigest(p, key) }

// keyDigest is 32 hex digits of the SHA-256 of p's key id and key.
func keyDigest(p principal, key string) string {
	sum := sha256.Sum256([]byte("admin\x00" + p.key.ID + "\x00" + key))
	return hex.EncodeToString(sum[:16])
}

func (a *admin) command(p principal, user, conv string) *pb.Command {
	now := time.Now()
	return &pb.Command{CommandId: newID(now), UserId: user, DeviceId: "admin", ConversationId: conv,
		ReceivedAt: timestamppb.New(now), ServicePrincipal: p.key.ID}
}

// adminRequest says what a call reads of its request, in the order every
// call reads it: the conversation and the user in the path, the
// Idempotency-Key (writes), the JSON body, then the user acted as
// (asUser, once the body is read).
type adminRequest struct {
	conv, user, write bool
	body              any
	asUser            func() string
}

// adminArgs is what a call's request named.
type adminArgs struct {
	conv, user, key string
}

// read reads and checks what q asks for; on the first failure it has
// answered it and ok is false.
func (a *admin) read(w http.ResponseWriter, r *http.Request, p principal, q adminRequest) (c adminArgs, ok bool) {
	var err error
	if q.conv {
		c.conv, err = pathID(r, "conversation", schemas.CheckConversationID)
	}
	if err == nil && q.user {
		c.user, err = pathID(r, "user", schemas.CheckID)
	}
	if err == nil && q.write {
		c.key, err = idempotencyKey(r)
	}
	if err == nil && q.body != nil {
		err = readBody(w, r, q.body)
	}
	if err == nil && q.asUser != nil {
		err = actAs(p, q.asUser())
	}
	if err != nil {
		a.fail(w, err)
		return c, false
	}
	return c, true
}

// submit appends cmd and waits for its decision (nil: none within the
// wait); when the append fails it has answered and ok is false.
func (a *admin) submit(w http.ResponseWriter, r *http.Request, cmd *pb.Command) (ev *pb.Event, ok bool) {
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return nil, false
	}
	return ev, true
}

// decide submits cmd and answers its decision with status (answer). The
// decider's NO_CHANGE (what cmd asks for is in place: a retry), or one of
// the codes in also, answers 200 repeated with event: the decider, not a
// view that may lag, tells a retry from a change.
func (a *admin) decide(w http.ResponseWriter, r *http.Request, cmd *pb.Command, status int, event string, also ...pb.ErrorCode) {
	ev, ok := a.submit(w, r, cmd)
	if !ok {
		return
	}
	if rej := ev.GetCommandRejected(); rej != nil && (rej.GetCode() == pb.ErrorCode_ERROR_CODE_NO_CHANGE || slices.Contains(also, rej.GetCode())) {
		writeJSON(w, http.StatusOK, adminResult{CommandID: cmd.GetCommandId(), ConversationID: cmd.GetConversationId(), Event: event, Repeated: true})
		return
	}
	a.answer(w, cmd, ev, status)
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
	c, ok := a.read(w, r, p, adminRequest{write: true, body: &body, asUser: func() string { return body.AsUserID }})
	if !ok {
		return
	}
	key := c.key
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
	ev, ok := a.submit(w, r, cmd)
	if !ok {
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
	c, ok := a.read(w, r, p, adminRequest{conv: true, write: true, body: &body, asUser: func() string { return body.AsUserID }})
	if !ok {
		return
	}
	conv := c.conv
	if len(body.UserIDs) == 0 {
		a.refuse(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "userIds names nobody")
		return
	}
	if err := checkIDs("userIds", body.UserIDs); err != nil {
		a.fail(w, err)
		return
	}
	cmd := a.command(p, body.AsUserID, conv)
	cmd.Body = &pb.Command_AddMembers{AddMembers: &pb.AddMembers{UserIds: body.UserIDs}}
	a.decide(w, r, cmd, http.StatusOK, schemas.TypeMembersAdded)
}

// setRole serves PUT /v1/admin/conversations/{conversation}/members/{user}/role.
func (a *admin) setRole(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminRole
	c, ok := a.read(w, r, p, adminRequest{conv: true, user: true, write: true, body: &body, asUser: func() string { return body.AsUserID }})
	if !ok {
		return
	}
	conv, user := c.conv, c.user
	role := map[string]pb.MemberRole{"admin": pb.MemberRole_MEMBER_ROLE_ADMIN, "member": pb.MemberRole_MEMBER_ROLE_MEMBER}[body.Role]
	if role == pb.MemberRole_MEMBER_ROLE_UNSPECIFIED {
		a.refuse(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, `role must be "admin" or "member"`)
		return
	}
	cmd := a.command(p, body.AsUserID, conv)
	cmd.Body = &pb.Command_SetMemberRole{SetMemberRole: &pb.SetMemberRole{UserId: user, Role: role}}
	a.decide(w, r, cmd, http.StatusOK, schemas.TypeMemberRoleChanged)
}

// removeMember serves DELETE
// /v1/admin/conversations/{conversation}/members/{user}?asUserId=.
func (a *admin) removeMember(w http.ResponseWriter, r *http.Request, p principal) {
	as := r.URL.Query().Get("asUserId")
	c, ok := a.read(w, r, p, adminRequest{conv: true, user: true, write: true, asUser: func() string { return as }})
	if !ok {
		return
	}
	conv, user := c.conv, c.user
	cmd := a.command(p, as, conv)
	if user == as {
		cmd.Body = &pb.Command_LeaveConversation{LeaveConversation: &pb.LeaveConversation{}}
		a.decide(w, r, cmd, http.StatusOK, schemas.TypeMemberRemoved)
		return
	}
	// The decider's NOT_FOUND: user is no member (any more), a retry.
	cmd.Body = &pb.Command_RemoveMember{RemoveMember: &pb.RemoveMember{UserId: user}}
	a.decide(w, r, cmd, http.StatusOK, schemas.TypeMemberRemoved, pb.ErrorCode_ERROR_CODE_NOT_FOUND)
}

// send serves POST /v1/admin/conversations/{conversation}/messages.
func (a *admin) send(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminSend
	c, ok := a.read(w, r, p, adminRequest{conv: true, write: true, body: &body, asUser: func() string { return body.AsUserID }})
	if !ok {
		return
	}
	conv, key := c.conv, c.key
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
	ev, ok := a.submit(w, r, cmd)
	if !ok {
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
// A change in place already is answered 200 repeated: the decider's
// NO_CHANGE (decide).
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
		a.decide(w, r, cmd, http.StatusOK, typ)
	}
}

// ban serves PUT /v1/admin/users/{user}/ban.
func (a *admin) ban(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminBan
	c, ok := a.read(w, r, p, adminRequest{user: true, write: true, body: &body})
	if !ok {
		return
	}
	user := c.user
	b := &pb.BanUser{Reason: body.Reason}
	if body.Until != nil {
		b.Until = timestamppb.New(*body.Until)
	}
	cmd := a.command(p, user, schemas.UserStreamID(user))
	cmd.Body = &pb.Command_BanUser{BanUser: b}
	a.decide(w, r, cmd, http.StatusOK, schemas.TypeUserBanned)
}

// unban serves DELETE /v1/admin/users/{user}/ban.
func (a *admin) unban(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := a.read(w, r, p, adminRequest{user: true, write: true})
	if !ok {
		return
	}
	user := c.user
	cmd := a.command(p, user, schemas.UserStreamID(user))
	cmd.Body = &pb.Command_UnbanUser{UnbanUser: &pb.UnbanUser{}}
	a.decide(w, r, cmd, http.StatusOK, schemas.TypeUserUnbanned)
}

// adminRevoke is the optional body of a revocation.
type adminRevoke struct {
	Reason string `json:"reason,omitempty"`
}

// revocation reads a revocation call's request: the user and the device
// in the path, the Idempotency-Key, and the body when there is one (it is
// optional); false when it has answered a failure (a malformed device id:
// 400 INVALID_ID).
func (a *admin) revocation(w http.ResponseWriter, r *http.Request, p principal, body *adminRevoke) (user, device string, ok bool) {
	if _, err := pathID(r, "user", schemas.CheckID); err != nil {
		a.fail(w, err)
		return "", "", false
	}
	device, err := pathID(r, "device", schemas.CheckID)
	if err != nil {
		a.fail(w, err)
		return "", "", false
	}
	q := adminRequest{user: true, write: true}
	if body != nil && r.ContentLength != 0 {
		q.body = body
	}
	c, ok := a.read(w, r, p, q)
	return c.user, device, ok
}

// revoke serves PUT /v1/admin/users/{user}/devices/{device}/revocation
// (an optional JSON body {"reason"}).
func (a *admin) revoke(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminRevoke
	user, dev, ok := a.revocation(w, r, p, &body)
	if !ok {
		return
	}
	cmd := a.command(p, user, schemas.UserStreamID(user))
	cmd.Body = &pb.Command_RevokeDevice{RevokeDevice: &pb.RevokeDevice{DeviceId: dev, Reason: body.Reason}}
	a.decide(w, r, cmd, http.StatusOK, schemas.TypeDeviceRevoked)
}

// restore serves DELETE /v1/admin/users/{user}/devices/{device}/revocation.
func (a *admin) restore(w http.ResponseWriter, r *http.Request, p principal) {
	user, dev, ok := a.revocation(w, r, p, nil)
	if !ok {
		return
	}
	cmd := a.command(p, user, schemas.UserStreamID(user))
	cmd.Body = &pb.Command_RestoreDevice{RestoreDevice: &pb.RestoreDevice{DeviceId: dev}}
	a.decide(w, r, cmd, http.StatusOK, schemas.TypeDeviceRestored)
}

// errAuditFailed ends an export whose read could not be recorded (audit
// answered the request).
var errAuditFailed = errors.New("the read was not recorded")

// audit appends the RecordServiceRead of this read of stream (user:
// Command.user_id) before the read is answered; a read that cannot be
// recorded is refused 503, so every answered admin call is in the log. (An
// export records itself once it has found the conversation's first event,
// so the record is the event right after what the export holds; an export
// of a conversation with no events answers 404 and records nothing.)
func (a *admin) audit(w http.ResponseWriter, r *http.Request, p principal, stream, user string) bool {
	cmd := a.command(p, user, stream)
	cmd.Body = &pb.Command_RecordServiceRead{RecordServiceRead: &pb.RecordServiceRead{Route: r.Pattern}}
	if err := a.srv.appendCommand(r.Context(), cmd); err != nil {
		a.fail(w, err)
		return false
	}
	return true
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
	case pb.ErrorCode_ERROR_CODE_CONVERSATION_EXISTS, pb.ErrorCode_ERROR_CODE_GROUP_FULL, pb.ErrorCode_ERROR_CODE_WEBHOOK_EXISTS,
		pb.ErrorCode_ERROR_CODE_LIMIT_REACHED:
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
func (a *admin) conversations(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := a.read(w, r, p, adminRequest{user: true})
	if !ok {
		return
	}
	user := c.user
	if a.tables == nil {
		a.refuse(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the views are not configured on this gateway")
		return
	}
	if !a.audit(w, r, p, schemas.UserStreamID(user), user) {
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
func (a *admin) export(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := a.read(w, r, p, adminRequest{conv: true})
	if !ok {
		return
	}
	conv := c.conv
	src := eventlog.Source{Seeds: a.srv.cfg.Seeds, Topic: a.srv.cfg.EventsTopic, Extra: a.srv.kopts}
	wrote := false
	_, err := eventlog.Export(r.Context(), src, eventlog.ExportQuery{Conversation: conv}, func(rec *eventlog.Record) error {
		line, err := rec.MarshalLine()
		if err != nil {
			return err
		}
		if !wrote && !a.audit(w, r, p, conv, p.key.ID) {
			return errAuditFailed // answered
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
	case errors.Is(err, errAuditFailed):
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
