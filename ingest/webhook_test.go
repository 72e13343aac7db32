package ingest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// hookCmd is a service's CreateWebhook of user's webhook id.
func hookCmd(user, id, url string, members bool, convs ...string) *pb.Command {
	c := cmd(user, schemas.UserStreamID(user), &pb.CreateWebhook{Webhook: &pb.Webhook{WebhookId: id, Url: url,
		MemberConversations: members, ConversationIds: convs}})
	c.ServicePrincipal = "ops"
	return c
}

func unhookCmd(user, id string) *pb.Command {
	c := cmd(user, schemas.UserStreamID(user), &pb.DeleteWebhook{WebhookId: id})
	c.ServicePrincipal = "ops"
	return c
}

const (
	rejWebhookExists = "Rejected:ERROR_CODE_WEBHOOK_EXISTS"
	rejNoChange      = "Rejected:ERROR_CODE_NO_CHANGE"
)

// TestDecideWebhooks checks the webhook rules on the owner's stream: only a
// service, a well-formed definition, an id not held (the same again is
// NO_CHANGE, another definition WEBHOOK_EXISTS), deleting only what is held, at
// most maxWebhooks, and the events share the stream's versions.
func TestDecideWebhooks(t *testing.T) {
	device := hookCmd("alice", "w1", "https://example.com/h", true)
	device.ServicePrincipal = ""
	typed := hookCmd("alice", "w2", "https://example.com/h", true)
	typed.GetCreateWebhook().Webhook.EventTypes = []string{"MessageSent", "NoSuchType"}
	var many []*pb.Command
	var manyWant []string
	for i := range maxWebhooks + 1 {
		many = append(many, hookCmd("alice", fmt.Sprintf("w%d", i), "https://example.com/h", true))
		if i < maxWebhooks {
			manyWant = append(manyWant, fmt.Sprintf("uA:WebhookCreated@0/v%d", i+1))
		}
	}
	manyWant = append(manyWant, "uA:Rejected:ERROR_CODE_LIMIT_REACHED/v0")
	for _, tc := range []struct {
		name string
		cmds []*pb.Command
		want []string
	}{
		{"create, again, another definition, delete, delete again",
			[]*pb.Command{hookCmd("alice", "w1", "https://example.com/h", true), hookCmd("alice", "w1", "https://example.com/h", true),
				hookCmd("alice", "w1", "https://example.com/other", true), unhookCmd("alice", "w1"), unhookCmd("alice", "w1"),
				hookCmd("alice", "w1", "https://example.com/other", false, g1)},
			[]string{"uA:WebhookCreated@0/v1", "uA:" + rejNoChange + "/v0", "uA:" + rejWebhookExists + "/v0",
				"uA:WebhookDeleted@0/v2", "uA:" + rejNotFound + "/v0", "uA:WebhookCreated@0/v3"}},
		{"only a service, on the user's own stream",
			[]*pb.Command{device, cmd("alice", g1, &pb.CreateWebhook{})},
			[]string{"uA:" + rejDenied + "/v0", "g1:" + rejInvalid + "/v0"}},
		{"bad definitions",
			[]*pb.Command{hookCmd("alice", "", "https://example.com/h", true), hookCmd("alice", "w1", "ftp://example.com/h", true),
				hookCmd("alice", "w1", "https://user:pw@example.com/h", true), hookCmd("alice", "w1", "https://example.com/"+strings.Repeat("x", 2048), true),
				hookCmd("alice", "w1", "https://example.com/h", false), hookCmd("alice", "w1", "https://example.com/h", false, "u:nope"), typed},
			[]string{"uA:Rejected:ERROR_CODE_INVALID_ID/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0",
				"uA:" + rejInvalid + "/v0", "uA:Rejected:ERROR_CODE_INVALID_ID/v0", "uA:" + rejInvalid + "/v0"}},
		{"at most maxWebhooks", many, manyWant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreams(t, Limits{})
			evs := s.do(tc.cmds...)
			if got := streamSummary(evs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			for _, ev := range evs {
				if ev.GetWebhookCreated() != nil && (ev.GetActorService() != "ops" || ev.GetActorUserId() != "alice") {
					t.Errorf("actor %q service %q, want alice and ops", ev.GetActorUserId(), ev.GetActorService())
				}
			}
		})
	}
}

