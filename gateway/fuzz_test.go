package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The fuzz targets feed arbitrary client frames through what the reader does
// with them before any I/O: decode, recover the request id of a frame that
// did not decode, the validation layer, and the building of the Command. Their
// seed corpora (below and in testdata/fuzz) run as ordinary tests.

// jsonSeeds are frames of every body, valid and broken.
var jsonSeeds = []string{
	`{"requestId":"1","createConversation":{"kind":"CONVERSATION_KIND_DIRECT","memberUserIds":["bob"]}}`,
	`{"requestId":"2","createConversation":{"kind":"CONVERSATION_KIND_GROUP","title":"Launch","memberUserIds":["bob","carol"]}}`,
	`{"requestId":"2b","conversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","createConversation":{"kind":"CONVERSATION_KIND_GROUP"}}`,
	`{"requestId":"3","conversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","addMembers":{"userIds":["dave"]}}`,
	`{"requestId":"4","conversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","removeMember":{"userId":"dave"}}`,
	`{"requestId":"5","conversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","leaveConversation":{}}`,
	`{"requestId":"6","conversationId":"d:141a4cd242b67e82edf4a78bb418d40a","sendMessage":{"clientMsgId":"01JD3R0B7C8D9E0F1G2H3J4K5M","text":"Hello Bob","contentType":"text/plain"}}`,
	`{"requestId":"7","conversationId":"d:141a4cd242b67e82edf4a78bb418d40a","markDelivered":{"upToSeq":1}}`,
	`{"requestId":"8","conversationId":"d:141a4cd242b67e82edf4a78bb418d40a","markRead":{"upToSeq":"-1"}}`,
	`{"requestId":"9","ping":{}}`,
	`{"requestId":"r","resume":{"cursors":[{"conversationId":"d:141a4cd242b67e82edf4a78bb418d40a","version":"41"}]}}`,
	`{"requestId":"t","conversationId":"d:141a4cd242b67e82edf4a78bb418d40a","typing":{"active":true}}`,
	`{"requestId":"p","setPresence":{"state":"PRESENCE_STATE_AWAY"}}`,
	`{"requestId":"w","watchPresence":{"userIds":["bob","carol"]}}`,
	`{"requestId":"pf","conversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","updateConversationPrefs":{"mute":{"forever":true},"pinned":true}}`,
	`{"requestId":"pg","conversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","updateConversationPrefs":{"conversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1e","archivedUpToSeq":"3"}}`,
	`{"requestId":"h","conversationId":"d:141a4cd242b67e82edf4a78bb418d40a","hideMessages":{"seqs":["1","2"],"upToSeq":"0"}}`,
	`{"requestId":"b","blockUser":{"userId":"bob"}}`,
	`{"requestId":"bu","conversationId":"u:0123456789abcdef0123456789abcdef","unblockUser":{"userId":"bob"}}`,
	`{"requestId":"f","conversationId":"d:141a4cd242b67e82edf4a78bb418d40a","forwardMessage":{"seq":"1","targetConversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","clientMsgId":"fw-1"}}`,
	`{"requestId":"fx","conversationId":"d:141a4cd242b67e82edf4a78bb418d40a","forwardMessage":{"seq":"1","targetConversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","clientMsgId":"fw-1","text":"forged"}}`,
	`{"requestId":"x","conversationId":"g:x","sendMessage":{"clientMsgId":"m"}}`,
	`{"requestId":"y","sendMessage":{"text":5}}`,
	`{"request_id":"z","sendMessage":{"clientMsgId":"a b"}}`,
	`{"requestId":"u","txt":"typo"}`,
	`{"requestId":""}`,
	`not json`,
	`{"requestId":"\u0000"}`,
	`[]`,
}

func FuzzClientFrameJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkClientFrame(t, websocket.TextMessage, data) })
}

func FuzzClientFrameBinary(f *testing.F) {
	for _, s := range jsonSeeds {
		fr, err := decodeClientFrame(websocket.TextMessage, []byte(s))
		if err != nil {
			continue
		}
		b, _ := proto.Marshal(fr)
		f.Add(b)
	}
	// A body this gateway does not know, a truncated field, a request id
	// that is not UTF-8.
	f.Add(protowire.AppendBytes(protowire.AppendTag([]byte{0x0a, 0x01, 'u'}, 99, protowire.BytesType), nil))
	f.Add([]byte{0x0a, 0x05, 'a'})
	f.Add([]byte{0x0a, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) { checkClientFrame(t, websocket.BinaryMessage, data) })
}

