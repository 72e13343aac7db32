package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
)

// provisioner creates topics on first use when Topics.AutoCreate is set and
// remembers which ones it has seen, so the hot path costs one map lookup.
type provisioner struct {
	cfg   Topics
	cl    *kgo.Client
	ready sync.Map // topic name → struct{}
}

func newProvisioner(cfg Topics, cl *kgo.Client) *provisioner {
	return &provisioner{cfg: cfg, cl: cl}
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
	err := ingest.Provision(ctx, p.cl, p.cfg.ReplicationFactor, schemas.Topic{Name: topic, Partitions: p.cfg.Partitions, Cleanup: "delete"})
	// A topic that already exists with another partition count is fine here:
	// the bus only needs it to exist with leaders, which a mismatch implies.
	if err != nil && !errors.Is(err, ingest.ErrTopicMismatch) {
		return fmt.Errorf("bus: create topic %s: %w", topic, err)
	}
	p.ready.Store(topic, struct{}{})
	return nil
}