// TestWebhookRecord checks a webhook's record on the webhooks topic: the
// WebhookCreated keyed by owner and id, a tombstone for the deletion.
func TestWebhookRecord(t *testing.T) {
	s := newStreams(t, Limits{})
	evs := s.do(hookCmd("alice", "w1", "https://example.com/h", true), unhookCmd("alice", "w1"))
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	key := schemas.WebhookKey("alice", "w1")
	if k, v, ok := webhookRecord(evs[0], []byte("ev")); !ok || k != key || string(v) != "ev" {
		t.Errorf("create record %q %q %v", k, v, ok)
	}
	if k, v, ok := webhookRecord(evs[1], []byte("ev")); !ok || k != key || v != nil {
		t.Errorf("delete record %q %q %v, want the tombstone", k, v, ok)
	}
	if _, _, ok := webhookRecord(evs[0], nil); ok && evs[0].GetWebhookCreated().GetWebhook().GetUrl() != "https://example.com/h" {
		t.Error("the event lost its URL")
	}
	if _, _, ok := webhookRecord(&pb.Event{Body: &pb.Event_UserBanned{UserBanned: &pb.UserBanned{}}}, nil); ok {
		t.Error("a UserBanned has a webhook record")
	}
}

// TestWebhooksRestore checks webhooks survive a restore from the
// changelog: the same id is still refused, a deleted one may be created
// again, and versions go on.
func TestWebhooksRestore(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	r.do(hookCmd("alice", "w1", "https://example.com/a", true), at)
	r.do(hookCmd("alice", "w2", "https://example.com/b", false, g1), at)
	r.do(unhookCmd("alice", "w2"), at)
	r.ps = r.restore(at)
	hooks := r.ps.convs[streamAlice].webhooks
	if len(hooks) != 1 || !proto.Equal(hooks["w1"], &pb.Webhook{WebhookId: "w1", Url: "https://example.com/a", MemberConversations: true}) {
		t.Fatalf("restored webhooks %v", hooks)
	}
	evs := r.do(hookCmd("alice", "w1", "https://example.com/a", true), at)
	evs = append(evs, r.do(hookCmd("alice", "w2", "https://example.com/b", false, g1), at)...)
	if got := fmt.Sprint(streamSummary(evs)); got != "[uA:"+rejNoChange+"/v0 uA:WebhookCreated@0/v4]" {
		t.Fatalf("after restore %s", got)
	}
}

// TestDecideNoChange checks a service's command that changes nothing is
// answered NO_CHANGE (to the service only, version 0), and a device's
// same command stays silent.
func TestDecideNoChange(t *testing.T) {
	add := func(service string) *pb.Command {
		c := cmd("alice", "g:1", nil)
		c.Body = &pb.Command_AddMembers{AddMembers: &pb.AddMembers{UserIds: []string{"bob"}}}
		c.ServicePrincipal = service
		return c
	}
	_, evs := run(t, Limits{}, createGroup("bob"), add(""), add("ops"))
	evs = slices.Delete(evs, 1, 2) // the device's: INVALID_ARGUMENT, as ever
	got := summary(evs)
	if len(got) != 2 || got[1] != rejNoChange {
		t.Fatalf("events %v (%v); want the creation, then one NO_CHANGE (the service's), nothing for the device's", got, evs)
	}
	if ev := evs[1]; ev.GetVersion() != 0 || ev.GetActorService() != "ops" {
		t.Fatalf("a NO_CHANGE with version %d, service %q", ev.GetVersion(), ev.GetActorService())
	}
	s := newStreams(t, Limits{})
	if got := fmt.Sprint(streamSummary(s.do(unbanCmd("bob")))); got != "[uB:"+rejNoChange+"/v0]" {
		t.Fatalf("an unban of a user not banned: %s", got)
	}
}

// TestDecideServiceRead checks a service's read is recorded on any stream,
// version 0 (it changes nothing), and only a service's.
func TestDecideServiceRead(t *testing.T) {
	read := func(user, conv, service, route string) *pb.Command {
		c := cmd(user, conv, nil)
		c.Body = &pb.Command_RecordServiceRead{RecordServiceRead: &pb.RecordServiceRead{Route: route}}
		c.ServicePrincipal = service
		return c
	}
	s := newStreams(t, Limits{})
	evs := s.do(read("alice", schemas.UserStreamID("alice"), "ops", "GET /x"), read("ops", g1, "ops", "GET /y"),
		read("alice", schemas.UserStreamID("alice"), "", "GET /x"), read("alice", schemas.UserStreamID("bob"), "ops", "GET /x"),
		read("ops", g1, "ops", ""), hookCmd("alice", "w1", "https://example.com/h", true))
	want := "[uA:ServiceReadRecorded@0/v0 g1:ServiceReadRecorded@0/v0 uA:" + rejDenied + "/v0 uB:" + rejDenied + "/v0 g1:" + rejInvalid +
		"/v0 uA:WebhookCreated@0/v1]"
	if got := fmt.Sprint(streamSummary(evs)); got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
	if evs[0].GetActorService() != "ops" || evs[0].GetServiceReadRecorded().GetRoute() != "GET /x" {
		t.Fatalf("the record %v", evs[0])
	}
}
