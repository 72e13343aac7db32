package gateway

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// TestDeviceBodyIngestOnly: every Command body numbered 60 and up is
// refused by the builder's guard, every other body passes it, and a
// command without a body is refused.
func TestDeviceBodyIngestOnly(t *testing.T) {
	t.Parallel()
	od := (&pb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
	ingestOnly := 0
	for i := range od.Fields().Len() {
		fd := od.Fields().Get(i)
		cmd := &pb.Command{}
		m := cmd.ProtoReflect()
		m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
		err := checkDeviceBody(cmd)
		if fd.Number() >= firstIngestOnlyBody {
			ingestOnly++
			if err == nil || !strings.Contains(err.Error(), "ingest only") {
				t.Errorf("body %s (%d): %v, want refused", fd.Name(), fd.Number(), err)
			}
		} else if err != nil {
			t.Errorf("body %s (%d): %v, want allowed", fd.Name(), fd.Number(), err)
		}
	}
	if ingestOnly < 2 {
		t.Fatalf("%d ingest-only bodies found; DirectBlock and ForwardedMessage at least", ingestOnly)
	}
	if checkDeviceBody(&pb.Command{}) == nil {
		t.Fatal("a command without a body passed")
	}
	for _, body := range []*pb.Command{
		{Body: &pb.Command_DirectBlock{DirectBlock: &pb.DirectBlock{BlockerUserId: "alice", BlockedUserId: "bob", Blocked: true}}},
		{Body: &pb.Command_ForwardedMessage{ForwardedMessage: &pb.ForwardedMessage{ClientMsgId: "m", Text: "x"}}},
	} {
		if checkDeviceBody(body) == nil {
			t.Errorf("%v passed", body)
		}
	}
}

// TestPerUserCommands: the per-user frames are keyed by the sender's user
// stream, with the conversation they name in the body; a mismatch, a
// stream of another user or a block of oneself is refused before
// anything is appended.
func TestPerUserCommands(t *testing.T) {
	t.Parallel()
	s := &session{srv: &Server{cfg: Config{}.Defaults()}, user: "alice", device: "phone"}
	l := s.srv.cfg
	own := schemas.UserStreamID("alice")
	const conv, other = "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f", "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1e"
	build := func(f *pb.ClientFrame) (*pb.Command, pb.ErrorCode, string) {
		f.RequestId = "1"
		if r := checkFrame(f, frameChecks{maxMessageBytes: l.Limits.MaxMessageBytes, maxPresenceWatch: l.Signals.MaxPresenceWatch}); r != nil {
			return nil, r.code, r.msg
		}
		return s.command(f, time.Now())
	}
	ok := func(f *pb.ClientFrame) *pb.Command {
		t.Helper()
		cmd, code, msg := build(f)
		if code != pb.ErrorCode_ERROR_CODE_UNSPECIFIED {
			t.Fatalf("%v refused %v %s", f, code, msg)
		}
		return cmd
	}
	refused := func(f *pb.ClientFrame, code pb.ErrorCode) {
		t.Helper()
		if _, got, msg := build(f); got != code {
			t.Errorf("%v: %v %q, want %v", f, got, msg, code)
		}
	}
	unmuted := &pb.UpdateConversationPrefs{Pinned: new(bool)}
	cmd := ok(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_UpdateConversationPrefs{UpdateConversationPrefs: unmuted}})
	if cmd.GetConversationId() != own || cmd.GetUpdateConversationPrefs().GetConversationId() != conv || unmuted.GetConversationId() != "" {
		t.Fatalf("prefs command %v (frame body %v)", cmd, unmuted)
	}
	cmd = ok(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_HideMessages{HideMessages: &pb.HideMessages{ConversationId: conv, Seqs: []int64{1, 2}}}})
	if cmd.GetConversationId() != own || cmd.GetHideMessages().GetConversationId() != conv {
		t.Fatalf("hide command %v", cmd)
	}
	for _, f := range []*pb.ClientFrame{
		{Body: &pb.ClientFrame_BlockUser{BlockUser: &pb.BlockUser{UserId: "bob"}}},
		{ConversationId: own, Body: &pb.ClientFrame_UnblockUser{UnblockUser: &pb.UnblockUser{UserId: "bob"}}},
	} {
		if cmd := ok(f); cmd.GetConversationId() != own {
			t.Fatalf("block command %v", cmd)
		}
	}
	invalid := pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	refused(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_HideMessages{HideMessages: &pb.HideMessages{ConversationId: other, Seqs: []int64{1}}}}, invalid)
	refused(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_UpdateConversationPrefs{UpdateConversationPrefs: &pb.UpdateConversationPrefs{ConversationId: other, Pinned: new(bool)}}}, invalid)
	refused(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_UpdateConversationPrefs{UpdateConversationPrefs: &pb.UpdateConversationPrefs{}}}, invalid)
	refused(&pb.ClientFrame{Body: &pb.ClientFrame_UpdateConversationPrefs{UpdateConversationPrefs: unmuted}}, invalid)
	refused(&pb.ClientFrame{ConversationId: own, Body: &pb.ClientFrame_HideMessages{HideMessages: &pb.HideMessages{Seqs: []int64{1}}}}, pb.ErrorCode_ERROR_CODE_INVALID_ID)
	refused(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_HideMessages{HideMessages: &pb.HideMessages{}}}, invalid)
	refused(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_HideMessages{HideMessages: &pb.HideMessages{Seqs: []int64{0}}}}, invalid)
	refused(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_HideMessages{HideMessages: &pb.HideMessages{Seqs: make([]int64, maxHideSeqs+1)}}}, invalid)
	refused(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_HideMessages{HideMessages: &pb.HideMessages{UpToSeq: -1}}}, invalid)
	refused(&pb.ClientFrame{ConversationId: schemas.UserStreamID("bob"), Body: &pb.ClientFrame_BlockUser{BlockUser: &pb.BlockUser{UserId: "carol"}}}, invalid)
	refused(&pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_BlockUser{BlockUser: &pb.BlockUser{UserId: "carol"}}}, invalid)
	refused(&pb.ClientFrame{Body: &pb.ClientFrame_BlockUser{BlockUser: &pb.BlockUser{UserId: "alice"}}}, invalid)
	refused(&pb.ClientFrame{Body: &pb.ClientFrame_UnblockUser{UnblockUser: &pb.UnblockUser{UserId: "a b"}}}, pb.ErrorCode_ERROR_CODE_INVALID_ID)

	fwd := func(m *pb.ForwardMessage) *pb.ClientFrame {
		return &pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_ForwardMessage{ForwardMessage: m}}
	}
	cmd = ok(fwd(&pb.ForwardMessage{Seq: 3, TargetConversationId: other, ClientMsgId: "fw-1"}))
	if cmd.GetConversationId() != conv || cmd.GetForwardMessage().GetTargetConversationId() != other {
		t.Fatalf("forward command %v: keyed by the source", cmd)
	}
	refused(fwd(&pb.ForwardMessage{Seq: 3, TargetConversationId: other, ClientMsgId: "fw-1", Text: "forged"}), invalid)
	refused(fwd(&pb.ForwardMessage{Seq: 3, TargetConversationId: other, ClientMsgId: "fw-1", ContentType: "text/plain"}), invalid)
	refused(fwd(&pb.ForwardMessage{Seq: 3, TargetConversationId: other, ClientMsgId: "fw-1", Origin: &pb.ForwardOrigin{ConversationId: conv, Seq: 3}}), invalid)
	refused(fwd(&pb.ForwardMessage{Seq: 3, TargetConversationId: conv, ClientMsgId: "fw-1"}), invalid)
	refused(fwd(&pb.ForwardMessage{Seq: 0, TargetConversationId: other, ClientMsgId: "fw-1"}), invalid)
	refused(fwd(&pb.ForwardMessage{Seq: 3, TargetConversationId: other}), invalid)
	refused(fwd(&pb.ForwardMessage{Seq: 3, TargetConversationId: own, ClientMsgId: "fw-1"}), pb.ErrorCode_ERROR_CODE_INVALID_ID)
}
