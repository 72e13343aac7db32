package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumer is one Subscribe call: a franz-go client, a poll loop that hands
// fetched records to one partition worker per partition, and (with a
// consumer group) a committer.
//
// Order is kept per partition (or per key, with MaxInFlight above 1)
// because a partition's records go through a single worker that delivers a
// record only after the previous one (of its key) was acked. Partitions
// progress independently: a slow or nacking partition
// pauses only its own fetching (MaxBufferedRecords), never the poll loop.
//
// Offsets move only on ack: a worker records "acked up to here" (the end
// of the prefix of its records that are all acked) in pending,
// and pending is committed every CommitInterval, after workers of revoked
// partitions have stopped (in OnPartitionsRevoked, before the rebalance may
// proceed) and on shutdown. A commit therefore never runs ahead of acks.
type consumer struct {
	cfg    SubscriberConfig
	topic  string
	log    watermill.LoggerAdapter
	cl     *kgo.Client
	ctx    context.Context // canceled by the Subscribe context or Close
	cancel context.CancelFunc
	out    chan *message.Message

	mu      sync.Mutex
	workers map[int32]*partition
	pending map[int32]kgo.EpochOffset // next offset to commit, per partition

	// commitMu serializes commits with each other, so an older snapshot
	// can never land after a newer one.
	commitMu sync.Mutex
	wg       sync.WaitGroup // partition workers

	// assigned: the group gave this member its assignment (maybe empty)
	// and it has not lost it since (Subscriber.Joined).
	assigned atomic.Bool
}

func (c *consumer) grouped() bool { return c.cfg.ConsumerGroup != "" }

// run is the consumer's life: poll until the context ends, then stop the
// workers, commit what they acked, leave the group and close out.
func (c *consumer) run() {
	defer close(c.out)
	// Workers stopped by a concurrent OnPartitionsRevoked are not in the
	// map below but may still select on out: wait for every one.
	defer c.wg.Wait()
	defer c.cancel()

	var committer sync.WaitGroup
	if c.grouped() {
		committer.Add(1)
		go func() {
			defer committer.Done()
			c.commitLoop()
		}()
	}
	c.poll()

	c.mu.Lock()
	all := make([]int32, 0, len(c.workers))
	for p := range c.workers {
		all = append(all, p)
	}
	c.mu.Unlock()
	c.stopPartitions(all, false)
	committer.Wait()
	if c.grouped() {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CloseTimeout)
		if err := c.commit(ctx); err != nil {
			c.log.Error("Final commit failed; acked messages since the last commit will be delivered again", err, nil)
		}
		cancel()
	}
	// Leaves the group; the OnPartitionsRevoked it triggers finds nothing
	// left to stop or commit.
	c.cl.Close()
	c.log.Debug("Subscription closed", nil)
}

// poll hands fetched records to partition workers until the context ends.
// It never blocks on a worker, so BlockRebalanceOnPoll holds rebalances back
// only for the moment it takes to append to the workers' queues.
func (c *consumer) poll() {
	lastErr := errLimiter{every: 10 * time.Second}
	for {
		fetches := c.cl.PollFetches(c.ctx)
		if c.ctx.Err() != nil || fetches.IsClientClosed() {
			c.cl.AllowRebalance()
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			// franz-go retries what is retriable on its own, and keeps
			// retrying a deleted topic in a tight loop; what reaches us is
			// worth an operator's look but not the end of the subscription,
			// nor a log line per retry.
			if lastErr.allow(p, err) {
				c.log.Error("Fetch failed (repeats of this error in the next 10s are not logged)", err, watermill.LogFields{"partition": p})
			}
		})
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) > 0 {
				c.partition(ftp.Partition).push(ftp.Records)
			}
		})
		c.cl.AllowRebalance()
	}
}

// partition returns the worker of p, starting it on p's first records. With
// BlockRebalanceOnPoll a fetch never carries records of a partition whose
// revocation has already run, so a worker is never restarted for a lost
// partition.
func (c *consumer) partition(p int32) *partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.workers[p]
	if w == nil {
		w = newPartition(c, p)
		c.workers[p] = w
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			w.run()
		}()
		c.log.Debug("Partition started", watermill.LogFields{"partition": p})
	}
	return w
}

