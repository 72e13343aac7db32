package gateway

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/oklog/ulid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// WebSocket close codes the gateway sends (besides 1000 when the device closes).
const (
	// CloseGoingAway (1001): the gateway is shutting down; reconnect (to another gateway).
	CloseGoingAway = websocket.CloseGoingAway
	// ClosePolicyViolation (1008): "slow consumer" (the outbound queue
	// filled up) or "token expired".
	ClosePolicyViolation = websocket.ClosePolicyViolation
	// CloseMessageTooBig (1009): a frame exceeded Limits.MaxFrameBytes.
	CloseMessageTooBig = websocket.CloseMessageTooBig
	// CloseInvalidFrame (1007): a frame that cannot be answered — it did
	// not decode and no request id could be read from it, or its request id
	// is missing or malformed.
	CloseInvalidFrame = websocket.CloseInvalidFramePayloadData
	// CloseReplaced (4000): the same (user, device) connected again; the
	// newer connection wins. A client that gets it must not reconnect
	// automatically, or two copies of one device would take turns forever.
	CloseReplaced = 4000
	// CloseBanned (4003): the user was banned or suspended (the admin API's
	// BanUser); the reason says until when and why. The user's tokens are
	// refused (403 USER_BANNED) while the ban holds: a client must not
	// reconnect automatically.
	CloseBanned = 4003
	// CloseRevoked (4004): the device id was revoked (the admin API's
	// RevokeDevice); the reason says why. Its tokens are refused (403
	// DEVICE_REVOKED) until it is restored; the user's other devices go
	// on. A client must not reconnect automatically.
	CloseRevoked = 4004
	// CloseTooManyConnections (4029): the user had UserMaxConnections
	// devices connected (over all gateways) when this one connected; a
	// connection refused before the upgrade gets 429 TOO_MANY_CONNECTIONS
	// instead. Reconnect only after closing another device.
	CloseTooManyConnections = 4029
)

const (
	// closeGrace is how long a closing session waits for the device's close
	// reply before dropping the TCP connection. Waiting matters: closing a
	// socket with unread input makes the kernel send a reset, which can
	// destroy the error and close frames the device has not read yet.
	closeGrace = 2 * time.Second
)

// answerReserve is how many slots a session's outbound queue has beyond
// Limits.OutboundQueue, kept for the answers to appended commands (Accepted,
// or UNAVAILABLE): one per append in flight, so an answer never finds the
// queue full. It is also the most appends one session has in flight.
func answerReserve(queue int) int { return max(1, queue/4) }

// session is one device's WebSocket connection. Three goroutines touch it:
// the reader (runSession's goroutine: frames in, commands appended),
// the writer (the only one writing data frames), and whoever enqueues
// (append callbacks, the events consumer) through send, which never blocks.
type session struct {
	srv          *Server
	conn         *websocket.Conn
	log          *slog.Logger
	id           string
	user, device string
	codec        codec
	expires      time.Time
	limiter      *bucket // reader goroutine only

	out *outQueue // bounded: Limits.OutboundQueue plus answerReserve
	// answerSlots holds one token per append in flight or answer queued
	// but not yet written; its capacity is answerReserve of the queue.
	answerSlots chan struct{}
	// wrote is signalled by the writer after each frame, for a reader
	// waiting for room.
	wrote      chan struct{}
	closing    atomic.Bool
	closeOnce  sync.Once
	closed     chan struct{} // closed when the session starts closing
	closeCode  int           // set before closed is closed
	closeWhy   string
	flush      bool // write what is queued before the close frame
	watchdog   *time.Timer
	readerDone chan struct{}
	writerDone chan struct{}

	// watchQueue holds the WatchPresence frames runWatches decides, in
	// order (at most watchQueueLen waiting); runWatches starts with the
	// first (watchOnce), so a session that never watches has no goroutine
	// for it.
	watchQueue chan func()
	watchOnce  sync.Once
	state      atomic.Int32 // pb.PresenceState this device states
	resuming   atomic.Bool  // a Resume is running
	mu         sync.Mutex   // guards held, pushed and holdAll
	// holdAll: opened with ?resume=1, so every conversation is held until
	// the first Resume completes.
	holdAll bool
	// held: live events of conversations catching up, by conversation.
	held map[string][]held
	// pushed: the versions pushed to the device, by conversation, so
	// neither catch-up nor live sends one twice.
	pushed map[string]span
}