// maxAnswer bounds any message the gateway writes about a frame: ids are
// repeated only clipped, decoder detail only cut.
const maxAnswer = 600

// checkClientFrame runs data through the reader's path and checks its
// promises: no panic, bounded messages, a refusal with a code, and a
// Command whose ids have their documented forms and whose envelope comes
// from the session.
func checkClientFrame(t *testing.T, mt int, data []byte) {
	s := &session{srv: &Server{cfg: Config{}.Defaults()}, user: "alice", device: "phone"}
	l := s.srv.cfg
	fr, err := decodeClientFrame(mt, data)
	if err != nil {
		id := recoverRequestID(mt, data)
		if checkRequestID(id) == nil && len(id) > schemas.MaxIDBytes {
			t.Fatalf("recovered request id of %d bytes passed the check", len(id))
		}
		if len(detail(err.Error())) > maxErrorDetail+len("…") {
			t.Fatalf("detail of %d bytes", len(detail(err.Error())))
		}
		return
	}
	if err := checkRequestID(fr.GetRequestId()); err != nil {
		if len(err.Error()) > maxAnswer {
			t.Fatalf("request id refusal of %d bytes", len(err.Error()))
		}
		return
	}
	r := checkFrame(fr, frameChecks{maxMessageBytes: l.Limits.MaxMessageBytes, maxPresenceWatch: l.Signals.MaxPresenceWatch})
	if r != nil {
		if r.code == pb.ErrorCode_ERROR_CODE_UNSPECIFIED || r.msg == "" || len(r.msg) > maxAnswer {
			t.Fatalf("refusal %v %q (%d bytes)", r.code, r.msg, len(r.msg))
		}
		return
	}
	switch fr.GetBody().(type) {
	case *pb.ClientFrame_Resume, *pb.ClientFrame_Typing, *pb.ClientFrame_SetPresence, *pb.ClientFrame_WatchPresence, *pb.ClientFrame_Ping:
		return // not commands; their handlers need a running gateway
	}
	cmd, code, msg := s.command(fr, time.Unix(1_700_000_000, 0))
	if code != pb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		if cmd != nil || msg == "" || len(msg) > maxAnswer {
			t.Fatalf("refusal %v %q with command %v", code, msg, cmd)
		}
		return
	}
	if err := schemas.CheckStreamID("conversationId", cmd.GetConversationId()); err != nil {
		t.Fatalf("command for a malformed conversation: %v", err)
	}
	perUser := cmd.GetUpdateConversationPrefs() != nil || cmd.GetHideMessages() != nil || cmd.GetBlockUser() != nil || cmd.GetUnblockUser() != nil
	if perUser != (cmd.GetConversationId() == schemas.UserStreamID("alice")) {
		t.Fatalf("command keyed %s: per-user commands, and only they, go to the user's stream: %v", cmd.GetConversationId(), cmd)
	}
	if err := checkDeviceBody(cmd); err != nil {
		t.Fatalf("command with a body a device may not append: %v", err)
	}
	if fm := cmd.GetForwardMessage(); fm != nil && (fm.GetText() != "" || fm.GetContentType() != "" || fm.GetOrigin() != nil) {
		t.Fatalf("forward with content from the device: %v", fm)
	}
	if cmd.GetUserId() != "alice" || cmd.GetDeviceId() != "phone" || cmd.GetCommandId() == "" || cmd.GetBody() == nil {
		t.Fatalf("envelope not from the session: %v", cmd)
	}
	if m := cmd.GetSendMessage(); m != nil && (schemas.CheckID("", m.GetClientMsgId()) != nil || len(m.GetText()) > l.Limits.MaxMessageBytes) {
		t.Fatalf("send passed with client id %q and %d bytes", m.GetClientMsgId(), len(m.GetText()))
	}
	if c := cmd.GetCreateConversation(); c != nil {
		direct := c.GetKind() == pb.ConversationKind_CONVERSATION_KIND_DIRECT
		if direct && (len(c.GetMemberUserIds()) != 1 || cmd.GetConversationId() != schemas.DirectConversationID("alice", c.GetMemberUserIds()[0])) {
			t.Fatalf("direct create %v for %s", c, cmd.GetConversationId())
		}
		if !direct && !strings.HasPrefix(cmd.GetConversationId(), "g:") {
			t.Fatalf("group create for %s", cmd.GetConversationId())
		}
	}
	if _, err := proto.Marshal(cmd); err != nil {
		t.Fatalf("command does not encode: %v", err)
	}
}
