package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
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
}

// BanFollower holds every standing ban: it reads the compacted bans topic
// from its start (read_committed: a ban is seen exactly when its events
// are) and follows it. The deciders refuse a banned user's commands from
// it, and the gateways its tokens. Memory and start time follow the
// standing bans, not the age of the log.
type BanFollower struct {
	cfg   BanFollowerConfig
	cl    *kgo.Client
	log   *slog.Logger
	ready chan struct{}

	adm     *kadm.Client
	missing sync.Once // the warning of a topic not created

	mu    sync.RWMutex
	bans  map[string]Ban
	pos   map[int32]int64 // partition -> the next offset to read
	moved chan struct{}   // closed (and replaced) whenever pos moves
}

// NewBanFollower connects to Kafka; Run reads.
func NewBanFollower(cfg BanFollowerConfig) (*BanFollower, error) {
	if len(cfg.Seeds) == 0 || cfg.Topic == "" {
		return nil, errors.New("ingest: BanFollowerConfig needs Seeds and Topic")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Seeds...),
		kgo.ClientID("parley-bans"),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The transaction markers count as read: the end offset at start
		// (the last stable offset) is past the last one.
		kgo.KeepControlRecords(),
	}
	cl, err := kgo.NewClient(append(opts, cfg.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("ingest: ban follower: %w", err)
	}
	return &BanFollower{cfg: cfg, cl: cl, adm: kadm.NewClient(cl), log: cfg.Logger, ready: make(chan struct{}),
		bans: map[string]Ban{}, pos: map[int32]int64{}, moved: make(chan struct{})}, nil
}

// Ready is closed once the follower has read the topic up to where it
// ended when Run started: every ban committed before then is held.
func (f *BanFollower) Ready() <-chan struct{} { return f.ready }

// Ban returns user's standing ban (whether it still holds at a time is
// Ban.Holds).
func (f *BanFollower) Ban(user string) (Ban, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, ok := f.bans[user]
	return b, ok
}

// Run reads the bans topic until ctx ends, then closes the client.
func (f *BanFollower) Run(ctx context.Context) error {
	defer f.cl.Close()
	end, err := f.ends(ctx)
	if err != nil {
		return err
	}
	if f.reached(end) {
		close(f.ready)
	}
	for {
		fs := f.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			f.log.Warn("bans: fetch error", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				f.apply(r)
			}
			f.mu.Lock()
			f.pos[r.Partition] = r.Offset + 1
			f.mu.Unlock()
		})
		f.mu.Lock()
		close(f.moved)
		f.moved = make(chan struct{})
		f.mu.Unlock()
		select {
		case <-f.ready:
		default:
			if f.reached(end) {
				close(f.ready)
			}
		}
	}
}

// reached reports whether the follower has read every partition up to end.
func (f *BanFollower) reached(end map[int32]int64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for p, e := range end {
		if f.pos[p] < e {
			return false
		}
	}
	return true
}

// CatchUp returns once the follower holds every ban committed before it
// was called (it asks the topic's last stable offset and waits until Run
// has read up to it). The decider calls it before each batch, so a command
// appended after a ban's events are visible is refused.
func (f *BanFollower) CatchUp(ctx context.Context) error {
	end, err := f.listEnds(ctx)
	if err != nil {
		return fmt.Errorf("ingest: bans: end offsets: %w", err)
	}
	for {
		f.mu.RLock()
		moved := f.moved
		f.mu.RUnlock()
		if f.reached(end) {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// listEnds lists the topic's last stable offsets. A topic that does not
// exist holds no ban: the decider writes a ban in the transaction of its
// events, which cannot commit without the topic (schemas/provision
// creates it), so no ban was ever decided. The follower still consumes it
// and reads it from its start once it is created.
func (f *BanFollower) listEnds(ctx context.Context) (map[int32]int64, error) {
	e, err := f.adm.ListCommittedOffsets(ctx, f.cfg.Topic)
	if err == nil {
		err = e.Error()
	}
	end := map[int32]int64{}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		f.missing.Do(func() {
			f.log.Warn("bans: the topic does not exist, so no ban was decided; run provision to create it", "topic", f.cfg.Topic)
		})
		return end, nil
	}
	if err != nil {
		return nil, err
	}
	e.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	return end, nil
}

// ends lists the topic's last stable offsets, retrying until it answers.
func (f *BanFollower) ends(ctx context.Context) (map[int32]int64, error) {
	for {
		end, err := f.listEnds(ctx)
		if err == nil {
			return end, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		f.log.Warn("bans: end offsets not listed; retrying", "topic", f.cfg.Topic, "err", err)
		if !waitBackoff(ctx) {
			return nil, ctx.Err()
		}
	}
}

func (f *BanFollower) apply(r *kgo.Record) {
	user := string(r.Key)
	if r.Value == nil {
		f.mu.Lock()
		_, had := f.bans[user]
		delete(f.bans, user)
		f.mu.Unlock()
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
	f.mu.Lock()
	f.bans[user] = b
	f.mu.Unlock()
	if f.cfg.OnChange != nil {
		f.cfg.OnChange(user, b, true)
	}
}

// waitBackoff waits a retry's pause; false when ctx ended first.
func waitBackoff(ctx context.Context) bool {
	t := time.NewTimer(500 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
