package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-im/parley/schemas/deploy"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// followerConfig configures a follower.
type followerConfig struct {
	Seeds        []string
	Topic        string
	ClientID     string
	What         string // names the topic's content in logs and errors, e.g. "bans"
	KafkaOptions []kgo.Opt
	Logger       *slog.Logger
}

// follower reads a compacted topic from its start and follows it
// (read_committed: a record is seen exactly when the events of its
// transaction are), handing each record to apply in the topic's order from
// Run's goroutine. BanFollower and WebhookFollower hold what they read.
type follower struct {
	fc    followerConfig
	cl    *kgo.Client
	adm   *kadm.Client
	log   *slog.Logger
	apply func(*kgo.Record)
	ready chan struct{}

	missing sync.Once // the warning of a topic not created

	mu    sync.RWMutex
	pos   map[int32]int64 // partition -> the next offset to read
	moved chan struct{}   // closed (and replaced) whenever pos moves
}

func newFollower(fc followerConfig, apply func(*kgo.Record)) (*follower, error) {
	if len(fc.Seeds) == 0 || fc.Topic == "" {
		return nil, fmt.Errorf("ingest: the %s follower needs Seeds and Topic", fc.What)
	}
	if fc.Logger == nil {
		fc.Logger = slog.New(slog.DiscardHandler)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(fc.Seeds...),
		kgo.ClientID(fc.ClientID),
		kgo.ConsumeTopics(fc.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The transaction markers count as read: the end offset at start
		// (the last stable offset) is past the last one.
		kgo.KeepControlRecords(),
	}
	cl, err := kgo.NewClient(append(opts, fc.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("ingest: %s follower: %w", fc.What, err)
	}
	return &follower{fc: fc, cl: cl, adm: kadm.NewClient(cl), log: fc.Logger, apply: apply, ready: make(chan struct{}),
		pos: map[int32]int64{}, moved: make(chan struct{})}, nil
}

// Ready is closed once the follower has read the topic up to where it
// ended when Run started: every record committed before then is held.
func (f *follower) Ready() <-chan struct{} { return f.ready }

// Run reads the topic until ctx ends, then closes the client.
func (f *follower) Run(ctx context.Context) error {
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
			if deploy.ReportKafkaFetch(f.log, f.cl, t, err) {
				return
			}
			f.log.Warn(f.fc.What+": fetch error", "topic", t, "partition", p, "err", err)
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
func (f *follower) reached(end map[int32]int64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for p, e := range end {
		if f.pos[p] < e {
			return false
		}
	}
	return true
}

// CatchUp returns once the follower holds every record committed before it
// was called (it asks the topic's last stable offset and waits until Run
// has read up to it). The decider calls the bans follower's before each
// batch, so a command appended after a ban's events are visible is
// refused; the webhook dispatcher the webhooks follower's before it plans.
func (f *follower) CatchUp(ctx context.Context) error {
	end, err := f.listEnds(ctx)
	if err != nil {
		return fmt.Errorf("ingest: %s: end offsets: %w", f.fc.What, err)
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
// exist holds nothing: the decider writes its records in the transaction
// of their events, which cannot commit without the topic (schemas/provision
// creates it), so none was ever decided. The follower still consumes it
// and reads it from its start once it is created.
func (f *follower) listEnds(ctx context.Context) (map[int32]int64, error) {
	e, err := f.adm.ListCommittedOffsets(ctx, f.fc.Topic)
	if err == nil {
		err = e.Error()
	}
	end := map[int32]int64{}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		f.missing.Do(func() {
			f.log.Warn(f.fc.What+": the topic does not exist, so nothing was decided; run provision to create it", "topic", f.fc.Topic)
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
func (f *follower) ends(ctx context.Context) (map[int32]int64, error) {
	for {
		end, err := f.listEnds(ctx)
		if err == nil {
			return end, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !deploy.ReportKafkaFetch(f.log, f.cl, f.fc.Topic, err) {
			f.log.Warn(f.fc.What+": end offsets not listed; retrying", "topic", f.fc.Topic, "err", err)
		}
		if !waitBackoff(ctx) {
			return nil, ctx.Err()
		}
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
