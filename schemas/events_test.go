package schemas_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func TestTypeEvent(t *testing.T) {
	for _, tc := range []struct {
		e    *pb.Event
		want string
	}{
		{nil, ""},
		{&pb.Event{}, ""},
		{&pb.Event{Body: &pb.Event_ConversationCreated{ConversationCreated: &pb.ConversationCreated{}}}, schemas.TypeConversationCreated},
		{&pb.Event{Body: &pb.Event_MembersAdded{MembersAdded: &pb.MembersAdded{}}}, schemas.TypeMembersAdded},
		{&pb.Event{Body: &pb.Event_MemberRemoved{MemberRemoved: &pb.MemberRemoved{}}}, schemas.TypeMemberRemoved},
		{&pb.Event{Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{}}}, schemas.TypeMessageSent},
		{&pb.Event{Body: &pb.Event_DeliveredUpTo{DeliveredUpTo: &pb.DeliveredUpTo{}}}, schemas.TypeDeliveredUpTo},
		{&pb.Event{Body: &pb.Event_ReadUpTo{ReadUpTo: &pb.ReadUpTo{}}}, schemas.TypeReadUpTo},
		{&pb.Event{Body: &pb.Event_CommandRejected{CommandRejected: &pb.CommandRejected{}}}, schemas.TypeCommandRejected},
	} {
		if got := schemas.EventType(tc.e); got != tc.want {
			t.Errorf("EventType(%v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestTypeCommand(t *testing.T) {
	for _, tc := range []struct {
		c    *pb.Command
		want string
	}{
		{nil, ""},
		{&pb.Command{}, ""},
		{&pb.Command{Body: &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{}}}, schemas.TypeCreateConversation},
		{&pb.Command{Body: &pb.Command_AddMembers{AddMembers: &pb.AddMembers{}}}, schemas.TypeAddMembers},
		{&pb.Command{Body: &pb.Command_RemoveMember{RemoveMember: &pb.RemoveMember{}}}, schemas.TypeRemoveMember},
		{&pb.Command{Body: &pb.Command_LeaveConversation{LeaveConversation: &pb.LeaveConversation{}}}, schemas.TypeLeaveConversation},
		{&pb.Command{Body: &pb.Command_SendMessage{SendMessage: &pb.SendMessage{}}}, schemas.TypeSendMessage},
		{&pb.Command{Body: &pb.Command_MarkDelivered{MarkDelivered: &pb.MarkDelivered{}}}, schemas.TypeMarkDelivered},
		{&pb.Command{Body: &pb.Command_MarkRead{MarkRead: &pb.MarkRead{}}}, schemas.TypeMarkRead},
	} {
		if got := schemas.CommandType(tc.c); got != tc.want {
			t.Errorf("CommandType(%v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

// TestTypeConstantsCoverBodies fails when a body is added to the proto
// without its Type… constant (and timeline classification) here.
func TestTypeConstantsCoverBodies(t *testing.T) {
	events := map[string]bool{ // name -> takes a seq
		schemas.TypeConversationCreated: false, schemas.TypeMembersAdded: true,
		schemas.TypeMemberRemoved: true, schemas.TypeMessageSent: true,
		schemas.TypeDeliveredUpTo: false, schemas.TypeReadUpTo: false, schemas.TypeCommandRejected: false,
		schemas.TypeMessageDeduplicated: false, schemas.TypeMessageEdited: false, schemas.TypeMessageRecalled: false,
		schemas.TypeReactionAdded: false, schemas.TypeReactionRemoved: false,
		schemas.TypeMemberRoleChanged: false, schemas.TypeOwnershipTransferred: false, schemas.TypeGroupSettingsChanged: false,
		schemas.TypeMemberMuted: false, schemas.TypeMemberUnmuted: false, schemas.TypeMessagePinned: false,
		schemas.TypeMessageUnpinned: false, schemas.TypeConversationPrefsChanged: false, schemas.TypeMessagesHidden: false,
		schemas.TypeUserBlocked: false, schemas.TypeUserUnblocked: false, schemas.TypeDirectBlockChanged: false,
		schemas.TypeMessageForwarded: false, schemas.TypeInviteCreated: false, schemas.TypeInviteRevoked: false,
		schemas.TypeJoinRequested: false, schemas.TypeJoinRequestDeclined: false, schemas.TypeWithheld: false,
		schemas.TypeAttachmentUploaded: false, schemas.TypeAttachmentDeleted: false,
		schemas.TypePushTargetRegistered: false, schemas.TypePushTargetUnregistered: false,
		schemas.TypeUserBanned: false, schemas.TypeUserUnbanned: false,
		schemas.TypeDeviceRevoked: false, schemas.TypeDeviceRestored: false,
		schemas.TypeWebhookCreated: false, schemas.TypeWebhookDeleted: false, schemas.TypeServiceReadRecorded: false,
		schemas.TypeConversationClosed: false, schemas.TypeConversationReopened: false, schemas.TypeConversationDeleted: false,
	}
	commands := map[string]bool{
		schemas.TypeCreateConversation: true, schemas.TypeAddMembers: true, schemas.TypeRemoveMember: true,
		schemas.TypeLeaveConversation: true, schemas.TypeSendMessage: true, schemas.TypeMarkDelivered: true,
		schemas.TypeMarkRead: true, schemas.TypeEditMessage: true, schemas.TypeRecallMessage: true,
		schemas.TypeAddReaction: true, schemas.TypeRemoveReaction: true,
		schemas.TypeSetMemberRole: true, schemas.TypeTransferOwnership: true, schemas.TypeUpdateGroupSettings: true,
		schemas.TypeMuteMember: true, schemas.TypeUnmuteMember: true, schemas.TypePinMessage: true, schemas.TypeUnpinMessage: true,
		schemas.TypeUpdateConversationPrefs: true, schemas.TypeHideMessages: true, schemas.TypeBlockUser: true,
		schemas.TypeUnblockUser: true, schemas.TypeForwardMessage: true, schemas.TypeDirectBlock: true,
		schemas.TypeForwardedMessage: true, schemas.TypeCreateInvite: true, schemas.TypeRevokeInvite: true,
		schemas.TypeJoinConversation: true, schemas.TypeDecideJoinRequest: true,
		schemas.TypeUploadAttachment: true, schemas.TypeExpireAttachment: true,
		schemas.TypeRegisterPushTarget: true, schemas.TypeUnregisterPushTarget: true,
		schemas.TypeBanUser: true, schemas.TypeUnbanUser: true,
		schemas.TypeRevokeDevice: true, schemas.TypeRestoreDevice: true,
		schemas.TypeCreateWebhook: true, schemas.TypeDeleteWebhook: true, schemas.TypeRecordServiceRead: true,
		schemas.TypeCloseConversation: true, schemas.TypeReopenConversation: true, schemas.TypeDeleteConversation: true,
	}
	check := func(m proto.Message, known map[string]bool) {
		fields := m.ProtoReflect().Descriptor().Oneofs().ByName("body").Fields()
		if fields.Len() != len(known) {
			t.Errorf("%s has %d bodies, %d Type constants", m.ProtoReflect().Descriptor().Name(), fields.Len(), len(known))
		}
		for i := range fields.Len() {
			name := string(fields.Get(i).Message().Name())
			if _, ok := known[name]; !ok {
				t.Errorf("%s body %s has no Type constant", m.ProtoReflect().Descriptor().Name(), name)
			}
		}
	}
	check(&pb.Event{}, events)
	check(&pb.Command{}, commands)
	for name, timeline := range events {
		if got := schemas.IsTimelineEvent(name); got != timeline {
			t.Errorf("IsTimelineEvent(%s) = %v, want %v", name, got, timeline)
		}
	}
}

// TestTypeMessageSeqCoversBodies fails when an event body that names a
// message of its conversation (a message_seq field) is added without
// MessageSeq returning it: the gateway would send it whole to a member who
// may not see that message.
func TestTypeMessageSeqCoversBodies(t *testing.T) {
	fields := (&pb.Event{}).ProtoReflect().Descriptor().Oneofs().ByName("body").Fields()
	named := 0
	for i := range fields.Len() {
		fd := fields.Get(i)
		body := fd.Message()
		seq := body.Fields().ByName("message_seq")
		e := &pb.Event{}
		m := e.ProtoReflect().Mutable(fd).Message()
		if seq != nil {
			named++
			m.Set(seq, protoreflect.ValueOfInt64(42))
		}
		want := int64(0)
		if seq != nil {
			want = 42
		}
		if got := schemas.MessageSeq(e); got != want {
			t.Errorf("MessageSeq of a %s = %d, want %d", body.Name(), got, want)
		}
	}
	if named != 6 {
		t.Errorf("%d bodies name a message_seq, want the 6 message actions", named)
	}
	if got := schemas.MessageSeq(nil); got != 0 {
		t.Errorf("MessageSeq(nil) = %d", got)
	}
}

// TestTypeClientFrameMirrorsCommand keeps the client protocol and the
// command envelope in step: every command body is a client frame body with
// the same field number, except the bodies no device writes (44 to 49: the
// admin API's; 50 and up: a gateway's HTTP handlers, or ingest), which no
// client frame may carry. Closing and reopening a conversation (46, 52) are
// both a service's and a group owner's: a device writes them too.
func TestTypeClientFrameMirrorsCommand(t *testing.T) {
	cmd := (&pb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body").Fields()
	frame := (&pb.ClientFrame{}).ProtoReflect().Descriptor().Fields()
	byDevices := map[protoreflect.FieldNumber]bool{46: true, 52: true}
	for i := range cmd.Len() {
		c := cmd.Get(i)
		if c.Number() >= 44 && !byDevices[c.Number()] {
			if frame.ByNumber(c.Number()) != nil || frame.ByName(c.Name()) != nil {
				t.Errorf("ClientFrame carries %s = %d, a body no device writes", c.Name(), c.Number())
			}
			continue
		}
		f := frame.ByName(c.Name())
		if f == nil || f.Number() != c.Number() || f.Message() != c.Message() || f.ContainingOneof() == nil {
			t.Errorf("ClientFrame has no body %s = %d of type %s", c.Name(), c.Number(), c.Message().FullName())
		}
	}
}

func TestDirectConversationID(t *testing.T) {
	ab := schemas.DirectConversationID("alice", "bob")
	if ba := schemas.DirectConversationID("bob", "alice"); ab != ba {
		t.Fatalf("not order-independent: %s != %s", ab, ba)
	}
	// Pinned: existing conversations (and their partitions) depend on it.
	if want := "d:141a4cd242b67e82edf4a78bb418d40a"; ab != want {
		t.Fatalf("DirectConversationID(alice, bob) = %s, want %s", ab, want)
	}
	if !schemas.IsDirectConversationID(ab) {
		t.Fatalf("IsDirectConversationID(%s) = false", ab)
	}
	distinct := map[string][2]string{}
	for _, p := range [][2]string{{"ab", "c"}, {"a", "bc"}, {"alice", "bob"}, {"alice", "carol"}, {"alice", "alice"}, {"", "alice"}} {
		id := schemas.DirectConversationID(p[0], p[1])
		if q, dup := distinct[id]; dup {
			t.Errorf("%v and %v share id %s", p, q, id)
		}
		distinct[id] = p
	}
}

func TestDirectConversationIDShape(t *testing.T) {
	for id, want := range map[string]bool{
		schemas.DirectConversationID("x", "y"): true,
		schemas.NewGroupConversationID():       false,
		"d:":                                   false,
		"d:9EE7E4CE7F71BDD8AE7EA1C2FA6ADBD8":   false,
		"d:9ee7e4ce7f71bdd8ae7ea1c2fa6adbdz":   false,
	} {
		if got := schemas.IsDirectConversationID(id); got != want {
			t.Errorf("IsDirectConversationID(%q) = %v, want %v", id, got, want)
		}
	}
	g := schemas.NewGroupConversationID()
	if !strings.HasPrefix(g, "g:") || len(g) != 34 || g == schemas.NewGroupConversationID() {
		t.Errorf("NewGroupConversationID() = %q", g)
	}
}

// TestClientFrameJSON pins the JSON text protocol spelling devices use.
func TestClientFrameJSON(t *testing.T) {
	in := `{"requestId":"r1","conversationId":"g:1","sendMessage":{"clientMsgId":"m1","text":"hi"}}`
	var f pb.ClientFrame
	if err := protojson.Unmarshal([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	if f.GetSendMessage().GetClientMsgId() != "m1" || f.GetRequestId() != "r1" {
		t.Fatalf("decoded %v", &f)
	}
	out, err := protojson.Marshal(&pb.ServerFrame{Body: &pb.ServerFrame_Error{Error: &pb.Error{RequestId: "r1", Code: pb.ErrorCode_ERROR_CODE_NOT_MEMBER}}})
	if err != nil {
		t.Fatal(err)
	}
	var back pb.ServerFrame
	if err := protojson.Unmarshal(out, &back); err != nil || back.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
		t.Fatalf("round trip of %s: %v %v", out, &back, err)
	}
	if !strings.Contains(string(out), `"ERROR_CODE_NOT_MEMBER"`) {
		t.Errorf("error code not spelled by name: %s", out)
	}
}
