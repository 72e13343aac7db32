package gateway

import (
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/oklog/ulid"
	"google.golang.org/protobuf/encoding/protojson"
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
	// CloseReplaced (4000): the same (user, device) connected again; the
	// newer connection wins. A client that gets it must not reconnect
	// automatically, or two copies of one device would take turns forever.
	CloseReplaced = 4000
)

const (
	// closeGrace is how long a closing session waits for the device's close
	// reply before dropping the TCP connection. Waiting matters: closing a
	// socket with unread input makes the kernel send a reset, which can
	// destroy the error and close frames the device has not read yet.
	closeGrace = 2 * time.Second
	// maxIDBytes bounds ids a device names (conversation ids), matching the
	// bound on user and device ids in tokens.
	maxIDBytes = 128
)

// session is one device's WebSocket connection. Three goroutines touch it:
// the reader (the HTTP handler's goroutine: frames in, commands appended),
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

	out        chan *outbound // bounded; never closed, so send cannot panic
	closing    atomic.Bool
	closeOnce  sync.Once
	closed     chan struct{} // closed when the session starts closing
	closeCode  int           // set before closed is closed
	closeWhy   string
	flush      bool // write what is queued before the close frame
	watchdog   *time.Timer
	readerDone chan struct{}
	writerDone chan struct{}

	state    atomic.Int32 // pb.PresenceState this device states
	resuming atomic.Bool  // a Resume is running
	mu       sync.Mutex   // guards held, pushed and holdAll
	// holdAll: opened with ?resume=1, so every conversation is held until
	// the first Resume completes.
	holdAll bool
	// held: live events of conversations catching up, by conversation.
	held map[string][]held
	// pushed: the seqs pushed to the device, by conversation, so neither
	// catch-up nor live sends one twice.
	pushed map[string]span
}

func newID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// send queues o for the device without blocking. A full queue means the
// device reads slower than its frames arrive: the session is closed rather
// than letting it hold up the events consumer or grow without bound.
func (s *session) send(o *outbound) bool {
	if s.closing.Load() {
		return false
	}
	select {
	case s.out <- o:
		return true
	default:
		if s.close(ClosePolicyViolation, "slow consumer", false) {
			s.srv.metrics.slowConsumers.Inc()
			s.log.Warn("closing slow consumer", "queue", cap(s.out))
		}
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

// readLoop runs in the HTTP handler's goroutine until the connection ends.
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

// handle answers one decoded-size-checked frame.
func (s *session) handle(mt int, data []byte) {
	now := time.Now()
	f, err := decodeClientFrame(mt, data)
	if err != nil {
		s.srv.metrics.framesIn.WithLabelValues("invalid").Inc()
		s.sendError(lenientRequestID(mt, data), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "invalid frame: "+err.Error())
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
	if code != pb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		s.sendError(f.GetRequestId(), code, msg)
		return
	}
	s.append(f.GetRequestId(), cmd, now)
}

// lenientRequestID recovers the request id of a JSON frame refused for an
// unknown field, so the device can still match the error to its request.
func lenientRequestID(mt int, data []byte) string {
	if mt == websocket.BinaryMessage {
		return ""
	}
	var f pb.ClientFrame
	if (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &f) != nil {
		return ""
	}
	return f.GetRequestId()
}

// command turns a frame into the Command to append, or says why not. The
// envelope (ids, user, device, time) comes from the session, never from the
// device. Checks here are the cheap ones; ingest decides everything else.
func (s *session) command(f *pb.ClientFrame, now time.Time) (*pb.Command, pb.ErrorCode, string) {
	invalid := pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	cmd := &pb.Command{CommandId: newID(now), UserId: s.user, DeviceId: s.device,
		ConversationId: f.GetConversationId(), ReceivedAt: timestamppb.New(now)}
	if len(cmd.ConversationId) > maxIDBytes {
		return nil, invalid, "conversationId longer than 128 bytes"
	}
	switch b := f.GetBody().(type) {
	case *pb.ClientFrame_CreateConversation:
		c := b.CreateConversation
		switch c.GetKind() {
		case pb.ConversationKind_CONVERSATION_KIND_DIRECT:
			if len(c.GetMemberUserIds()) != 1 || c.GetMemberUserIds()[0] == "" || c.GetMemberUserIds()[0] == s.user {
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
	case *pb.ClientFrame_SendMessage:
		m := b.SendMessage
		if m.GetClientMsgId() == "" {
			return nil, invalid, "sendMessage.clientMsgId is required"
		}
		if len(m.GetText()) > s.srv.cfg.Limits.MaxMessageBytes {
			return nil, pb.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE, "text larger than maxMessageBytes"
		}
		cmd.Body = &pb.Command_SendMessage{SendMessage: m}
	case *pb.ClientFrame_MarkDelivered:
		cmd.Body = &pb.Command_MarkDelivered{MarkDelivered: b.MarkDelivered}
	case *pb.ClientFrame_MarkRead:
		cmd.Body = &pb.Command_MarkRead{MarkRead: b.MarkRead}
	case nil:
		if len(f.ProtoReflect().GetUnknown()) > 0 {
			return nil, pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "frame body unknown to this gateway"
		}
		return nil, invalid, "frame has no body"
	default:
		return nil, pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "frame body not supported by this gateway"
	}
	if cmd.ConversationId == "" {
		return nil, invalid, "conversationId is required"
	}
	return cmd, pb.ErrorCode_ERROR_CODE_UNSPECIFIED, ""
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
	// The server's append context, not the session's: a command read before
	// the device went away is still appended (a retry is deduplicated), and
	// only a shutdown that outlasts its flush deadline abandons it.
	s.srv.appender.Append(s.srv.appendCtx, ingest.Record{Key: cmd.ConversationId, Type: typ, Value: value},
		func(_ ingest.Position, err error) {
			if err != nil {
				m.appendFailed.Inc()
				s.log.Warn("append failed", "command_id", cmd.CommandId, "type", typ, "err", err)
				s.sendError(requestID, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "command not appended; retry with the same clientMsgId")
				return
			}
			m.appended.WithLabelValues(typ).Inc()
			m.ackLatency.Observe(time.Since(received).Seconds())
			s.send(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Accepted{Accepted: &pb.Accepted{
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
		case o := <-s.out:
			if err := s.write(o); err != nil {
				s.log.Debug("write failed", "err", err)
				_ = s.conn.Close()
				return
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
	drain:
		for {
			select {
			case o := <-s.out:
				if err := s.write(o); err != nil {
					_ = s.conn.Close()
					return
				}
			default:
				break drain
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
