package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
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

// Dispatcher is the webhook dispatcher (README.md, "Webhooks"): it plans
// one delivery per (webhook, matching event) from parley.events and posts
// each, signed, to its webhook's URL.
type Dispatcher struct {
	cfg    DispatcherConfig
	log    *slog.Logger
	m      *webhookMetrics
	poster *push.Poster

	hooks  *ingest.WebhookFollower
	follow sync.Once
	// followed receives the follower's end (once it runs).
	followed chan error
	// caught is when the last catch-up of hooks began: every webhook
	// committed before then is held.
	cmu    sync.Mutex
	caught time.Time

	run running // what Checks look at
}

// Checks are what the main's /healthz checks (deploy.ListenOps); all fail
// until Run has connected: kafka (a broker answers), cassandra
// (system.local answers), consumers (the Router runs both handlers, each
// one's member has its assignment in its group, and the webhooks topic has
// been read to where it ended at start).
func (d *Dispatcher) Checks() []deploy.Check {
	return d.run.checks("the webhooks (" + d.cfg.WebhooksTopic + ") are not read to their end yet")
}

// NewDispatcher checks cfg and connects the webhooks follower; Run starts
// it.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newWebhookMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p, err := push.NewPoster(cfg.Poster)
	if err != nil {
		return nil, err
	}
	hooks, err := ingest.NewWebhookFollower(ingest.WebhookFollowerConfig{Seeds: cfg.Seeds, Topic: cfg.WebhooksTopic,
		KafkaOptions: cfg.KafkaOptions, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return &Dispatcher{cfg: cfg, log: cfg.Logger.With("component", "webhooks"), m: m, poster: p, hooks: hooks,
		followed: make(chan error, 1)}, nil
}

// Run connects (retrying Cassandra until it answers), then plans and sends
// deliveries until ctx is canceled. Deliveries in flight are abandoned,
// their offsets uncommitted: they are planned or sent again by whoever runs
// next (README.md, "What a crash leaves behind").
func (d *Dispatcher) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.startFollowing(ctx)
	followed := d.followed
	sess, err := connect(ctx, d.cfg.Cassandra, d.log)
	if err != nil {
		return err
	}
	defer sess.Close()
	d.run.set(func(r *running) { r.session = sess })
	defer d.run.set((*running).reset)
	pingCl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(d.cfg.Seeds...), kgo.ClientID("parley-webhooks")}, d.cfg.KafkaOptions...)...)
	if err != nil {
		return fmt.Errorf("webhooks: kafka: %w", err)
	}
	defer pingCl.Close()
	d.run.set(func(r *running) { r.kafka = pingCl })
	tables, err := projector.NewTables(sess, d.cfg.Keyspace)
	if err != nil {
		return err
	}
	select {
	case <-d.hooks.Ready():
		d.run.set(func(r *running) { r.following = true })
	case err := <-followed:
		return err
	case <-ctx.Done():
		return nil
	}
	proj := newProjected(func(ctx context.Context) (map[int32]int64, error) { return tables.Checkpoints(ctx, d.cfg.Projector) }, checkpointPoll)
	go proj.run(ctx, func(err error) { d.log.Warn("read the projector's checkpoints", "err", err) })

	st, err := newStages(ctx, d.log, d.cfg.Seeds, d.cfg.KafkaOptions, "parley-webhooks", d.cfg.DeadLetterTopic)
	if err != nil {
		return err
	}
	defer st.close()
	start := bus.StartLatest
	if d.cfg.FromStart {
		start = bus.StartEarliest
	}
	pl := &hookPlanner{member: func(ctx context.Context, part int32, off int64, conv, user string) (bool, error) {
		if err := proj.wait(ctx, part, off); err != nil {
			return false, err
		}
		return tables.IsMember(ctx, conv, user)
	}}
	// The planner's key is the conversation, the sender's the webhook: a
	// conversation's events are planned in order, a webhook's deliveries
	// sent in order (bus MaxInFlight).
	if err := st.addPlan("plan", d.cfg.EventsTopic, d.cfg.Group, start, planInFlight, d.cfg.RetryInitial,
		d.planHandler(pl, st.pub)); err != nil {
		return err
	}
	if err := st.addSend("send", d.cfg.DeliveriesTopic, d.cfg.Group+"-send", sendInFlight,
		retries{d.cfg.MaxRetries, d.cfg.RetryInitial, d.cfg.RetryMax}, func() { d.m.sent.WithLabelValues("dead").Inc() },
		d.sendHandler(), nil, nil); err != nil {
		return err
	}
	d.run.set(func(r *running) { r.router, r.subs = st.router, st.subs })
	return st.run(cancel, followed)
}

