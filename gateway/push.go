package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
)

// Push targets (README.md, "Push targets"): a device registers where its
// pushes go with a registerPush frame, or over HTTP before it connects
// (PUT /v1/push/targets), and unregisters on logout (unregisterPush,
// DELETE /v1/push/targets). Both become commands of the user's stream;
// the target is always the device's own (the token's device claim).

const (
	// maxPushBodyBytes bounds a PUT /v1/push/targets body: a target is at
	// most about 6 KiB of JSON.
	maxPushBodyBytes = 16 << 10
	// pushDecisionWait bounds how long a push request waits for the
	// decider: it then answers 202 (the device learns the outcome from its
	// user stream).
	pushDecisionWait = 10 * time.Second
)

// checkPush checks the form of a registerPush or unregisterPush body
// (checkFrame's part; the device comes from the session). A target's
// device id may be empty: the gateway fills in the device's own.
func checkPush(body proto.Message) *refusal {
	switch b := body.(type) {
	case *pb.RegisterPushTarget:
		t := b.GetTarget()
		if t == nil {
			return invalidArg("registerPush.target is required")
		}
		if t.GetDeviceId() == "" {
			t = proto.Clone(t).(*pb.PushTarget)
			t.DeviceId = "device" // the session's, checked by schemas.CheckID at the token
		}
		if err := schemas.CheckPushTarget(t); err != nil {
			return refusalOf(err)
		}
	case *pb.UnregisterPushTarget:
		if err := schemas.CheckOptionalID("unregisterPush.deviceId", b.GetDeviceId()); err != nil {
			return refusalOf(err)
		}
		switch b.GetReason() {
		case pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT, pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_REPLACED:
		case pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN:
			return &refusal{pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED,
				"unregisterPush.reason PUSH_UNREGISTER_REASON_INVALID_TOKEN is the notifier's, never a device's: use LOGOUT"}
		default:
			return invalidArg("unregisterPush.reason must be PUSH_UNREGISTER_REASON_LOGOUT or PUSH_UNREGISTER_REASON_REPLACED")
		}
		if b.GetToken() != "" {
			return invalidArg("unregisterPush.token names a refused token, the notifier's: leave it out")
		}
	}
	return nil
}

// pushCommand builds the command of a push body that passed checkPush, for
// user's device: on the user's stream (conv, when the frame names one, must
// be it), for the device itself, registered_at left to the decider.
func pushCommand(user, device, conv string, body proto.Message, now time.Time) (*pb.Command, *refusal) {
	own := schemas.UserStreamID(user)
	if conv != "" && conv != own {
		return nil, invalidArg("conversationId of a push frame must be empty or your user stream %s", own)
	}
	cmd := &pb.Command{CommandId: newID(now), UserId: user, DeviceId: device, ConversationId: own, ReceivedAt: timestamppb.New(now)}
	switch b := body.(type) {
	case *pb.RegisterPushTarget:
		t := proto.Clone(b.GetTarget()).(*pb.PushTarget)
		if t.GetDeviceId() != "" && t.GetDeviceId() != device {
			return nil, &refusal{pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, fmt.Sprintf(
				"registerPush.target.deviceId %s is not this device (%s): a device registers its own push target only",
				schemas.Clip(t.GetDeviceId()), schemas.Clip(device))}
		}
		t.DeviceId, t.RegisteredAt = device, nil
		cmd.Body = &pb.Command_RegisterPush{RegisterPush: &pb.RegisterPushTarget{Target: t}}
	case *pb.UnregisterPushTarget:
		if d := b.GetDeviceId(); d != "" && d != device {
			return nil, &refusal{pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, fmt.Sprintf(
				"unregisterPush.deviceId %s is not this device (%s): a device unregisters its own push target only",
				schemas.Clip(d), schemas.Clip(device))}
		}
		cmd.Body = &pb.Command_UnregisterPush{UnregisterPush: &pb.UnregisterPushTarget{DeviceId: device, Reason: b.GetReason()}}
	default:
		return nil, &refusal{pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "not a push body"}
	}
	return cmd, nil
}

// pushTargets serves /v1/push/targets.
type pushTargets struct {
	srv    *Server
	tables *projector.Tables // nil without Cassandra: no shortcut from the view
	log    *slog.Logger
}

