package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// provisioner creates topics on first use when Topics.AutoCreate is set and
// remembers which ones it has seen, so the hot path costs one map lookup.
type provisioner struct {
	cfg   Topics
	cl    *kgo.Client
	adm   *kadm.Client
	ready sync.Map // topic name → struct{}
}

func newProvisioner(cfg Topics, cl *kgo.Client) *provisioner {
	return &provisioner{cfg: cfg, cl: cl, adm: kadm.NewClient(cl)}
}

// ensure creates topic unless it exists and returns once metadata shows
// every partition with a leader, so a producer or consumer started next does
// not race the controller. It does nothing when AutoCreate is off.
func (p *provisioner) ensure(ctx context.Context, topic string) error {
	if !p.cfg.AutoCreate {
		return nil
	}
	if _, ok := p.ready.Load(topic); ok {
		return nil
	}
	// No existence check first: CreateTopics answers that too, and a
	// metadata lookup of a missing topic would be cached by the client for
	// MetadataMinAge (5s), delaying the wait below.
	res, err := p.adm.CreateTopic(ctx, p.cfg.Partitions, p.cfg.ReplicationFactor, nil, topic)
	if err == nil {
		err = res.Err
	}
	// Someone else (another subscriber, another process) won the race or
	// created it long ago: the topic exists, which is all we want.
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("bus: create topic %s: %w", topic, err)
	}
	for {
		if p.led(ctx, topic) {
			p.ready.Store(topic, struct{}{})
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bus: topic %s has no leader yet: %w", topic, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// led asks a broker directly (kadm's listing may answer from the client's
// metadata cache) whether every partition of topic has a leader.
func (p *provisioner) led(ctx context.Context, topic string) bool {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, p.cl)
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) == 0 {
		return false
	}
	for _, part := range resp.Topics[0].Partitions {
		if part.ErrorCode != 0 || part.Leader < 0 {
			return false
		}
	}
	return true
}