// startFollowing runs the webhooks follower until ctx ends (once: Run and
// Resend share it).
func (d *Dispatcher) startFollowing(ctx context.Context) {
	d.follow.Do(func() { go func() { d.followed <- d.hooks.Run(ctx) }() })
}

// caughtUp returns once the follower holds every webhook committed before
// at: one catch-up serves every event that occurred before it began.
func (d *Dispatcher) caughtUp(ctx context.Context, at time.Time) error {
	d.cmu.Lock()
	defer d.cmu.Unlock()
	if d.caught.After(at) {
		return nil
	}
	began := time.Now()
	if err := d.hooks.CatchUp(ctx); err != nil {
		return err
	}
	d.caught = began
	return nil
}

// planHandler plans the deliveries of one event and appends them to the
// deliveries topic; the event is acked (its offset committed later) only
// after they all are durable.
func (d *Dispatcher) planHandler(pl *hookPlanner, pub message.Publisher) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		ev := &pb.Event{}
		if err := proto.Unmarshal(msg.Payload, ev); err != nil {
			return permanent{fmt.Errorf("decode event: %w", err)}
		}
		part, off, err := position(msg)
		if err != nil {
			return err
		}
		ctx := msg.Context()
		if err := d.caughtUp(ctx, ev.GetOccurredAt().AsTime()); err != nil {
			return fmt.Errorf("read the webhooks: %w", err)
		}
		out, err := pl.plan(ctx, d.hooks.All(), ev, part, off, time.Now())
		if err != nil || len(out) == 0 {
			return err
		}
		return d.publish(pub, out)
	}
}

// publish appends deliveries to the deliveries topic.
func (d *Dispatcher) publish(pub message.Publisher, out []*pb.WebhookDelivery) error {
	msgs := make([]*message.Message, 0, len(out))
	for _, dl := range out {
		v, err := proto.Marshal(dl)
		if err != nil {
			return permanent{err}
		}
		m := message.NewMessage(dl.GetDeliveryId(), v)
		m.Metadata.Set(bus.MetaPartitionKey, schemas.WebhookKey(dl.GetUserId(), dl.GetWebhookId()))
		msgs = append(msgs, m)
	}
	if err := pub.Publish(d.cfg.DeliveriesTopic, msgs...); err != nil {
		return err
	}
	d.m.planned.Add(float64(len(out)))
	return nil
}

// position is a consumed record's partition and offset.
func position(msg *message.Message) (int32, int64, error) {
	part, err1 := strconv.ParseInt(msg.Metadata.Get(bus.MetaPartition), 10, 32)
	off, err2 := strconv.ParseInt(msg.Metadata.Get(bus.MetaOffset), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, permanent{fmt.Errorf("record position: %w", err)}
	}
	return int32(part), off, nil
}

// hookPlanner matches events to webhooks.
type hookPlanner struct {
	// member reports whether user is a member of conv once the projector
	// has applied the event at (part, off).
	member func(ctx context.Context, part int32, off int64, conv, user string) (bool, error)
}

// plan is the deliveries of ev (at part, off) to the webhooks of hooks that
// match it (README.md, "Which events a webhook receives").
func (pl *hookPlanner) plan(ctx context.Context, hooks []ingest.HeldWebhook, ev *pb.Event, part int32, off int64, now time.Time) ([]*pb.WebhookDelivery, error) {
	conv := ev.GetConversationId()
	if len(hooks) == 0 || conv == "" || schemas.IsUserStreamID(conv) {
		return nil, nil
	}
	typ := schemas.EventType(ev)
	at := ev.GetOccurredAt().AsTime()
	var out []*pb.WebhookDelivery
	var payload []byte
	for _, h := range hooks {
		w := h.Webhook
		if at.Before(h.Created) || !typeMatches(w, typ, ev) {
			continue
		}
		ok := slices.Contains(w.GetConversationIds(), conv)
		if !ok && w.GetMemberConversations() {
			var err error
			if ok, err = pl.member(ctx, part, off, conv, h.UserID); err != nil {
				return nil, fmt.Errorf("read the membership: %w", err)
			}
		}
		if !ok {
			continue
		}
		if payload == nil {
			var err error
			if payload, err = proto.Marshal(ev); err != nil {
				return nil, permanent{err}
			}
		}
		out = append(out, &pb.WebhookDelivery{DeliveryId: deliveryID(h.UserID, w.GetWebhookId(), part, off), UserId: h.UserID,
			WebhookId: w.GetWebhookId(), Event: payload, Partition: part, Offset: off, PlannedAt: timestamppb.New(now)})
	}
	return out, nil
}

