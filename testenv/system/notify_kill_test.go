package system_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/projector"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/pushserver"
)

// TestE2ENotifierSIGKILL runs the notifier binary against local FCM and
// APNs servers, SIGKILLs it while alice's messages to a group are pushed
// to the four disconnected devices of bob and carol, and starts it again:
// every message reaches every device at least once, and a duplicate
// carries the id of the push it repeats.
func TestE2ENotifierSIGKILL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fcm, apns := pushserver.StartFCM(t), pushserver.StartAPNs(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, append(fcm.CertPEM(), apns.CertPEM()...), 0o600); err != nil {
		t.Fatal(err)
	}
	sys, c := start(t, 1)
	notifier := newNotifierProc(t, sys, c,
		"PARLEY_NOTIFIER_RETRY_INITIAL=50ms",
		"PARLEY_NOTIFIER_CA_FILE="+ca,
		"PARLEY_FCM_CREDENTIALS_FILE="+fcm.WriteServiceAccount(t),
		"PARLEY_FCM_ENDPOINT="+fcm.URL(),
		"PARLEY_FCM_TOKEN_URL="+fcm.TokenURL(),
		"PARLEY_APNS_KEY_FILE="+apns.WriteKey(t),
		"PARLEY_APNS_KEY_ID="+apns.KeyID,
		"PARLEY_APNS_TEAM_ID="+apns.TeamID,
		"PARLEY_APNS_PRODUCTION="+apns.URL(),
		"PARLEY_APNS_SANDBOX="+apns.URL(),
	)
	notifier.start()
	notifier.waitReady()

	tables, err := projector.NewTables(c.Session(), c.Keyspace)
	if err != nil {
		t.Fatal(err)
	}
	devices := []struct{ user, device string }{{"bob", "phone"}, {"bob", "ipad"}, {"carol", "phone"}, {"carol", "ipad"}}
	for i, d := range devices {
		cl := connect(t, sys, 0, d.user, d.device)
		target := &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "fcm-" + d.user + "-" + d.device}
		if d.device == "ipad" {
			target = &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_APNS, Token: fmt.Sprintf("%064x", i+1),
				ApnsTopic: "com.example.chat", ApnsEnvironment: pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION}
		}
		accepted(t, cl.MustDo("", &pb.RegisterPushTarget{Target: target}))
		cl.Close()
		offlineSeen(t, sys, d.user, d.device)
	}
	testenv.Eventually(t, time.Minute, func() string {
		for _, u := range []string{"bob", "carol"} {
			if got, err := tables.PushTargets(t.Context(), u); err != nil || len(got) != 2 {
				return fmt.Sprintf("%s's push targets: %+v %v", u, got, err)
			}
		}
		return ""
	})

	const messages = 400
	alice := connect(t, sys, 0, "alice", "laptop")
	conv := accepted(t, alice.MustDo("", &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: "load",
		MemberUserIds: []string{"bob", "carol"}}))
	var sent atomic.Int64
	sendErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for i := range messages {
			if _, err := alice.Send(ctx, conv, send(fmt.Sprintf("k%d", i), fmt.Sprintf("message %d", i))); err != nil {
				sendErr <- err
				return
			}
			sent.Add(1)
		}
		sendErr <- nil
	}()
	pushed := func() int { return len(fcm.Requests()) + len(apns.Requests()) }
	testenv.Eventually(t, 2*time.Minute, func() string {
		if n := pushed(); n < messages*len(devices)/4 {
			return fmt.Sprintf("%d pushes accepted", n)
		}
		return ""
	})
	t.Logf("SIGKILL the notifier after %d pushes, %d messages sent", pushed(), sent.Load())
	notifier.kill()
	atKill := sent.Load()
	testenv.Eventually(t, time.Minute, func() string {
		if n := sent.Load(); n < min(atKill+50, messages) {
			return fmt.Sprintf("%d messages sent with the notifier down", n-atKill)
		}
		return ""
	})
	notifier.start()
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}

	// Every (device, seq) pushed at least once; the ids of its pushes all
	// the same, and no two pairs sharing one.
	type pair struct {
		address string
		seq     string
	}
	var reqs []pushserver.Request
	testenv.Eventually(t, 3*time.Minute, func() string {
		reqs = append(fcm.Requests(), apns.Requests()...)
		got := map[pair]bool{}
		for _, r := range reqs {
			got[pair{r.Address, r.Data["seq"]}] = true
		}
		if len(got) < messages*len(devices) {
			return fmt.Sprintf("%d of %d (device, message) pairs pushed, in %d pushes", len(got), messages*len(devices), len(reqs))
		}
		return ""
	})
	ids := map[pair]string{}
	owner := map[string]pair{}
	dups := 0
	for _, r := range reqs {
		p := pair{r.Address, r.Data["seq"]}
		if r.Silent || r.NotificationID == "" || p.seq == "" {
			t.Fatalf("unexpected push %+v", r)
		}
		if id, ok := ids[p]; ok {
			dups++
			if id != r.NotificationID {
				t.Fatalf("the duplicate push of %v has id %s, the first %s", p, r.NotificationID, id)
			}
			continue
		}
		if o, ok := owner[r.NotificationID]; ok {
			t.Fatalf("id %s names two pushes: %v and %v", r.NotificationID, o, p)
		}
		ids[p], owner[r.NotificationID] = r.NotificationID, p
	}
	if len(ids) != messages*len(devices) {
		t.Fatalf("%d distinct (device, message) pairs pushed, want %d", len(ids), messages*len(devices))
	}
	t.Logf("%d pushes for %d (device, message) pairs: %d duplicates after the SIGKILL, each with the id of the push it repeats",
		len(reqs), len(ids), dups)
	if rej := append(fcm.Rejections(), apns.Rejections()...); len(rej) != 0 {
		t.Fatalf("the servers refused requests as malformed: %q", rej)
	}
}
