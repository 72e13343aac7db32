package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func revokeDeviceCmd(user, device, reason string) *pb.Command {
	c := cmd(user, schemas.UserStreamID(user), &pb.RevokeDevice{DeviceId: device, Reason: reason})
	c.ServicePrincipal = "ops"
	return c
}

func restoreDeviceCmd(user, device string) *pb.Command {
	c := cmd(user, schemas.UserStreamID(user), &pb.RestoreDevice{DeviceId: device})
	c.ServicePrincipal = "ops"
	return c
}

// TestDecideRevocations checks the revocation rules on the user's stream:
// only a service revokes, a well-formed device id and reason, the same
// revocation again and a restore of a device not revoked change nothing
// (NO_CHANGE to the service), another reason replaces the first, and the
// events share the stream's versions.
func TestDecideRevocations(t *testing.T) {
	device := revokeDeviceCmd("alice", "phone", "")
	device.ServicePrincipal = ""
	wrongStream := revokeDeviceCmd("alice", "phone", "")
	wrongStream.ConversationId = streamBob
	const rejID = "Rejected:ERROR_CODE_INVALID_ID"
	for _, tc := range []struct {
		name string
		cmds []*pb.Command
		want []string
	}{
		{"revoke, the same again, another reason, another device, restore, restore again",
			[]*pb.Command{revokeDeviceCmd("alice", "phone", "lost"), revokeDeviceCmd("alice", "phone", "lost"),
				revokeDeviceCmd("alice", "phone", "stolen"), revokeDeviceCmd("alice", "tablet", ""), restoreDeviceCmd("alice", "phone"), restoreDeviceCmd("alice", "phone")},
			[]string{"uA:DeviceRevoked@0/v1", "uA:" + rejNoChange + "/v0", "uA:DeviceRevoked@0/v2", "uA:DeviceRevoked@0/v3",
				"uA:DeviceRestored@0/v4", "uA:" + rejNoChange + "/v0"}},
		{"only a service, on the user's own stream",
			[]*pb.Command{device, wrongStream, cmd("alice", g1, &pb.RevokeDevice{DeviceId: "phone"})},
			[]string{"uA:" + rejDenied + "/v0", "uB:" + rejDenied + "/v0", "g1:" + rejInvalid + "/v0"}},
		{"a bad device id or reason",
			[]*pb.Command{revokeDeviceCmd("alice", "", ""), revokeDeviceCmd("alice", "two words", ""), restoreDeviceCmd("alice", ""),
				revokeDeviceCmd("alice", "phone", strings.Repeat("x", 513)), revokeDeviceCmd("alice", "phone", "\xff")},
			[]string{"uA:" + rejID + "/v0", "uA:" + rejID + "/v0", "uA:" + rejID + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0"}},
		{"revocations and bans share the stream's versions",
			[]*pb.Command{banCmd("alice", time.Time{}, ""), revokeDeviceCmd("alice", "phone", ""), unbanCmd("alice"), restoreDeviceCmd("alice", "phone")},
			[]string{"uA:UserBanned@0/v1", "uA:DeviceRevoked@0/v2", "uA:UserUnbanned@0/v3", "uA:DeviceRestored@0/v4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreams(t, Limits{})
			evs := s.do(tc.cmds...)
			if got := streamSummary(evs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// TestRevocationRecord checks a DeviceRevoked's record on the bans topic:
// the event keyed by "<user> <device>", a tombstone for the restore, and
// that such a key is never a user's ban key.
func TestRevocationRecord(t *testing.T) {
	s := newStreams(t, Limits{})
	evs := s.do(revokeDeviceCmd("alice", "phone", "lost"), restoreDeviceCmd("alice", "phone"))
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	user, dev, r, ok := RevocationOf(evs[0])
	if !ok || user != "alice" || dev != "phone" || r.Reason != "lost" || r.By != "ops" {
		t.Fatalf("RevocationOf = %q %q %+v %v", user, dev, r, ok)
	}
	if k, v, ok := revocationRecord(evs[0], []byte("ev")); !ok || k != "alice phone" || string(v) != "ev" {
		t.Errorf("revocation record %q %q %v", k, v, ok)
	}
	if k, v, ok := revocationRecord(evs[1], []byte("ev")); !ok || k != "alice phone" || v != nil {
		t.Errorf("restore record %q %q %v, want the tombstone", k, v, ok)
	}
	if _, _, ok := banRecord(evs[0], nil); ok {
		t.Error("a DeviceRevoked has a ban record")
	}
	if u, d, ok := splitRevocationKey(RevocationKey("alice", "phone")); !ok || u != "alice" || d != "phone" {
		t.Errorf("split %q %q %v", u, d, ok)
	}
	if _, _, ok := splitRevocationKey("alice"); ok {
		t.Error("a user's ban key split as a revocation")
	}
}

// TestRefuseRevoked checks which commands a revocation refuses: every
// command of the revoked device, one DEVICE_REVOKED to the sender, but
// not the user's other devices, nor a service's commands, nor the steps no
// device asks for.
func TestRefuseRevoked(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rev := Revocation{Reason: "lost", By: "ops"}
	s := send("alice", g1, "m1")
	svc := send("alice", g1, "m2")
	svc.ServicePrincipal = "ops"
	for _, tc := range []struct {
		name    string
		c       *pb.Command
		revoked bool
		refused bool
	}{
		{"a send of the revoked device", s, true, true},
		{"a per-user command of it", blockCmd("alice", "bob"), true, true},
		{"a device not revoked", s, false, false},
		{"a service's command", svc, true, false},
		{"an expiry", cmd("alice", g1, &pb.ExpireAttachment{}), true, false},
		{"a block's second step", cmd("alice", direct, &pb.DirectBlock{}), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := refuseRevoked(tc.c, rev, tc.revoked, baseOf(tc.c, now))
			if !tc.refused {
				if evs != nil {
					t.Fatalf("refused: %v", summary(evs))
				}
				return
			}
			want := "device alice-phone of alice is revoked: lost"
			if len(evs) != 1 || evs[0].GetCommandRejected().GetCode() != pb.ErrorCode_ERROR_CODE_DEVICE_REVOKED ||
				evs[0].GetCommandId() != tc.c.GetCommandId() || evs[0].GetVersion() != 0 || evs[0].GetCommandRejected().GetMessage() != want {
				t.Fatalf("refusal %v", evs)
			}
		})
	}
}

// TestRevocationsRestore checks revocations survive a restore from the
// changelog: the same revocation again is still no event, a restore is
// the next version, a restored device stays restored.
func TestRevocationsRestore(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	r.do(revokeDeviceCmd("alice", "phone", "lost"), at)
	r.do(revokeDeviceCmd("alice", "tablet", ""), at)
	r.do(restoreDeviceCmd("alice", "tablet"), at)
	r.ps = r.restore(at)
	if got := r.ps.convs[streamAlice].revoked; len(got) != 1 || got["phone"] != "lost" {
		t.Fatalf("alice's restored revocations %v", got)
	}
	evs := r.do(revokeDeviceCmd("alice", "phone", "lost"), at)
	evs = append(evs, r.do(restoreDeviceCmd("alice", "phone"), at)...)
	evs = append(evs, r.do(restoreDeviceCmd("alice", "tablet"), at)...)
	if got := fmt.Sprint(streamSummary(evs)); got != "[uA:"+rejNoChange+"/v0 uA:DeviceRestored@0/v4 uA:"+rejNoChange+"/v0]" {
		t.Fatalf("after restore %s", got)
	}
}