func newID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// send queues o for the device without blocking. A full queue (beyond the
// room kept for answers) means the device reads slower than its frames
// arrive: the session is closed rather than letting it hold up the events
// consumer or grow without bound.
func (s *session) send(o *outbound) bool { return s.enqueue(o, false) }

// sendAnswer queues the answer to an appended command. Its room is the
// answer slot its append took, so it never overflows the queue.
func (s *session) sendAnswer(o *outbound) bool {
	o.slot = true
	return s.enqueue(o, true)
}

func (s *session) enqueue(o *outbound, answer bool) bool {
	if s.closing.Load() {
		return false
	}
	// An answer has its slot; anything else leaves the answers' reserve free.
	bound := s.out.limit
	if !answer {
		bound -= cap(s.answerSlots)
	}
	room := s.out.push(o, bound)
	if !room {
		if s.close(ClosePolicyViolation, "slow consumer", false) {
			s.srv.metrics.slowConsumers.Inc()
			s.log.Warn("closing slow consumer", "queue", s.out.limit)
		}
	}
	return room
}

// waitForRoom holds the reader while the outbound queue is half full, so a
// device sending faster than it reads its answers is slowed down (its frames
// wait in TCP) instead of overflowing its own queue with them.
func (s *session) waitForRoom() {
	limit := max(1, (s.out.limit-cap(s.answerSlots))/2)
	for s.out.len() >= limit {
		select {
		case <-s.wrote:
		case <-s.closed:
			return
		case <-s.writerDone:
			return
		}
	}
}

// takeAnswerSlot waits for room for one more append in flight; false when
// the session ended first.
func (s *session) takeAnswerSlot() bool {
	select {
	case s.answerSlots <- struct{}{}:
		return true
	case <-s.closed:
		return false
	case <-s.writerDone:
		return false
	}
}

func (s *session) sendError(requestID string, code pb.ErrorCode, msg string) {
	s.srv.metrics.rejections.WithLabelValues(code.String()).Inc()
	s.send(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Error{Error: &pb.Error{
		RequestId: requestID, Code: code, Message: msg}}}))
}

// close starts ending the session; only the first call counts, and reports
// true. The writer writes the queued frames (when flush), then the close
// frame, and the reader waits for the device's answer. The watchdog drops
// the connection if any of that stalls.
func (s *session) close(code int, why string, flush bool) (first bool) {
	s.closeOnce.Do(func() {
		first = true
		s.closeCode, s.closeWhy, s.flush = code, why, flush
		s.closing.Store(true)
		s.srv.hub.unregister(s)
		close(s.closed)
		limit := closeGrace
		if flush {
			limit += s.srv.cfg.Limits.WriteTimeout
		}
		s.watchdog = time.AfterFunc(limit+closeGrace, func() { _ = s.conn.Close() })
	})
	return first
}

// readLoop runs in runSession's goroutine until the connection ends.
func (s *session) readLoop() {
	defer close(s.readerDone)
	l := s.srv.cfg.Limits
	for {
		mt, r, err := s.conn.NextReader()
		if err != nil {
			s.logEnd(err)
			return
		}
		if s.closing.Load() {
			continue // waiting for the close reply; NextReader discards the rest
		}
		s.touch()
		// Read one byte past the limit to know it was exceeded, without
		// ever buffering a large frame.
		data, err := io.ReadAll(io.LimitReader(r, int64(l.MaxFrameBytes)+1))
		if err != nil {
			s.logEnd(err)
			return
		}
		if len(data) > l.MaxFrameBytes {
			s.srv.metrics.framesIn.WithLabelValues("too_large").Inc()
			s.sendError("", pb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE, "frame larger than maxFrameBytes")
			s.close(CloseMessageTooBig, "frame too large", true)
			continue
		}
		s.handle(mt, data)
		s.waitForRoom()
	}
}

// touch pushes the idle deadline back; any frame counts as a sign of life.
func (s *session) touch() {
	if !s.closing.Load() {
		_ = s.conn.SetReadDeadline(time.Now().Add(s.srv.cfg.Limits.IdleTimeout))
	}
}