// addPushRoutes is the server's hook: the HTTP push endpoints.
func (s *Server) addPushRoutes(mux *router) {
	p := &pushTargets{srv: s, log: s.log.With("part", "push")}
	if cv, ok := s.views.(*cassandraViews); ok {
		p.tables = cv.tables
	}
	mux.HandleFunc("PUT /v1/push/targets", p.servePut)
	mux.HandleFunc("DELETE /v1/push/targets", p.serveDelete)
}

// decidesPush tells the event that decides a push command: a
// registration's PushTargetRegistered (not the REPLACED of another device
// before it), an unregistration's PushTargetUnregistered.
func decidesPush(ev *pb.Event) bool {
	if ev.GetPushTargetRegistered() != nil {
		return true
	}
	u := ev.GetPushTargetUnregistered()
	return u != nil && u.GetReason() != pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_REPLACED
}

func (p *pushTargets) authenticate(w http.ResponseWriter, r *http.Request) (token.Identity, bool) {
	id, err := p.srv.authenticateDevice(r)
	if err != nil {
		he := err.(*httpError) // authenticateDevice refuses with one
		p.refuse(w, he.status, he.code, he.msg)
		return token.Identity{}, false
	}
	return id, true
}

func (p *pushTargets) refuse(w http.ResponseWriter, status int, code pb.ErrorCode, msg string) {
	p.srv.metrics.rejections.WithLabelValues(code.String()).Inc()
	writeError(w, status, code, msg)
}

// refusal answers a gateway refusal with its status.
func (p *pushTargets) refusal(w http.ResponseWriter, r *refusal) {
	p.refuse(w, pushStatus(r.code), r.code, r.msg)
}

// pushStatus is the HTTP status of a refusal's code.
func pushStatus(code pb.ErrorCode) int {
	switch code {
	case pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, pb.ErrorCode_ERROR_CODE_INVALID_ID:
		return http.StatusBadRequest
	case pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED:
		return http.StatusForbidden
	case pb.ErrorCode_ERROR_CODE_LIMIT_REACHED:
		return http.StatusConflict
	case pb.ErrorCode_ERROR_CODE_UNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusUnprocessableEntity
}

// servePut registers the request's device's push target: the body is a
// RegisterPushTarget as protojson ({"target": {...}}). 200 with the
// PushTargetRegistered once decided (or at once when the views show the
// device has this very target: nothing is appended), 202 with Accepted when
// the decision did not come within pushDecisionWait, else the refusal.
func (p *pushTargets) servePut(w http.ResponseWriter, r *http.Request) {
	id, ok := p.authenticate(w, r)
	if !ok {
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPushBodyBytes))
	if err != nil {
		p.refuse(w, http.StatusRequestEntityTooLarge, pb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE,
			fmt.Sprintf("the body is larger than %d bytes", maxPushBodyBytes))
		return
	}
	body := &pb.RegisterPushTarget{}
	if err := protojson.Unmarshal(b, body); err != nil {
		p.refuse(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT,
			"the body must be a RegisterPushTarget as JSON ({\"target\": {...}}): "+detail(err.Error()))
		return
	}
	if rf := checkPush(body); rf != nil {
		p.refusal(w, rf)
		return
	}
	cmd, rf := pushCommand(id.UserID, id.DeviceID, "", body, time.Now())
	if rf != nil {
		p.refusal(w, rf)
		return
	}
	if held := p.held(r.Context(), id, cmd.GetRegisterPush().GetTarget()); held != nil {
		writeProto(w, http.StatusOK, &pb.PushTargetRegistered{Target: held})
		return
	}
	p.decide(r.Context(), w, cmd, func(ev *pb.Event) { writeProto(w, http.StatusOK, ev.GetPushTargetRegistered()) })
}

