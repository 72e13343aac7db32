package replay

import (
	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The log check's rules of bans (on the banned user's stream, its actor):
//   - a UserBanned or UserUnbanned names the service that decided it
//     (actor_service): only a service bans;
//   - a UserBanned changes the standing ban (a first ban, or another end
//     or reason): the same ban again is no event;
//   - a UserUnbanned lifts a standing ban.
//
// And of device revocations (on the device's user's stream):
//   - a DeviceRevoked or DeviceRestored names the service that decided it;
//   - a DeviceRevoked revokes a device not revoked so already (another
//     reason may replace the first);
//   - a DeviceRestored restores a revoked device.
//
// And of webhooks (on the owner's stream, its actor):
//   - a WebhookCreated or WebhookDeleted names the service that decided it;
//   - a WebhookCreated creates a webhook id the user does not hold;
//   - a WebhookDeleted deletes one the user holds.
//
// What a ban refuses is not checked here: a command is refused once its
// decider holds the ban, which the log does not record.
func (c *logCheck) banEvent(at where, u *userModel, ev *pb.Event) {
	if ev.GetActorService() == "" {
		c.problem("%s: a ban without actor_service (only a service bans)", at)
	}
	switch b := ev.GetBody().(type) {
	case *pb.Event_UserBanned:
		if u.ban != nil && proto.Equal(u.ban, b.UserBanned) {
			c.problem("%s: %s is banned so already (a ban only when it changes)", at, ev.GetActorUserId())
		}
		u.ban = b.UserBanned
	case *pb.Event_UserUnbanned:
		if u.ban == nil {
			c.problem("%s: %s is not banned (an unban only of a banned user)", at, ev.GetActorUserId())
		}
		u.ban = nil
	}
}

func (c *logCheck) webhookEvent(at where, u *userModel, ev *pb.Event) {
	if ev.GetActorService() == "" {
		c.problem("%s: a webhook change without actor_service (only a service manages webhooks)", at)
	}
	if u.webhooks == nil {
		u.webhooks = map[string]bool{}
	}
	switch b := ev.GetBody().(type) {
	case *pb.Event_WebhookCreated:
		id := b.WebhookCreated.GetWebhook().GetWebhookId()
		if u.webhooks[id] {
			c.problem("%s: %s holds webhook %s already", at, ev.GetActorUserId(), id)
		}
		u.webhooks[id] = true
	case *pb.Event_WebhookDeleted:
		id := b.WebhookDeleted.GetWebhookId()
		if !u.webhooks[id] {
			c.problem("%s: %s holds no webhook %s to delete", at, ev.GetActorUserId(), id)
		}
		delete(u.webhooks, id)
	}
}

func (c *logCheck) revocationEvent(at where, u *userModel, ev *pb.Event) {
	if ev.GetActorService() == "" {
		c.problem("%s: a device revocation without actor_service (only a service revokes)", at)
	}
	if u.revoked == nil {
		u.revoked = map[string]string{}
	}
	switch b := ev.GetBody().(type) {
	case *pb.Event_DeviceRevoked:
		dev := b.DeviceRevoked.GetDeviceId()
		if r, ok := u.revoked[dev]; ok && r == b.DeviceRevoked.GetReason() {
			c.problem("%s: device %s of %s is revoked so already (a revocation only when it changes)", at, dev, ev.GetActorUserId())
		}
		u.revoked[dev] = b.DeviceRevoked.GetReason()
	case *pb.Event_DeviceRestored:
		dev := b.DeviceRestored.GetDeviceId()
		if _, ok := u.revoked[dev]; !ok {
			c.problem("%s: device %s of %s is not revoked (a restore only of a revoked device)", at, dev, ev.GetActorUserId())
		}
		delete(u.revoked, dev)
	}
}