// typeMatches applies the webhook's type filter: the listed types, or by
// default every event the members' devices get (version ≥ 1), which leaves
// out the answers to one sender and the internal decision records.
func typeMatches(w *pb.Webhook, typ string, ev *pb.Event) bool {
	if len(w.GetEventTypes()) == 0 {
		return ev.GetVersion() >= 1
	}
	return slices.Contains(w.GetEventTypes(), typ)
}

// deliveryID is stable per (webhook, event).
func deliveryID(user, webhook string, part int32, off int64) string {
	sum := sha256.Sum256([]byte(schemas.WebhookKey(user, webhook) + "\x00" + strconv.FormatInt(int64(part), 10) + "\x00" + strconv.FormatInt(off, 10)))
	return hex.EncodeToString(sum[:16])
}

// WebhookBody is the JSON body of a delivery.
type WebhookBody struct {
	DeliveryID string `json:"deliveryId"`
	WebhookID  string `json:"webhookId"`
	// UserID is the webhook's owner (the bot).
	UserID string `json:"userId"`
	// Type is the event's type, e.g. "MessageSent".
	Type string `json:"type"`
	// Partition and Offset are the event's place in parley.events.
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset,string"`
	// Event is the event as protojson (lowerCamelCase names, int64 as
	// strings), as in the eventlog's JSON lines.
	Event json.RawMessage `json:"event"`
}

// Delivery headers.
const (
	HeaderDeliveryID = "Parley-Delivery-Id"
	HeaderEventType  = "Parley-Event-Type"
	HeaderWebhookID  = "Parley-Webhook-Id"
)

// sendHandler posts one planned delivery. 2xx acks it; a webhook deleted
// since is dropped; a temporary failure is tried again (Retry
// middleware), honouring Retry-After; a refusal is permanent (dead
// letter).
func (d *Dispatcher) sendHandler() message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		dl := &pb.WebhookDelivery{}
		if err := proto.Unmarshal(msg.Payload, dl); err != nil {
			return permanent{fmt.Errorf("decode delivery: %w", err)}
		}
		h, ok := d.hooks.Webhook(dl.GetUserId(), dl.GetWebhookId())
		if !ok {
			d.m.sent.WithLabelValues("deleted").Inc()
			return nil
		}
		ev := &pb.Event{}
		if err := proto.Unmarshal(dl.GetEvent(), ev); err != nil {
			return permanent{fmt.Errorf("decode the delivery's event: %w", err)}
		}
		evJSON, err := protojson.Marshal(ev)
		if err != nil {
			return permanent{err}
		}
		typ := schemas.EventType(ev)
		body, err := json.Marshal(WebhookBody{DeliveryID: dl.GetDeliveryId(), WebhookID: dl.GetWebhookId(), UserID: dl.GetUserId(),
			Type: typ, Partition: dl.GetPartition(), Offset: dl.GetOffset(), Event: evJSON})
		if err != nil {
			return permanent{err}
		}
		ctx := msg.Context()
		err = d.poster.Post(ctx, h.Webhook.GetUrl(), schemas.WebhookSecret(d.cfg.SigningKey, dl.GetUserId(), dl.GetWebhookId()), body,
			http.Header{HeaderDeliveryID: {dl.GetDeliveryId()}, HeaderEventType: {typ}, HeaderWebhookID: {dl.GetWebhookId()}})
		var retry *push.RetryError
		var refused *push.RefusedError
		switch {
		case err == nil:
			d.m.sent.WithLabelValues("accepted").Inc()
			d.m.latency.Observe(time.Since(ev.GetOccurredAt().AsTime()).Seconds())
			return nil
		case ctx.Err() != nil:
			return err
		case errors.As(err, &retry):
			d.m.sent.WithLabelValues("retry").Inc()
			if wait := min(retry.After, d.cfg.RetryMax); wait > 0 {
				t := time.NewTimer(wait)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
			return err
		case errors.As(err, &refused), errors.Is(err, push.ErrInvalidToken):
			d.m.sent.WithLabelValues("refused").Inc()
			d.log.Warn("webhook delivery refused; dead-lettered", "user", dl.GetUserId(), "webhook", dl.GetWebhookId(), "err", err)
			return permanent{err}
		}
		d.m.sent.WithLabelValues("retry").Inc()
		return err
	}
}