// serveDelete unregisters the request's device (reason LOGOUT, or
// ?reason=REPLACED): 200 with the PushTargetUnregistered once decided,
// 204 when the views show no target for the device (the command is
// appended all the same, so a registration still in flight is removed
// too), 202 with Accepted after pushDecisionWait.
func (p *pushTargets) serveDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := p.authenticate(w, r)
	if !ok {
		return
	}
	reason := pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT
	if q := r.URL.Query().Get("reason"); q != "" {
		v, known := pb.PushUnregisterReason_value["PUSH_UNREGISTER_REASON_"+q]
		if !known {
			v, known = pb.PushUnregisterReason_value[q]
		}
		if !known {
			p.refuse(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "reason must be LOGOUT or REPLACED")
			return
		}
		reason = pb.PushUnregisterReason(v)
	}
	body := &pb.UnregisterPushTarget{Reason: reason}
	if rf := checkPush(body); rf != nil {
		p.refusal(w, rf)
		return
	}
	cmd, rf := pushCommand(id.UserID, id.DeviceID, "", body, time.Now())
	if rf != nil {
		p.refusal(w, rf)
		return
	}
	if p.tables != nil {
		if rows, err := p.tables.PushTargets(r.Context(), id.UserID); err == nil && !hasDevice(rows, id.DeviceID) {
			if err := p.srv.appendCommand(r.Context(), cmd); err != nil {
				p.appendFailed(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	p.decide(r.Context(), w, cmd, func(ev *pb.Event) { writeProto(w, http.StatusOK, ev.GetPushTargetUnregistered()) })
}

func hasDevice(rows []projector.PushTarget, dev string) bool {
	for _, r := range rows {
		if r.DeviceID == dev {
			return true
		}
	}
	return false
}

// held returns the target the views show the device has when it is t
// (registered_at aside), or nil. A registration again yields no event, so
// it is answered from what the log made of the first one.
func (p *pushTargets) held(ctx context.Context, id token.Identity, t *pb.PushTarget) *pb.PushTarget {
	if p.tables == nil {
		return nil
	}
	rows, err := p.tables.PushTargets(ctx, id.UserID)
	if err != nil {
		return nil // append: the decider knows
	}
	for _, r := range rows {
		if r.DeviceID != id.DeviceID {
			continue
		}
		got := pushTargetOfRow(r)
		want := proto.Clone(t).(*pb.PushTarget)
		want.RegisteredAt = got.GetRegisteredAt()
		if proto.Equal(got, want) {
			return got
		}
	}
	return nil
}

// pushTargetOfRow is the PushTarget a push_targets row holds.
func pushTargetOfRow(r projector.PushTarget) *pb.PushTarget {
	t := &pb.PushTarget{DeviceId: r.DeviceID, Token: r.Token, ApnsTopic: r.APNSTopic, Endpoint: r.Endpoint, P256Dh: r.P256DH, Auth: r.Auth,
		Provider:        pb.PushProvider(pb.PushProvider_value["PUSH_PROVIDER_"+strings.ToUpper(r.Provider)]),
		ApnsEnvironment: pb.ApnsEnvironment(pb.ApnsEnvironment_value["APNS_ENVIRONMENT_"+strings.ToUpper(r.APNSEnvironment)])}
	if r.APNSEnvironment == "" {
		t.ApnsEnvironment = pb.ApnsEnvironment_APNS_ENVIRONMENT_UNSPECIFIED
	}
	if r.Locale != "" {
		t.Locale = proto.String(r.Locale)
	}
	if !r.RegisteredAt.IsZero() {
		t.RegisteredAt = timestamppb.New(r.RegisteredAt)
	}
	return t
}

// decide appends cmd, waits for its decision and answers: ok with the
// event that decides it, the refusal's status and code, or 202 Accepted.
func (p *pushTargets) decide(ctx context.Context, w http.ResponseWriter, cmd *pb.Command, ok func(*pb.Event)) {
	ev, err := p.srv.appendAndWait(ctx, cmd, pushDecisionWait, decidesPush)
	switch {
	case err != nil:
		p.appendFailed(w, err)
	case ev == nil:
		writeProto(w, http.StatusAccepted, &pb.Accepted{CommandId: cmd.GetCommandId(), ConversationId: cmd.GetConversationId()})
	case ev.GetCommandRejected() != nil:
		rej := ev.GetCommandRejected()
		p.refuse(w, pushStatus(rej.GetCode()), rej.GetCode(), rej.GetMessage())
	default:
		ok(ev)
	}
}

func (p *pushTargets) appendFailed(w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	p.log.Warn("push command not appended", "err", err)
	p.refuse(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the command was not appended; retry")
}