func (s *session) logEnd(err error) {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case s.closing.Load():
		s.log.Debug("session closed", "code", s.closeCode, "reason", s.closeWhy)
	case errors.As(err, &ce):
		s.log.Debug("device closed the session", "code", ce.Code, "reason", ce.Text)
	case errors.As(err, &ne) && ne.Timeout():
		s.log.Info("idle session timed out", "idle_timeout", s.srv.cfg.Limits.IdleTimeout)
		s.close(CloseGoingAway, "idle timeout", false)
	default:
		s.log.Debug("session read ended", "err", err)
	}
}

// handle answers one size-checked frame: decode, the validation layer
// (validate.go), then the handler of its body.
func (s *session) handle(mt int, data []byte) {
	now := time.Now()
	f, err := decodeClientFrame(mt, data)
	if err != nil {
		s.srv.metrics.framesIn.WithLabelValues("invalid").Inc()
		msg := "invalid frame: " + detail(err.Error())
		if id := recoverRequestID(mt, data); checkRequestID(id) == nil {
			s.sendError(id, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, msg)
			return
		}
		s.sendError("", pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, msg+" (and no requestId could be read from it)")
		s.close(CloseInvalidFrame, "invalid frame", true)
		return
	}
	if err := checkRequestID(f.GetRequestId()); err != nil {
		s.srv.metrics.framesIn.WithLabelValues("invalid").Inc()
		s.sendError("", pb.ErrorCode_ERROR_CODE_INVALID_ID, err.Error())
		s.close(CloseInvalidFrame, "invalid frame", true)
		return
	}
	s.srv.metrics.framesIn.WithLabelValues(oneofName(f)).Inc()
	if f.GetPing() != nil {
		s.send(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Pong{Pong: &pb.Pong{
			RequestId: f.GetRequestId(), ServerTime: timestamppb.New(now)}}}))
		return
	}
	if s.srv.draining.Load() {
		s.sendError(f.GetRequestId(), pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "gateway is shutting down; retry on another connection")
		return
	}
	if !s.limiter.allow(now) {
		s.sendError(f.GetRequestId(), pb.ErrorCode_ERROR_CODE_RATE_LIMITED, "rate limit exceeded; retry later")
		return
	}
	if ok, msg := s.srv.allowUser(s, now); !ok {
		s.sendError(f.GetRequestId(), pb.ErrorCode_ERROR_CODE_RATE_LIMITED, msg)
		return
	}
	l := s.srv.cfg
	if r := checkFrame(f, frameChecks{maxMessageBytes: l.Limits.MaxMessageBytes, maxPresenceWatch: l.Signals.MaxPresenceWatch}); r != nil {
		s.sendError(f.GetRequestId(), r.code, r.msg)
		return
	}
	switch f.GetBody().(type) {
	case *pb.ClientFrame_Resume:
		s.startResume(f.GetRequestId(), f.GetResume())
		return
	case *pb.ClientFrame_Typing:
		s.typing(f)
		return
	case *pb.ClientFrame_SetPresence:
		s.setPresence(f)
		return
	case *pb.ClientFrame_WatchPresence:
		s.watchPresence(f)
		return
	}
	cmd, code, msg := s.command(f, now)
	if code == pb.ErrorCode_ERROR_CODE_UNSPECIFIED && cmd.GetForwardMessage() != nil {
		code, msg = s.forward(cmd)
	}
	if code != pb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		s.sendError(f.GetRequestId(), code, msg)
		return
	}
	s.append(f.GetRequestId(), cmd, now)
}

