package notify

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/projector"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// fakeViews answers the planner's reads from maps: the planner's rules are
// pure logic over what the views hold.
type fakeViews struct {
	conv    projector.Conversation
	members []projector.Member
	prefs   map[string]map[string]projector.Prefs
	targets map[string][]projector.PushTarget
	unread  map[string]int64
}

func (f *fakeViews) Conversation(context.Context, string) (projector.Conversation, bool, error) {
	return f.conv, true, nil
}
func (f *fakeViews) Members(context.Context, string) ([]projector.Member, error) {
	return f.members, nil
}
func (f *fakeViews) ConversationPrefs(_ context.Context, u string) (map[string]projector.Prefs, error) {
	return f.prefs[u], nil
}
func (f *fakeViews) PushTargets(_ context.Context, u string) ([]projector.PushTarget, error) {
	return f.targets[u], nil
}
func (f *fakeViews) UnreadTotal(_ context.Context, u string) (int64, error) { return f.unread[u], nil }

const testConv = "g:0123456789abcdef0123456789abcdef"

func testPlanner(v *fakeViews, preview Preview, online ...string) (*planner, map[string]int) {
	skipped := map[string]int{}
	var mu sync.Mutex // the planner counts from its per-user goroutines
	return &planner{views: v, preview: preview, skipped: func(r string) { mu.Lock(); skipped[r]++; mu.Unlock() },
		providers: map[pb.PushProvider]bool{pb.PushProvider_PUSH_PROVIDER_FCM: true, pb.PushProvider_PUSH_PROVIDER_APNS: true},
		connected: func(user, device string, _ time.Time) bool {
			for _, o := range online {
				if o == user+"/"+device {
					return true
				}
			}
			return false
		}}, skipped
}

func testViews() *fakeViews {
	return &fakeViews{
		conv: projector.Conversation{ID: testConv, Kind: "group", Title: "Ops"},
		members: []projector.Member{{UserID: "alice"}, {UserID: "bob", ReadSeq: 3}, {UserID: "carol", ReadSeq: 7},
			{UserID: "dave", Removed: true}},
		prefs: map[string]map[string]projector.Prefs{"carol": {testConv: {ConversationID: testConv, MutedForever: true}}},
		targets: map[string][]projector.PushTarget{
			"alice": {{DeviceID: "a-phone", Provider: "fcm", Token: "ta"}},
			"bob": {{DeviceID: "b-phone", Provider: "fcm", Token: "tb"}, {DeviceID: "b-ipad", Provider: "apns", Token: strings.Repeat("ab", 32),
				APNSTopic: "com.example.chat", APNSEnvironment: "sandbox"}, {DeviceID: "b-web", Provider: "web_push", Endpoint: "https://push.example/x"}},
			"carol": {{DeviceID: "c-phone", Provider: "apns", Token: strings.Repeat("cd", 32)}},
			"dave":  {{DeviceID: "d-phone", Provider: "fcm", Token: "td"}},
		},
		unread: map[string]int64{"bob": 5, "carol": 2, "alice": 0},
	}
}

func sent(seq, version int64, text string, mentions ...string) *pb.Event {
	return &pb.Event{ConversationId: testConv, Seq: seq, Version: version, ActorUserId: "alice", ActorDeviceId: "a-laptop",
		OccurredAt: timestamppb.Now(),
		Body:       &pb.Event_MessageSent{MessageSent: &pb.MessageSent{ClientMsgId: "m1", Text: text, MentionUserIds: mentions}}}
}