// ResendFrom is where a re-send starts: at Time in every partition, or at
// Offsets (partition -> first offset; a partition not named is not re-sent).
type ResendFrom struct {
	Time    time.Time
	Offsets map[int32]int64
}

// Resend plans again, for user's webhook id only, every event of the log
// from from up to where the log ends now, and appends the deliveries; the
// running dispatcher sends them, with the delivery ids they had the first
// time, so a receiver drops what it has seen. Memberships are read as the
// views hold them now. It returns how many deliveries it appended. The
// follower it starts runs until ctx ends.
func (d *Dispatcher) Resend(ctx context.Context, user, id string, from ResendFrom) (int, error) {
	d.startFollowing(ctx)
	if err := d.hooks.CatchUp(ctx); err != nil {
		return 0, err
	}
	h, ok := d.hooks.Webhook(user, id)
	if !ok {
		return 0, fmt.Errorf("webhooks: %s holds no webhook %s", user, id)
	}
	sess, err := d.cfg.Cassandra.Session()
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	tables, err := projector.NewTables(sess, d.cfg.Keyspace)
	if err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(d.cfg.Seeds...), kgo.ClientID("parley-webhooks-resend"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords()}, d.cfg.KafkaOptions...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, d.cfg.EventsTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("webhooks: end offsets: %w", err)
	}
	starts := map[int32]int64{}
	if from.Offsets != nil {
		starts = from.Offsets
	} else {
		listed, err := adm.ListOffsetsAfterMilli(ctx, from.Time.UnixMilli(), d.cfg.EventsTopic)
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			return 0, fmt.Errorf("webhooks: offsets at %s: %w", from.Time.Format(time.RFC3339), err)
		}
		listed.Each(func(o kadm.ListedOffset) { starts[o.Partition] = o.Offset })
	}
	consume := map[int32]kgo.Offset{}
	left := map[int32]int64{} // partition -> the end offset still to reach
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts[o.Partition]; ok && s < o.Offset {
			consume[o.Partition] = kgo.NewOffset().At(s)
			left[o.Partition] = o.Offset
		}
	})
	if len(consume) == 0 {
		return 0, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{d.cfg.EventsTopic: consume})
	pub, err := bus.NewPublisher(bus.PublisherConfig{Brokers: d.cfg.Seeds, ClientID: "parley-webhooks-resend", KafkaOptions: d.cfg.KafkaOptions},
		watermill.NewSlogLogger(d.log))
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	pl := &hookPlanner{member: func(ctx context.Context, _ int32, _ int64, conv, user string) (bool, error) {
		return tables.IsMember(ctx, conv, user)
	}}
	total := 0
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return total, fmt.Errorf("webhooks: read the log: %w", ferr)
		}
		var out []*pb.WebhookDelivery
		var perr error
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || perr != nil {
				return
			}
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if r.Attrs.IsControl() {
				return // a transaction marker (kept, so the end is seen)
			}
			ev := &pb.Event{}
			if err := proto.Unmarshal(r.Value, ev); err != nil {
				return // undecodable: the planner dead-letters it; nothing to re-send
			}
			dls, err := pl.plan(ctx, []ingest.HeldWebhook{h}, ev, r.Partition, r.Offset, time.Now())
			if err != nil {
				perr = err
				return
			}
			out = append(out, dls...)
		})
		if perr != nil {
			return total, perr
		}
		if len(out) > 0 {
			if err := d.publish(pub, out); err != nil {
				return total, err
			}
			total += len(out)
			d.m.resent.Add(float64(len(out)))
		}
	}
	return total, nil
}

type webhookMetrics struct {
	planned prometheus.Counter
	resent  prometheus.Counter
	sent    *prometheus.CounterVec
	latency prometheus.Histogram
}

func newWebhookMetrics(reg prometheus.Registerer) (*webhookMetrics, error) {
	m := &webhookMetrics{
		planned: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_webhooks_planned_total",
			Help: "Deliveries planned and appended to the deliveries topic (re-sends included)."}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_webhooks_resent_total",
			Help: "Deliveries appended by a re-send."}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_webhooks_deliveries_total",
			Help: "Delivery attempts, by outcome: accepted (2xx), retry (a temporary failure, tried again), refused (permanent), dead (to the dead-letter topic), deleted (the webhook is gone; dropped)."},
			[]string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_webhooks_delivery_latency_seconds",
			Help:    "From the event's decision to the receiver's 2xx.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 16)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.planned, m.resent, m.sent, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("webhooks: metrics: %w", err)
			}
		}
	}
	return m, nil
}