// stopPartitions stops the workers of ps and waits for them. Graceful lets a
// message already handed out finish (ack or nack) so that its ack can still
// be committed before the partition moves on; otherwise the message is
// abandoned and its context canceled.
//
// A stopped worker drops its queue while franz-go's fetch position is past
// it: only call this for partitions franz-go itself stops fetching (revoked,
// lost, client closing), whose next owner restarts from the committed offset.
func (c *consumer) stopPartitions(ps []int32, graceful bool) {
	c.mu.Lock()
	var ws []*partition
	for _, p := range ps {
		if w := c.workers[p]; w != nil {
			ws = append(ws, w)
			delete(c.workers, p)
		}
	}
	c.mu.Unlock()
	for _, w := range ws {
		w.stop(graceful)
	}
	for _, w := range ws {
		<-w.done
	}
}

// onRevoked runs in franz-go's group goroutine while the rebalance waits:
// stop the revoked partitions, then commit their acks, so the next owner
// starts right after the last acked message.
func (c *consumer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	// Called at the end of every group session, often with nothing of ours
	// revoked (cooperative rebalancing keeps partitions): then it is only a
	// good moment to commit.
	ps := revoked[c.topic]
	c.stopPartitions(ps, true)
	if err := c.commit(ctx); err != nil {
		c.log.Error("Commit on revoke failed; acked messages since the last commit will be delivered again", err, watermill.LogFields{"partitions": ps})
	}
	if len(ps) > 0 {
		c.log.Debug("Partitions revoked", watermill.LogFields{"partitions": ps})
	}
}

// onAssigned runs at the start of every group session, with what it adds
// (maybe nothing).
func (c *consumer) onAssigned(context.Context, *kgo.Client, map[string][]int32) {
	c.assigned.Store(true)
}

// onLost: the partitions already belong to someone else (session expired,
// fenced), so committing would be refused; drop their acks and move on.
func (c *consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.assigned.Store(false)
	ps := lost[c.topic]
	c.stopPartitions(ps, false)
	c.mu.Lock()
	for _, p := range ps {
		delete(c.pending, p)
	}
	c.mu.Unlock()
	c.log.Info("Partitions lost; unacked and uncommitted messages will be delivered to their new owner", watermill.LogFields{"partitions": ps})
}

// acked records that rec and everything before it in its partition is done.
func (c *consumer) acked(rec *kgo.Record) {
	if !c.grouped() {
		return
	}
	c.mu.Lock()
	c.pending[rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
	c.mu.Unlock()
}

func (c *consumer) commitLoop() {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.CloseTimeout)
			if err := c.commit(ctx); err != nil && c.ctx.Err() == nil {
				c.log.Error("Periodic commit failed; will retry", err, nil)
			}
			cancel()
		}
	}
}

// commit commits pending acks. On failure the offsets of partitions still
// owned are put back for the next attempt, unless a newer ack replaced them.
func (c *consumer) commit(ctx context.Context) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.mu.Lock()
	offsets := c.pending
	c.pending = make(map[int32]kgo.EpochOffset)
	c.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	err := commitSync(ctx, c.cl, c.topic, offsets)
	if err != nil {
		c.mu.Lock()
		for p, eo := range offsets {
			_, newer := c.pending[p]
			_, owned := c.workers[p]
			if !newer && owned {
				c.pending[p] = eo
			}
		}
		c.mu.Unlock()
		return err
	}
	c.log.Trace("Committed", watermill.LogFields{"offsets": fmt.Sprint(offsets)})
	return nil
}

// commitSync commits offsets of one topic and returns the request's error or
// the joined per-partition errors.
func commitSync(ctx context.Context, cl *kgo.Client, topic string, offsets map[int32]kgo.EpochOffset) error {
	var rerr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				rerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						rerr = errors.Join(rerr, fmt.Errorf("partition %d: %w", p.Partition, err))
					}
				}
			}
		})
	if rerr != nil {
		return fmt.Errorf("bus: commit %s: %w", topic, rerr)
	}
	return nil
}

// errLimiter lets the same error of the same partition through once per
// interval.
type errLimiter struct {
	every time.Duration
	seen  map[string]time.Time
}

func (l *errLimiter) allow(p int32, err error) bool {
	if l.seen == nil {
		l.seen = make(map[string]time.Time)
	}
	key := fmt.Sprintf("%d %v", p, err)
	now := time.Now()
	if t, ok := l.seen[key]; ok && now.Sub(t) < l.every {
		return false
	}
	l.seen[key] = now
	return true
}
