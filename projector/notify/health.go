package notify

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/projector/bus"
	"github.com/parley-im/parley/schemas/deploy"
)

// running is what the checks look at of the current Run: nil fields
// before it has connected and after it ended.
type running struct {
	mu        sync.Mutex
	kafka     *kgo.Client
	session   *gocql.Session
	router    *message.Router
	subs      map[string]*bus.Subscriber // handler name → its subscriber
	following bool                       // the signals topic is being read
}

func (r *running) set(f func(*running)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// reset forgets the Run that ended.
func (r *running) reset() {
	r.kafka, r.session, r.router, r.subs, r.following = nil, nil, nil, nil, false
}

// clients are the current Run's Kafka client and Cassandra session, or
// errNotRunning before it has connected to both and after it ended.
func (r *running) clients() (*kgo.Client, *gocql.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kafka == nil || r.session == nil {
		return nil, nil, errNotRunning
	}
	return r.kafka, r.session, nil
}

var errNotRunning = errors.New("not running (connecting to Cassandra or stopped)")

// Checks are what the main's /healthz checks (deploy.ListenOps); all fail
// until Run has connected:
//
//   - kafka: a broker answers.
//   - cassandra: system.local answers.
//   - consumers: the Router runs every handler, the planner's and each
//     provider's deliverer's member has its assignment in its group
//     (maybe empty: more notifiers than partitions), and the signals
//     topic is being read.
func (n *Notifier) Checks() []deploy.Check {
	return n.run.checks("not reading " + n.cfg.SignalsTopic + " yet (presence)")
}

// checks are the three checks of a Run whose side reader (following) is
// what notFollowing says when it is not yet reading.
func (r *running) checks(notFollowing string) []deploy.Check {
	return []deploy.Check{
		{Name: "kafka", Fn: func(ctx context.Context) error {
			cl, _, err := r.clients()
			if err != nil {
				return err
			}
			return cl.Ping(ctx)
		}},
		{Name: "cassandra", Fn: func(ctx context.Context) error {
			_, s, err := r.clients()
			if err != nil {
				return err
			}
			var v string
			return s.Query("SELECT release_version FROM system.local").ScanContext(ctx, &v)
		}},
		{Name: "consumers", Fn: func(context.Context) error { return r.consumers(notFollowing) }},
	}
}

func (r *running) consumers(notFollowing string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.router == nil {
		return errNotRunning
	}
	if !r.router.IsRunning() || r.router.IsClosed() {
		return errors.New("the router's handlers are not running")
	}
	var why []string
	for _, name := range slices.Sorted(maps.Keys(r.subs)) {
		if err := r.subs[name].Joined(); err != nil {
			why = append(why, name+": "+err.Error())
		}
	}
	if !r.following {
		why = append(why, notFollowing)
	}
	if len(why) > 0 {
		return errors.New(strings.Join(why, "; "))
	}
	return nil
}
