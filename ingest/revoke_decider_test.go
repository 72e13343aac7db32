package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func revocationOf(id, user, device, reason string) *pb.Command {
	c := command(id, user, schemas.UserStreamID(user))
	c.ServicePrincipal = "ops"
	c.Body = &pb.Command_RevokeDevice{RevokeDevice: &pb.RevokeDevice{DeviceId: device, Reason: reason}}
	return c
}

// TestDeciderRevocations runs a device revocation end to end on Kafka: a
// revocation decided on the user's stream is written to the bans topic in
// its transaction, the decider of the group's partition refuses that
// device's commands DEVICE_REVOKED while the user's other device goes on,
// a restarted decider still refuses them (the bans topic) and still knows
// the revocation on the user's stream (the changelog: the same one again
// is NO_CHANGE), and after the restore the device sends again.
func TestDeciderRevocations(t *testing.T) {
	p := newPipeline(t)
	o := followEvents(t, p)
	ctx := context.Background()
	group := p.k.Name("ingest")
	stop := p.startDecider(group)
	// A group in another partition than bob's stream: the revocation must
	// cross.
	g := groupAcross(ctx, t, p, o, "c1", "alice", "bob")
	p.append(ctx, revocationOf("r1", "bob", "bob-d1", "lost"))
	if got, ev := o.await(t, "r1"); got != schemas.TypeDeviceRevoked || ev.GetActorService() != "ops" || ev.GetActorUserId() != "bob" ||
		ev.GetDeviceRevoked().GetDeviceId() != "bob-d1" {
		t.Fatalf("revoke: %s %v", got, ev)
	}
	p.append(ctx, sendCmd("s1", "bob", g, "m1"))
	if got, ev := o.await(t, "s1"); got != "ERROR_CODE_DEVICE_REVOKED" || ev.GetCommandRejected().GetMessage() != "device bob-d1 of bob is revoked: lost" {
		t.Fatalf("the revoked device's send: %s %v", got, ev)
	}
	other := sendCmd("s2", "bob", g, "m2")
	other.DeviceId = "bob-d2"
	p.append(ctx, other)
	if got, ev := o.await(t, "s2"); got != schemas.TypeMessageSent || ev.GetSeq() != 1 {
		t.Fatalf("bob's other device's send: %s %v", got, ev)
	}

	// A new decider learns the revocation from the bans topic, and the
	// user stream's from the changelog.
	stop()
	stop = p.startDecider(group)
	defer func() { stop() }()
	p.append(ctx, sendCmd("s3", "bob", g, "m3"))
	if got, _ := o.await(t, "s3"); got != "ERROR_CODE_DEVICE_REVOKED" {
		t.Fatalf("the revoked device's send after a restart: %s", got)
	}
	p.append(ctx, revocationOf("r2", "bob", "bob-d1", "lost"))
	if got, _ := o.await(t, "r2"); got != "ERROR_CODE_NO_CHANGE" {
		t.Fatalf("the same revocation after a restart: %s", got)
	}

	restore := command("u1", "bob", schemas.UserStreamID("bob"))
	restore.ServicePrincipal = "ops"
	restore.Body = &pb.Command_RestoreDevice{RestoreDevice: &pb.RestoreDevice{DeviceId: "bob-d1"}}
	p.append(ctx, restore)
	if got, ev := o.await(t, "u1"); got != schemas.TypeDeviceRestored || ev.GetVersion() != 2 {
		t.Fatalf("restore: %s %v", got, ev)
	}
	p.append(ctx, sendCmd("s4", "bob", g, "m4"))
	if got, ev := o.await(t, "s4"); got != schemas.TypeMessageSent || ev.GetSeq() != 2 {
		t.Fatalf("the restored device's send: %s %v", got, ev)
	}

	// The bans topic holds the revocation, then its tombstone; a follower
	// reading it from the start sees both, and no ban.
	var mu sync.Mutex
	var seen []string
	f, err := ingest.NewBanFollower(ingest.BanFollowerConfig{Seeds: p.k.Seeds, Topic: p.bans,
		OnChange: func(user string, b ingest.Ban, banned bool) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("ban %s:%v", user, banned))
		},
		OnRevoke: func(user, device string, r ingest.Revocation, revoked bool) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s/%s:%v:%s:%s", user, device, revoked, r.Reason, r.By))
		}})
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(fctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-f.Ready():
	case <-time.After(time.Minute):
		t.Fatal("the follower is not ready")
	}
	mu.Lock()
	got := fmt.Sprint(seen)
	mu.Unlock()
	if got != "[bob/bob-d1:true:lost:ops bob/bob-d1:false::]" {
		t.Fatalf("the follower saw %s", got)
	}
	if _, revoked := f.Revoked("bob", "bob-d1"); revoked {
		t.Fatal("bob-d1 still revoked")
	}
	if _, banned := f.Ban("bob"); banned {
		t.Fatal("a revocation read as a ban")
	}
}
