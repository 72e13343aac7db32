package deploy

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Membership is how a process takes part in its consumer group.
//
// After a crash, a restarted member gets its partitions back only once the
// group has dropped the dead member: after SessionTimeout without heartbeats
// (franz-go's default is 45 s, which is what a SIGKILLed decider or projector
// used to cost). Two settings bound that:
//   - InstanceID (static membership, KIP-345): a restarted process that joins
//     with the same id takes over the dead member's place and its assignment
//     at once, without waiting for the session to time out. The price: a
//     static member does not leave the group when it stops, so when an
//     instance goes away for good (scale-down), its partitions wait one
//     SessionTimeout before they move to the others.
//   - SessionTimeout (default 6 s, the broker's minimum by default,
//     group.min.session.timeout.ms): how long a member that stopped
//     heartbeating keeps its partitions. Shorter means faster failover of a
//     process that does not come back; too short and a long GC pause or a
//     loaded machine makes a live member lose its partitions (a rebalance, no
//     loss: the work is redone from committed offsets).
type Membership struct {
	// InstanceID, when set, makes the member static. Unique per process in
	// the group, stable across its restarts.
	InstanceID string
	// SessionTimeout (default DefaultSessionTimeout) and HeartbeatInterval
	// (default a sixth of it).
	SessionTimeout, HeartbeatInterval time.Duration
}

// DefaultSessionTimeout is the session timeout of every Parley consumer
// group unless configured otherwise.
const DefaultSessionTimeout = 6 * time.Second

// Defaults fills the zero fields.
func (m Membership) Defaults() Membership {
	if m.SessionTimeout == 0 {
		m.SessionTimeout = DefaultSessionTimeout
	}
	if m.HeartbeatInterval == 0 {
		m.HeartbeatInterval = max(m.SessionTimeout/6, 100*time.Millisecond)
	}
	return m
}

// Validate reports settings Kafka would refuse or that cannot work.
func (m Membership) Validate() error {
	m = m.Defaults()
	if m.SessionTimeout < time.Second {
		return fmt.Errorf("deploy: session timeout %s is below 1s", m.SessionTimeout)
	}
	if m.HeartbeatInterval >= m.SessionTimeout {
		return fmt.Errorf("deploy: heartbeat interval %s must be below the session timeout %s", m.HeartbeatInterval, m.SessionTimeout)
	}
	if len(m.InstanceID) > 249 {
		return fmt.Errorf("deploy: instance id longer than 249 bytes")
	}
	return nil
}

// KafkaOptions are the franz-go options of a group member with these
// settings.
func (m Membership) KafkaOptions() []kgo.Opt {
	m = m.Defaults()
	opts := []kgo.Opt{kgo.SessionTimeout(m.SessionTimeout), kgo.HeartbeatInterval(m.HeartbeatInterval)}
	if m.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(m.InstanceID))
	}
	return opts
}