// command turns a frame that passed checkFrame into the Command to append,
// or says why not. The envelope (ids, user, device, time) comes from the
// session, never from the device. Checks here are the cheap ones that need
// the session; ingest decides everything else.
func (s *session) command(f *pb.ClientFrame, now time.Time) (*pb.Command, pb.ErrorCode, string) {
	invalid := pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	cmd := &pb.Command{CommandId: newID(now), UserId: s.user, DeviceId: s.device,
		ConversationId: f.GetConversationId(), ReceivedAt: timestamppb.New(now)}
	switch b := f.GetBody().(type) {
	case *pb.ClientFrame_CreateConversation:
		c := b.CreateConversation
		switch c.GetKind() {
		case pb.ConversationKind_CONVERSATION_KIND_DIRECT:
			if len(c.GetMemberUserIds()) != 1 || c.GetMemberUserIds()[0] == s.user {
				return nil, invalid, "a direct conversation names exactly one other user in memberUserIds"
			}
			id := schemas.DirectConversationID(s.user, c.GetMemberUserIds()[0])
			if cmd.ConversationId != "" && cmd.ConversationId != id {
				return nil, invalid, "conversationId of this direct conversation must be empty or " + id
			}
			cmd.ConversationId = id
		case pb.ConversationKind_CONVERSATION_KIND_GROUP:
			if cmd.ConversationId == "" {
				cmd.ConversationId = schemas.NewGroupConversationID()
			}
		default:
			return nil, invalid, "kind must be CONVERSATION_KIND_DIRECT or CONVERSATION_KIND_GROUP"
		}
		cmd.Body = &pb.Command_CreateConversation{CreateConversation: c}
	case *pb.ClientFrame_AddMembers:
		cmd.Body = &pb.Command_AddMembers{AddMembers: b.AddMembers}
	case *pb.ClientFrame_RemoveMember:
		cmd.Body = &pb.Command_RemoveMember{RemoveMember: b.RemoveMember}
	case *pb.ClientFrame_LeaveConversation:
		cmd.Body = &pb.Command_LeaveConversation{LeaveConversation: b.LeaveConversation}
	case *pb.ClientFrame_CloseConversation:
		cmd.Body = &pb.Command_CloseConversation{CloseConversation: b.CloseConversation}
	case *pb.ClientFrame_ReopenConversation:
		cmd.Body = &pb.Command_ReopenConversation{ReopenConversation: b.ReopenConversation}
	case *pb.ClientFrame_SendMessage:
		cmd.Body = &pb.Command_SendMessage{SendMessage: b.SendMessage}
	case *pb.ClientFrame_MarkDelivered:
		cmd.Body = &pb.Command_MarkDelivered{MarkDelivered: b.MarkDelivered}
	case *pb.ClientFrame_MarkRead:
		cmd.Body = &pb.Command_MarkRead{MarkRead: b.MarkRead}
	case *pb.ClientFrame_EditMessage:
		cmd.Body = &pb.Command_EditMessage{EditMessage: b.EditMessage}
	case *pb.ClientFrame_RecallMessage:
		cmd.Body = &pb.Command_RecallMessage{RecallMessage: b.RecallMessage}
	case *pb.ClientFrame_AddReaction:
		cmd.Body = &pb.Command_AddReaction{AddReaction: b.AddReaction}
	case *pb.ClientFrame_RemoveReaction:
		cmd.Body = &pb.Command_RemoveReaction{RemoveReaction: b.RemoveReaction}
	case *pb.ClientFrame_SetMemberRole:
		cmd.Body = &pb.Command_SetMemberRole{SetMemberRole: b.SetMemberRole}
	case *pb.ClientFrame_TransferOwnership:
		cmd.Body = &pb.Command_TransferOwnership{TransferOwnership: b.TransferOwnership}
	case *pb.ClientFrame_UpdateGroupSettings:
		cmd.Body = &pb.Command_UpdateGroupSettings{UpdateGroupSettings: b.UpdateGroupSettings}
	case *pb.ClientFrame_MuteMember:
		cmd.Body = &pb.Command_MuteMember{MuteMember: b.MuteMember}
	case *pb.ClientFrame_UnmuteMember:
		cmd.Body = &pb.Command_UnmuteMember{UnmuteMember: b.UnmuteMember}
	case *pb.ClientFrame_PinMessage:
		cmd.Body = &pb.Command_PinMessage{PinMessage: b.PinMessage}
	case *pb.ClientFrame_UnpinMessage:
		cmd.Body = &pb.Command_UnpinMessage{UnpinMessage: b.UnpinMessage}
	case *pb.ClientFrame_UpdateConversationPrefs:
		// Per-user commands go to the user's own stream; the conversation
		// they name travels in the body (checkFrame checked both agree).
		p := proto.Clone(b.UpdateConversationPrefs).(*pb.UpdateConversationPrefs)
		p.ConversationId = f.GetConversationId()
		cmd.ConversationId = schemas.UserStreamID(s.user)
		cmd.Body = &pb.Command_UpdateConversationPrefs{UpdateConversationPrefs: p}
	case *pb.ClientFrame_HideMessages:
		h := proto.Clone(b.HideMessages).(*pb.HideMessages)
		h.ConversationId = f.GetConversationId()
		cmd.ConversationId = schemas.UserStreamID(s.user)
		cmd.Body = &pb.Command_HideMessages{HideMessages: h}
	case *pb.ClientFrame_BlockUser, *pb.ClientFrame_UnblockUser:
		own := schemas.UserStreamID(s.user)
		if c := f.GetConversationId(); c != "" && c != own {
			return nil, invalid, "conversationId of a block or unblock must be empty or your user stream " + own
		}
		cmd.ConversationId = own
		if bu := f.GetBlockUser(); bu != nil {
			if bu.GetUserId() == s.user {
				return nil, invalid, "blockUser.userId is yourself"
			}
			cmd.Body = &pb.Command_BlockUser{BlockUser: bu}
		} else {
			cmd.Body = &pb.Command_UnblockUser{UnblockUser: f.GetUnblockUser()}
		}
	case *pb.ClientFrame_RegisterPush, *pb.ClientFrame_UnregisterPush:
		var body proto.Message = f.GetRegisterPush()
		if f.GetUnregisterPush() != nil {
			body = f.GetUnregisterPush()
		}
		c, r := pushCommand(s.user, s.device, f.GetConversationId(), body, now)
		if r != nil {
			return nil, r.code, r.msg
		}
		c.CommandId, c.ReceivedAt = cmd.CommandId, cmd.ReceivedAt
		cmd = c
	case *pb.ClientFrame_ForwardMessage:
		// Keyed by the source; text, content type and origin are filled
		// from the views before the append (session.forward).
		cmd.Body = &pb.Command_ForwardMessage{ForwardMessage: proto.Clone(b.ForwardMessage).(*pb.ForwardMessage)}
	case *pb.ClientFrame_CreateInvite:
		// The link's secret never reaches the log: only its hash.
		ci := proto.Clone(b.CreateInvite).(*pb.CreateInvite)
		ci.TokenHash, ci.Token = schemas.InviteTokenHash(ci.GetToken()), ""
		cmd.Body = &pb.Command_CreateInvite{CreateInvite: ci}
	case *pb.ClientFrame_RevokeInvite:
		cmd.Body = &pb.Command_RevokeInvite{RevokeInvite: b.RevokeInvite}
	case *pb.ClientFrame_JoinConversation:
		jc := proto.Clone(b.JoinConversation).(*pb.JoinConversation)
		if jc.GetToken() != "" {
			jc.TokenHash, jc.Token = schemas.InviteTokenHash(jc.GetToken()), ""
		}
		cmd.Body = &pb.Command_JoinConversation{JoinConversation: jc}
	case *pb.ClientFrame_DecideJoinRequest:
		cmd.Body = &pb.Command_DecideJoinRequest{DecideJoinRequest: b.DecideJoinRequest}
	default:
		return nil, pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "frame body not supported by this gateway"
	}
	if cmd.ConversationId == "" {
		return nil, invalid, "conversationId is required"
	}
	if err := checkDeviceBody(cmd); err != nil {
		return nil, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err.Error()
	}
	return cmd, pb.ErrorCode_ERROR_CODE_UNSPECIFIED, ""
}

