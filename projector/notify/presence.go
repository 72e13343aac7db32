package notify

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// presence is which devices are connected, read from the gateways'
// presence statements on the signals topic: a device is connected while a
// gateway's statement for it, other than OFFLINE, has not expired (its
// ttl, restated by the gateway every refresh). Nothing is stored: a
// notifier that starts reads the last PresenceWindow of the topic.
//
// It also answers "have the statements published up to a time been read?"
// (caughtUp): the planner asks it before deciding who is connected, so a
// device that went offline before a message was decided is pushed.
type presence struct {
	mu      sync.Mutex
	devices map[string]map[string]map[string]time.Time // user → device → gateway → expires
	read    map[int32]int64                            // partition → next offset to read
	changed chan struct{}                              // closed and replaced when read moves

	// The latest sample of the topic's end offsets, taken at sampledAt;
	// sampling is set while one is being taken.
	sampledAt time.Time
	ends      map[int32]int64
	sampling  chan struct{}
}

func newPresence() *presence {
	return &presence{devices: map[string]map[string]map[string]time.Time{}, read: map[int32]int64{},
		changed: make(chan struct{})}
}

// apply takes one record of the signals topic.
func (p *presence) apply(rec *kgo.Record) {
	sig := &pb.GatewaySignal{}
	ok := proto.Unmarshal(rec.Value, sig) == nil
	p.mu.Lock()
	defer p.mu.Unlock()
	if next := rec.Offset + 1; next > p.read[rec.Partition] {
		p.read[rec.Partition] = next
		close(p.changed)
		p.changed = make(chan struct{})
	}
	pr := sig.GetPresence()
	if !ok || pr == nil {
		return
	}
	expires := sig.GetAt().AsTime().Add(pr.GetTtl().AsDuration())
	for _, d := range pr.GetDevices() {
		devs := p.devices[d.GetUserId()]
		if d.GetState() == pb.PresenceState_PRESENCE_STATE_OFFLINE {
			delete(devs[d.GetDeviceId()], sig.GetGatewayId())
			if len(devs[d.GetDeviceId()]) == 0 {
				delete(devs, d.GetDeviceId())
			}
			if len(devs) == 0 {
				delete(p.devices, d.GetUserId())
			}
			continue
		}
		if devs == nil {
			devs = map[string]map[string]time.Time{}
			p.devices[d.GetUserId()] = devs
		}
		if devs[d.GetDeviceId()] == nil {
			devs[d.GetDeviceId()] = map[string]time.Time{}
		}
		devs[d.GetDeviceId()][sig.GetGatewayId()] = expires
	}
}

// connected reports whether device of user has a live statement at now.
func (p *presence) connected(user, device string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, exp := range p.devices[user][device] {
		if now.Before(exp) {
			return true
		}
	}
	return false
}

// expire drops the statements that expired before now.
func (p *presence) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for user, devs := range p.devices {
		for dev, gws := range devs {
			for gw, exp := range gws {
				if !now.Before(exp) {
					delete(gws, gw)
				}
			}
			if len(gws) == 0 {
				delete(devs, dev)
			}
		}
		if len(devs) == 0 {
			delete(p.devices, user)
		}
	}
}

// caughtUp returns once every statement published before after has been
// read: it takes (or shares) a sample of the topic's end offsets made at
// or after after, and waits until reading has reached it.
func (p *presence) caughtUp(ctx context.Context, adm *kadm.Client, topic string, after time.Time) error {
	ends, err := p.endsSince(ctx, adm, topic, after)
	if err != nil {
		return err
	}
	for {
		p.mu.Lock()
		behind := false
		for part, end := range ends {
			if p.read[part] < end {
				behind = true
				break
			}
		}
		ch := p.changed
		p.mu.Unlock()
		if !behind {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// endsSince returns end offsets sampled at or after after, taking a new
// sample when the last one is older; concurrent callers share one.
func (p *presence) endsSince(ctx context.Context, adm *kadm.Client, topic string, after time.Time) (map[int32]int64, error) {
	for {
		p.mu.Lock()
		if !p.sampledAt.Before(after) && p.ends != nil {
			ends := p.ends
			p.mu.Unlock()
			return ends, nil
		}
		if wait := p.sampling; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		p.sampling = done
		p.mu.Unlock()

		at := time.Now()
		listed, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = listed.Error()
		}
		ends := map[int32]int64{}
		if err == nil {
			listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
		}
		p.mu.Lock()
		if err == nil {
			p.sampledAt, p.ends = at, ends
		}
		p.sampling = nil
		close(done)
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if !at.Before(after) {
			return ends, nil
		}
	}
}
