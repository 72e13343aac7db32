package notify

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/oklog/ulid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/projector/bus"
	"github.com/parley-im/parley/projector/push"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Notifier is the push notifier (package doc).
type Notifier struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	senders  map[pb.PushProvider]push.Sender
	presence *presence
	run      running // what Checks look at
}

// New checks cfg and returns a Notifier; Run starts it.
func New(cfg Config) (*Notifier, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	n := &Notifier{cfg: cfg, log: cfg.Logger.With("component", "notifier"), m: m,
		senders: map[pb.PushProvider]push.Sender{}, presence: newPresence()}
	for _, s := range cfg.Senders {
		n.senders[s.Provider()] = s
	}
	return n, nil
}

// The event types the planner acts on; it acks every other at once.
var planned = map[string]bool{"MessageSent": true, "ReadUpTo": true, "MessageRecalled": true}

// How many records of one partition each stage handles at once. The
// records of one key go one at a time, in the log's order (bus
// MaxInFlight): the planner plans one conversation's events in order (so a
// conversation's pushes of one user are appended in the events' order),
// and a deliverer sends one user's pushes in the order they were planned.
const (
	planInFlight = 8
	sendInFlight = 16
)

// checkpointPoll is how often the projector's checkpoints are read while
// the planner waits for them.
const checkpointPoll = 5 * time.Millisecond

// Run connects (retrying Cassandra until it answers), then plans and
// delivers pushes until ctx is canceled. Pushes in flight are abandoned,
// their offsets uncommitted: they are planned or sent again by whoever
// runs next (README.md, "What a crash leaves behind").
func (n *Notifier) Run(ctx context.Context) error {
	sess, err := connect(ctx, n.cfg.Cassandra, n.log)
	if err != nil {
		return err
	}
	defer sess.Close()
	n.run.set(func(r *running) { r.session = sess })
	defer n.run.set((*running).reset)
	tables, err := projector.NewTables(sess, n.cfg.Keyspace)
	if err != nil {
		return err
	}
	kopts := append([]kgo.Opt{kgo.SeedBrokers(n.cfg.Seeds...), kgo.ClientID("parley-notifier")}, n.cfg.KafkaOptions...)
	admCl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("notify: kafka: %w", err)
	}
	defer admCl.Close()
	n.run.set(func(r *running) { r.kafka = admCl })
	adm := kadm.NewClient(admCl)
	appender, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: n.cfg.Seeds, Topic: n.cfg.CommandsTopic,
		ClientID: "parley-notifier-commands", Extra: n.cfg.KafkaOptions})
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	defer func() { _ = appender.Close(context.Background()) }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	signalsDone := make(chan error, 1)
	go func() { signalsDone <- n.readSignals(ctx, adm, kopts) }()
	proj := newProjected(func(ctx context.Context) (map[int32]int64, error) { return tables.Checkpoints(ctx, n.cfg.Projector) }, checkpointPoll)
	go proj.run(ctx, func(err error) { n.log.Warn("read the projector's checkpoints", "err", err) })

	st, err := newStages(ctx, n.log, n.cfg.Seeds, n.cfg.KafkaOptions, "parley-notifier", n.cfg.DeadLetterTopic)
	if err != nil {
		return err
	}
	defer st.close()

	providers := map[pb.PushProvider]bool{}
	for p := range n.senders {
		providers[p] = true
	}
	pl := &planner{views: tables, preview: n.cfg.Preview, connected: n.presence.connected, providers: providers,
		skipped: func(reason string) { n.m.skipped.WithLabelValues(reason).Inc() }}
	start := bus.StartLatest
	if n.cfg.FromStart {
		start = bus.StartEarliest
	}
	if err := st.addPlan("plan", n.cfg.EventsTopic, n.cfg.Group, start, planInFlight, n.cfg.RetryInitial,
		n.planHandler(pl, proj, adm, st.pub)); err != nil {
		return err
	}
	for prov, s := range n.senders {
		name := schemas.ProviderName(prov)
		if err := st.addSend("push-"+name, n.cfg.PushTopic, n.cfg.Group+"-"+name, sendInFlight,
			retries{n.cfg.MaxRetries, n.cfg.RetryInitial, n.cfg.RetryMax}, func() { n.m.sent.WithLabelValues(name, "dead").Inc() },
			n.deliverHandler(s, appender), []message.HandlerMiddleware{onlyProvider(name)},
			[]message.HandlerMiddleware{throttle(rate.NewLimiter(rate.Limit(n.cfg.Rate), max(1, n.cfg.Rate/10)))}); err != nil {
			return err
		}
	}
	n.run.set(func(r *running) { r.router, r.subs = st.router, st.subs })
	return st.run(cancel, signalsDone)
}