// firstIngestOnlyBody is the lowest field number of a Command body that
// only ingest writes (DirectBlock, ForwardedMessage: the second step of a
// decision spanning two streams).
const firstIngestOnlyBody = 60

// checkDeviceBody refuses a command a device may not append: one without a
// body, or with a body only ingest writes. A ClientFrame has no such body,
// so this never fires for a frame that decoded; it guards the builder
// against a future mapping mistake.
func checkDeviceBody(cmd *pb.Command) error {
	od := cmd.ProtoReflect().Descriptor().Oneofs().ByName("body")
	fd := cmd.ProtoReflect().WhichOneof(od)
	switch {
	case fd == nil:
		return errors.New("command has no body")
	case fd.Number() >= firstIngestOnlyBody:
		return fmt.Errorf("%s is written by ingest only; a device cannot append it", fd.Message().Name())
	}
	return nil
}

// append makes cmd durable and answers the device from the producer's
// callback: Accepted only once the record is on every in-sync replica.
func (s *session) append(requestID string, cmd *pb.Command, received time.Time) {
	value, err := proto.Marshal(cmd)
	if err != nil { // cannot happen for a message we built; answer rather than drop
		s.sendError(requestID, pb.ErrorCode_ERROR_CODE_INTERNAL, "could not encode the command")
		return
	}
	typ := schemas.CommandType(cmd)
	m := s.srv.metrics
	// Room for the answer first: with it, the answer can never be dropped
	// for a full queue. Waiting here slows the reader, not the device's
	// other traffic.
	if !s.takeAnswerSlot() {
		return // the session ended: nobody to answer; the device resends
	}
	// The server's append context, not the session's: a command read before
	// the device went away is still appended (a retry is deduplicated), and
	// only a shutdown that outlasts its flush deadline abandons it.
	s.srv.appender.Append(s.srv.appendCtx, ingest.Record{Key: cmd.ConversationId, Type: typ, Value: value},
		func(_ ingest.Position, err error) {
			if err != nil {
				m.appendFailed.Inc()
				s.log.Warn("append failed", "command_id", cmd.CommandId, "type", typ, "err", err)
				m.rejections.WithLabelValues(pb.ErrorCode_ERROR_CODE_UNAVAILABLE.String()).Inc()
				s.sendAnswer(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Error{Error: &pb.Error{RequestId: requestID,
					Code: pb.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "command not appended; retry with the same clientMsgId"}}}))
				return
			}
			m.appended.WithLabelValues(typ).Inc()
			m.ackLatency.Observe(time.Since(received).Seconds())
			s.sendAnswer(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Accepted{Accepted: &pb.Accepted{
				RequestId: requestID, CommandId: cmd.CommandId, ConversationId: cmd.ConversationId}}}))
		})
}

