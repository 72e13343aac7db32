package ingest

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/parley-im/parley/schemas/deploy"
)

// Health is what a decider's /healthz checks (deploy.ListenOps):
//
//   - kafka: a broker answers.
//   - partitions: the group is stable and this instance owns partitions of
//     the commands topic in it — or owns none because every partition is
//     owned by another member (more deciders than partitions: a standby is
//     healthy). Before its first assignment, during a rebalance, and when
//     the group is not what this instance joined, it is not.
//   - lag: the commands waiting on this instance's partitions (end offset
//     minus the group's committed offset) are at most MaxHealthyLag.
//
// The group's view comes from the broker (a DescribeGroups and offset
// lookup per request), not from this process's own bookkeeping.
func (d *Decider) Health() []deploy.Check {
	return []deploy.Check{
		{Name: "kafka", Fn: func(ctx context.Context) error { return d.sess.Client().Ping(ctx) }},
		{Name: "partitions", Fn: func(ctx context.Context) error { _, err := d.owned(ctx); return err }},
		{Name: "lag", Fn: d.checkLag},
	}
}

// ownership is this instance's share of the group, as the broker sees it.
type ownership struct {
	partitions []int32
	lag        kadm.GroupLag
}

func (d *Decider) owned(ctx context.Context) (ownership, error) {
	member, _ := d.sess.Client().GroupMetadata()
	if member == "" {
		return ownership{}, fmt.Errorf("not yet a member of group %s", d.cfg.Group)
	}
	adm := kadm.NewClient(d.sess.Client())
	lags, err := adm.Lag(ctx, d.cfg.Group)
	if err != nil {
		return ownership{}, fmt.Errorf("group %s: %w", d.cfg.Group, err)
	}
	g, ok := lags[d.cfg.Group]
	if !ok {
		return ownership{}, fmt.Errorf("group %s not described", d.cfg.Group)
	}
	if err := g.Error(); err != nil {
		return ownership{}, fmt.Errorf("group %s: %w", d.cfg.Group, err)
	}
	if g.State != "Stable" {
		return ownership{}, fmt.Errorf("group %s is %s, not Stable (rebalancing)", d.cfg.Group, g.State)
	}
	var o ownership
	o.lag = g.Lag
	found, assigned := false, 0
	for _, m := range g.Members {
		c, _ := m.Assigned.AsConsumer()
		var ps []int32
		if c != nil {
			for _, t := range c.Topics {
				if t.Topic == d.cfg.CommandsTopic {
					ps = append(ps, t.Partitions...)
				}
			}
		}
		assigned += len(ps)
		if m.MemberID == member {
			found = true
			o.partitions = ps
		}
	}
	if !found {
		return ownership{}, fmt.Errorf("member %s is not in group %s (expired or replaced)", member, d.cfg.Group)
	}
	if len(o.partitions) > 0 {
		slices.Sort(o.partitions)
		return o, nil
	}
	// No partition here: healthy only as a standby of a fully owned topic.
	ends, err := adm.ListEndOffsets(ctx, d.cfg.CommandsTopic)
	if err != nil {
		return ownership{}, fmt.Errorf("partitions of %s: %w", d.cfg.CommandsTopic, err)
	}
	total := len(ends[d.cfg.CommandsTopic])
	if total == 0 || assigned < total {
		return ownership{}, fmt.Errorf("no partitions assigned to this instance, and %d of %d partitions of %s are owned by others",
			assigned, total, d.cfg.CommandsTopic)
	}
	return o, nil
}

func (d *Decider) checkLag(ctx context.Context) error {
	o, err := d.owned(ctx)
	if err != nil {
		return err
	}
	var total int64
	for _, p := range o.partitions {
		l, ok := o.lag.Lookup(d.cfg.CommandsTopic, p)
		if !ok {
			return fmt.Errorf("no lag for %s/%d", d.cfg.CommandsTopic, p)
		}
		if l.Err != nil {
			return fmt.Errorf("lag of %s/%d: %w", d.cfg.CommandsTopic, p, l.Err)
		}
		total += l.Lag
	}
	if total > d.cfg.MaxHealthyLag {
		return fmt.Errorf("%d commands wait on partitions %v, more than %d", total, o.partitions, d.cfg.MaxHealthyLag)
	}
	return nil
}