// connect opens the Cassandra session, retrying until ctx ends.
func connect(ctx context.Context, cass deploy.Cassandra, log *slog.Logger) (*gocql.Session, error) {
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		sess, err := cass.Session()
		if err == nil {
			return sess, nil
		}
		log.Warn("cannot reach Cassandra; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// permanent marks an error that retrying cannot mend.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// onlyProvider acks at once the records of the push topic that are not
// name's, before they reach the throttle.
func onlyProvider(name string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if msg.Metadata.Get(schemas.HeaderPushProvider) != name {
				return nil, nil
			}
			return h(msg)
		}
	}
}

// throttle holds each push until l allows it: a token bucket per provider
// (Rate per second, bursts of a tenth of a second's worth), shared by the
// partitions its deliverer reads. It waits; it drops nothing.
func throttle(l *rate.Limiter) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if err := l.Wait(msg.Context()); err != nil {
				return nil, err
			}
			return h(msg)
		}
	}
}

// planHandler plans the pushes of one event and appends them to the push
// topic; the event is acked (its offset committed later) only after they
// all are durable.
func (n *Notifier) planHandler(pl *planner, proj *projected, adm *kadm.Client, pub message.Publisher) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		if !planned[msg.Metadata.Get(schemas.HeaderType)] {
			return nil
		}
		ev := &pb.Event{}
		if err := proto.Unmarshal(msg.Payload, ev); err != nil {
			return permanent{fmt.Errorf("decode event: %w", err)}
		}
		part, off, err := position(msg)
		if err != nil {
			return err
		}
		ctx := msg.Context()
		start := time.Now()
		if err := proj.wait(ctx, part, off); err != nil {
			return err
		}
		if err := n.presence.caughtUp(ctx, adm, n.cfg.SignalsTopic, ev.GetOccurredAt().AsTime()); err != nil {
			return fmt.Errorf("read presence: %w", err)
		}
		n.m.planDelay.Observe(time.Since(start).Seconds())
		notes, err := pl.plan(ctx, ev, time.Now())
		if err != nil || len(notes) == 0 {
			return err
		}
		out := make([]*message.Message, 0, len(notes))
		for _, note := range notes {
			v, err := proto.Marshal(note)
			if err != nil {
				return permanent{err}
			}
			m := message.NewMessage(note.GetId(), v)
			prov := schemas.ProviderName(note.GetTarget().GetProvider())
			m.Metadata.Set(bus.MetaPartitionKey, note.GetUserId())
			m.Metadata.Set(schemas.HeaderPushProvider, prov)
			out = append(out, m)
		}
		if err := pub.Publish(n.cfg.PushTopic, out...); err != nil {
			return err
		}
		for _, note := range notes {
			n.m.planned.WithLabelValues(schemas.ProviderName(note.GetTarget().GetProvider()), kindName(note.GetKind())).Inc()
		}
		return nil
	}
}

func kindName(k pb.PushNotificationKind) string {
	if k == pb.PushNotificationKind_PUSH_NOTIFICATION_KIND_CLEAR {
		return "clear"
	}
	return "message"
}