func TestPlanMessage(t *testing.T) {
	pl, skipped := testPlanner(testViews(), PreviewFull, "bob/b-phone")
	notes, err := pl.plan(context.Background(), sent(8, 11, "deploy at 5"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// bob's iPad only: his phone is connected, his browser's provider has
	// no sender; carol muted the group; dave left; alice sent it.
	if len(notes) != 1 {
		t.Fatalf("planned %d pushes, want 1: %v", len(notes), notes)
	}
	n := notes[0]
	if n.GetUserId() != "bob" || n.GetTarget().GetDeviceId() != "b-ipad" || n.GetKind() != pb.PushNotificationKind_PUSH_NOTIFICATION_KIND_MESSAGE ||
		n.GetSeq() != 8 || n.GetBadge() != 5 || n.GetTitle() != "Ops" || n.GetBody() != "alice: deploy at 5" || n.GetCollapse() != testConv ||
		n.GetTarget().GetApnsEnvironment() != pb.ApnsEnvironment_APNS_ENVIRONMENT_SANDBOX || n.GetTarget().GetApnsTopic() != "com.example.chat" {
		t.Fatalf("push = %v", n)
	}
	if skipped["connected"] != 1 || skipped["no_provider"] != 1 || skipped["muted"] != 1 {
		t.Fatalf("skipped = %v", skipped)
	}
	again, err := pl.plan(context.Background(), sent(8, 11, "deploy at 5"), time.Now())
	if err != nil || len(again) != 1 || again[0].GetId() != n.GetId() {
		t.Fatalf("planned again: %v, %v; the id must be the same (%s)", again, err, n.GetId())
	}
	other, _ := pl.plan(context.Background(), sent(9, 12, "deploy at 5"), time.Now())
	if len(other) != 1 || other[0].GetId() == n.GetId() {
		t.Fatalf("the next message's push must have another id: %v", other)
	}
}

func TestPlanMentionIgnoresMute(t *testing.T) {
	pl, _ := testPlanner(testViews(), PreviewFull, "bob/b-phone", "bob/b-ipad")
	notes, err := pl.plan(context.Background(), sent(8, 11, "@carol look", "carol"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || notes[0].GetUserId() != "carol" || !notes[0].GetMention() || notes[0].GetBadge() != 2 {
		t.Fatalf("pushes = %v, want carol's mention only", notes)
	}
	// A mute until a time that has passed mutes nothing.
	v := testViews()
	v.prefs["carol"][testConv] = projector.Prefs{ConversationID: testConv, MutedUntil: time.Now().Add(-time.Minute)}
	pl, _ = testPlanner(v, PreviewFull, "bob/b-phone", "bob/b-ipad")
	if notes, _ := pl.plan(context.Background(), sent(8, 11, "hi"), time.Now()); len(notes) != 1 || notes[0].GetUserId() != "carol" {
		t.Fatalf("pushes = %v, want carol's (her mute ended)", notes)
	}
}

func TestPlanPreview(t *testing.T) {
	for _, c := range []struct {
		preview     Preview
		title, body string
	}{
		{PreviewFull, "Ops", "alice: " + strings.Repeat("x", maxPreviewBytes-len("…")) + "…"},
		{PreviewSender, "Ops", "alice: New message"},
		{PreviewNone, "", ""},
	} {
		pl, _ := testPlanner(testViews(), c.preview, "bob/b-phone")
		notes, err := pl.plan(context.Background(), sent(8, 11, strings.Repeat("x", 500)), time.Now())
		if err != nil || len(notes) != 1 {
			t.Fatalf("%v: %v %v", c.preview, notes, err)
		}
		if notes[0].GetTitle() != c.title || notes[0].GetBody() != c.body {
			t.Errorf("%v: title %q body %q, want %q %q", c.preview, notes[0].GetTitle(), notes[0].GetBody(), c.title, c.body)
		}
	}
	// A direct chat's title is the sender.
	v := testViews()
	v.conv = projector.Conversation{ID: "d:0123456789abcdef0123456789abcdef", Kind: "direct"}
	pl, _ := testPlanner(v, PreviewFull, "bob/b-phone")
	notes, _ := pl.plan(context.Background(), sent(8, 11, "hi"), time.Now())
	if len(notes) != 1 || notes[0].GetTitle() != "alice" || notes[0].GetBody() != "hi" {
		t.Fatalf("direct: %v", notes)
	}
}

func TestPlanClears(t *testing.T) {
	// bob read on his phone: his iPad's notification is cleared, with his
	// new badge; the phone itself gets nothing.
	pl, _ := testPlanner(testViews(), PreviewFull)
	read := &pb.Event{ConversationId: testConv, Version: 12, ActorUserId: "bob", ActorDeviceId: "b-phone",
		Body: &pb.Event_ReadUpTo{ReadUpTo: &pb.ReadUpTo{UpToSeq: 8}}}
	notes, err := pl.plan(context.Background(), read, time.Now())
	if err != nil || len(notes) != 1 || notes[0].GetTarget().GetDeviceId() != "b-ipad" ||
		notes[0].GetKind() != pb.PushNotificationKind_PUSH_NOTIFICATION_KIND_CLEAR || notes[0].GetSeq() != 8 || notes[0].GetBadge() != 5 ||
		notes[0].GetTitle() != "" {
		t.Fatalf("read: %v %v", notes, err)
	}
	// A recall of seq 5 clears it for those who had not read it: bob (read
	// to 3), not carol (read to 7), not the sender.
	recall := &pb.Event{ConversationId: testConv, Version: 13, ActorUserId: "alice",
		Body: &pb.Event_MessageRecalled{MessageRecalled: &pb.MessageRecalled{MessageSeq: 5, SenderUserId: "alice"}}}
	notes, err = pl.plan(context.Background(), recall, time.Now())
	if err != nil || len(notes) != 2 {
		t.Fatalf("recall: %v %v", notes, err)
	}
	for _, n := range notes {
		if n.GetUserId() != "bob" || n.GetKind() != pb.PushNotificationKind_PUSH_NOTIFICATION_KIND_CLEAR || n.GetSeq() != 5 {
			t.Fatalf("recall push %v", n)
		}
	}
}

func TestClipText(t *testing.T) {
	if got := clipText("héllo wörld", 8); got != "héll…" || len(got) > 8 {
		t.Fatalf("clipText = %q", got)
	}
	if got := clipText("short", 8); got != "short" {
		t.Fatalf("clipText = %q", got)
	}
}
