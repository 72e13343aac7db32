package ingest

import (
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// BanFollowerConfig configures a BanFollower.
type BanFollowerConfig struct {
	Seeds []string
	// Topic is the bans topic (schemas.Bans).
	Topic string
	// KafkaOptions are applied after the follower's own (TLS, SASL).
	KafkaOptions []kgo.Opt
	Logger       *slog.Logger
	// OnChange, when set, is called for every ban read (banned true) and
	// every unban (banned false), in the topic's order, from Run's
	// goroutine. A gateway closes the user's sessions there.
	OnChange func(user string, ban Ban, banned bool)
	// OnRevoke, when set, is called likewise for every device revocation
	// read (revoked true) and every restore (revoked false).
	OnRevoke func(user, device string, r Revocation, revoked bool)
}

// BanFollower holds every standing ban: it reads the compacted bans topic
// from its start (read_committed: a ban is seen exactly when its events
// are) and follows it. The deciders refuse a banned user's commands from
// it, and the gateways its tokens. Memory and start time follow the
// standing bans, not the age of the log.
type BanFollower struct {
	*follower
	cfg  BanFollowerConfig
	bmu  sync.RWMutex
	bans map[string]Ban
	// revoked: user -> device -> its revocation (revoke.go).
	revoked map[string]map[string]Revocation
}

// NewBanFollower connects to Kafka; Run reads.
func NewBanFollower(cfg BanFollowerConfig) (*BanFollower, error) {
	f := &BanFollower{cfg: cfg, bans: map[string]Ban{}, revoked: map[string]map[string]Revocation{}}
	var err error
	f.follower, err = newFollower(followerConfig{Seeds: cfg.Seeds, Topic: cfg.Topic, ClientID: "parley-bans", What: "bans",
		KafkaOptions: cfg.KafkaOptions, Logger: cfg.Logger}, f.apply)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Ban returns user's standing ban (whether it still holds at a time is
// Ban.Holds).
func (f *BanFollower) Ban(user string) (Ban, bool) {
	f.bmu.RLock()
	defer f.bmu.RUnlock()
	b, ok := f.bans[user]
	return b, ok
}

// Revoked returns the revocation of user's device, ok false when it is not
// revoked.
func (f *BanFollower) Revoked(user, device string) (Revocation, bool) {
	f.bmu.RLock()
	defer f.bmu.RUnlock()
	r, ok := f.revoked[user][device]
	return r, ok
}

func (f *BanFollower) apply(r *kgo.Record) {
	if user, device, ok := splitRevocationKey(string(r.Key)); ok {
		f.applyRevocation(r, user, device)
		return
	}
	user := string(r.Key)
	if r.Value == nil {
		f.bmu.Lock()
		_, had := f.bans[user]
		delete(f.bans, user)
		f.bmu.Unlock()
		if had && f.cfg.OnChange != nil {
			f.cfg.OnChange(user, Ban{}, false)
		}
		return
	}
	var ev pb.Event
	if err := proto.Unmarshal(r.Value, &ev); err != nil {
		f.log.Error("bans: undecodable record skipped", "offset", r.Offset, "err", err)
		return
	}
	u, b, ok := BanOf(&ev)
	if !ok || u != user {
		f.log.Error("bans: a record that is no UserBanned of its key skipped", "offset", r.Offset)
		return
	}
	f.bmu.Lock()
	f.bans[user] = b
	f.bmu.Unlock()
	if f.cfg.OnChange != nil {
		f.cfg.OnChange(user, b, true)
	}
}

// applyRevocation applies a record keyed by RevocationKey(user, device).
func (f *BanFollower) applyRevocation(r *kgo.Record, user, device string) {
	if r.Value == nil {
		f.bmu.Lock()
		_, had := f.revoked[user][device]
		delete(f.revoked[user], device)
		if len(f.revoked[user]) == 0 {
			delete(f.revoked, user)
		}
		f.bmu.Unlock()
		if had && f.cfg.OnRevoke != nil {
			f.cfg.OnRevoke(user, device, Revocation{}, false)
		}
		return
	}
	var ev pb.Event
	if err := proto.Unmarshal(r.Value, &ev); err != nil {
		f.log.Error("bans: undecodable record skipped", "offset", r.Offset, "err", err)
		return
	}
	u, d, rev, ok := RevocationOf(&ev)
	if !ok || u != user || d != device {
		f.log.Error("bans: a record that is no DeviceRevoked of its key skipped", "offset", r.Offset)
		return
	}
	f.bmu.Lock()
	m := f.revoked[user]
	if m == nil {
		m = map[string]Revocation{}
		f.revoked[user] = m
	}
	m[device] = rev
	f.bmu.Unlock()
	if f.cfg.OnRevoke != nil {
		f.cfg.OnRevoke(user, device, rev, true)
	}
}