// writeLoop is the only writer of data frames; it also pings and ends the
// session when its token expires.
func (s *session) writeLoop() {
	defer close(s.writerDone)
	l := s.srv.cfg.Limits
	ping := time.NewTicker(l.PingInterval)
	defer ping.Stop()
	expiry := time.NewTimer(time.Until(s.expires))
	defer expiry.Stop()
	for {
		select {
		case <-s.out.ready:
			// Everything queued, unless the session starts closing: then
			// the close case decides whether the rest is written.
			for !s.closing.Load() {
				o, ok := s.out.pop()
				if !ok {
					break
				}
				if err := s.write(o); err != nil {
					s.log.Debug("write failed", "err", err)
					_ = s.conn.Close()
					return
				}
			}
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(l.WriteTimeout)); err != nil {
				s.log.Debug("ping failed", "err", err)
				_ = s.conn.Close()
				return
			}
		case <-expiry.C:
			s.sendError("", pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "token expired; reconnect with a fresh token")
			s.close(ClosePolicyViolation, "token expired", true)
		case <-s.closed:
			s.writeClose()
			return
		case <-s.readerDone:
			if s.closing.Load() { // e.g. idle timeout: still say why
				s.writeClose()
			}
			return
		}
	}
}

func (s *session) write(o *outbound) error {
	if o.slot {
		defer func() { <-s.answerSlots }()
	}
	defer func() {
		select {
		case s.wrote <- struct{}{}:
		default:
		}
	}()
	b, err := o.bytes(s.codec)
	if err != nil {
		s.log.Error("encode frame", "type", o.kind, "err", err)
		return nil
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.Limits.WriteTimeout))
	if err := s.conn.WriteMessage(s.codec.messageType(), b); err != nil {
		return err
	}
	s.srv.metrics.framesOut.WithLabelValues(o.kind).Inc()
	return nil
}

// writeClose writes what was queued before the close (when asked to), then
// the close frame, then gives the device closeGrace to answer it.
func (s *session) writeClose() {
	if s.flush {
		for o, ok := s.out.pop(); ok; o, ok = s.out.pop() {
			if err := s.write(o); err != nil {
				_ = s.conn.Close()
				return
			}
		}
	}
	msg := websocket.FormatCloseMessage(s.closeCode, s.closeWhy)
	if err := s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		_ = s.conn.Close()
		return
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(closeGrace))
}