// deliverHandler sends one planned push with s. Accepted, or a token the
// provider calls invalid (unregistered by a command first), acks it; a
// temporary failure is tried again (Retry middleware), honouring the
// provider's Retry-After; a refusal is permanent (dead letter).
func (n *Notifier) deliverHandler(s push.Sender, appender *ingest.Appender) message.NoPublishHandlerFunc {
	name := schemas.ProviderName(s.Provider())
	return func(msg *message.Message) error {
		pn := &pb.PushNotification{}
		if err := proto.Unmarshal(msg.Payload, pn); err != nil {
			return permanent{fmt.Errorf("decode push: %w", err)}
		}
		ctx := msg.Context()
		err := s.Send(ctx, notificationOf(pn))
		var retry *push.RetryError
		switch {
		case err == nil:
			n.m.sent.WithLabelValues(name, "accepted").Inc()
			if at := pn.GetEventAt(); at != nil {
				n.m.latency.WithLabelValues(name).Observe(time.Since(at.AsTime()).Seconds())
			}
			return nil
		case errors.Is(err, push.ErrInvalidToken):
			if err := n.unregister(ctx, appender, pn); err != nil {
				return err
			}
			n.m.sent.WithLabelValues(name, "invalid_token").Inc()
			n.log.Info("push target unregistered: the provider calls it invalid", "provider", name,
				"user", pn.GetUserId(), "device", pn.GetTarget().GetDeviceId())
			return nil
		case errors.As(err, &retry):
			n.m.sent.WithLabelValues(name, "retry").Inc()
			if wait := min(retry.After, n.cfg.RetryMax); wait > 0 {
				t := time.NewTimer(wait)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
			return err
		case ctx.Err() != nil:
			return err
		}
		var refused *push.RefusedError
		if errors.As(err, &refused) {
			n.m.sent.WithLabelValues(name, "refused").Inc()
			return permanent{err}
		}
		n.m.sent.WithLabelValues(name, "retry").Inc()
		return err
	}
}

// unregister appends the INVALID_TOKEN unregistration of pn's target to the
// user's stream; the decider removes the target if the device still has
// that token.
func (n *Notifier) unregister(ctx context.Context, appender *ingest.Appender, pn *pb.PushNotification) error {
	now := time.Now()
	cmd := &pb.Command{CommandId: ulid.MustNew(ulid.Timestamp(now), rand.Reader).String(), UserId: pn.GetUserId(),
		DeviceId: pn.GetTarget().GetDeviceId(), ConversationId: schemas.UserStreamID(pn.GetUserId()), ReceivedAt: timestamppb.New(now),
		Body: &pb.Command_UnregisterPush{UnregisterPush: &pb.UnregisterPushTarget{DeviceId: pn.GetTarget().GetDeviceId(),
			Reason: pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN, Token: schemas.PushAddress(pn.GetTarget())}}}
	v, err := proto.Marshal(cmd)
	if err != nil {
		return permanent{err}
	}
	_, err = appender.AppendSync(ctx, ingest.Record{Key: cmd.GetConversationId(), Type: schemas.CommandType(cmd), Value: v})
	if err != nil {
		return fmt.Errorf("append the unregistration: %w", err)
	}
	return nil
}

// notificationOf is the provider clients' form of a planned push.
func notificationOf(pn *pb.PushNotification) *push.Notification {
	kind := push.KindMessage
	if pn.GetKind() == pb.PushNotificationKind_PUSH_NOTIFICATION_KIND_CLEAR {
		kind = push.KindClear
	}
	return &push.Notification{ID: pn.GetId(), Target: pn.GetTarget(), UserID: pn.GetUserId(), ConversationID: pn.GetConversationId(),
		Seq: pn.GetSeq(), Kind: kind, Title: pn.GetTitle(), Body: pn.GetBody(), Badge: pn.GetBadge(), Collapse: pn.GetCollapse(),
		Data: map[string]string{"version": strconv.FormatInt(pn.GetVersion(), 10)}}
}

// readSignals follows the signals topic into n.presence from
// PresenceWindow back, until ctx ends.
func (n *Notifier) readSignals(ctx context.Context, adm *kadm.Client, kopts []kgo.Opt) error {
	var start kadm.ListedOffsets
	for {
		var err error
		start, err = adm.ListOffsetsAfterMilli(ctx, time.Now().Add(-n.cfg.PresenceWindow).UnixMilli(), n.cfg.SignalsTopic)
		if err == nil {
			err = start.Error()
		}
		if err == nil {
			break
		}
		n.log.Warn("cannot list the signals topic's offsets; retrying (pushes wait)", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	offsets := map[int32]kgo.Offset{}
	n.presence.mu.Lock()
	start.Each(func(o kadm.ListedOffset) {
		offsets[o.Partition] = kgo.NewOffset().At(o.Offset)
		n.presence.read[o.Partition] = o.Offset
	})
	n.presence.mu.Unlock()
	cl, err := kgo.NewClient(append(kopts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{n.cfg.SignalsTopic: offsets}),
		kgo.FetchMaxWait(500*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("notify: signals consumer: %w", err)
	}
	defer cl.Close()
	n.run.set(func(r *running) { r.following = true })
	defer n.run.set(func(r *running) { r.following = false })
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			n.log.Warn("read signals", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(n.presence.apply)
		select {
		case now := <-sweep.C:
			n.presence.expire(now)
		default:
		}
	}
}
