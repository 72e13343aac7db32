package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// consume reads the events topic from its end and hands each event to the
// sessions it concerns, until ctx ends.
//
// Every gateway reads every partition, without a consumer group: a group
// would split the partitions between gateways, but any gateway may hold a
// session of any user, so each one needs all events. Live delivery is
// best-effort by design (a device that misses an event catches up through
// query by seq), so nothing is committed and a restarted gateway starts at
// the end again.
func (s *Server) consume(ctx context.Context) error {
	offsets, err := s.startOffsets(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	cl, err := kgo.NewClient(s.kafkaOpts(
		kgo.SeedBrokers(s.cfg.Seeds...),
		kgo.ClientID("parley-gateway-events"),
		// ingest writes events in transactions; never show a device an
		// event of an aborted one.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(offsets),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		// Recover a partition whose leader moved in half a second, not 5 s:
		// live delivery stalls meanwhile.
		kgo.MetadataMinAge(500*time.Millisecond),
		kgo.WithLogger(kafkaLogger{s.log.With("client", "events")}),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	s.consumerReady.Store(true)
	s.metrics.consumerReady.Set(1)
	defer func() { s.consumerReady.Store(false); s.metrics.consumerReady.Set(0) }()
	s.pollLoop(ctx, cl, "events", s.deliver)
	return nil
}

// pollLoop hands every record cl fetches to handle until ctx ends.
func (s *Server) pollLoop(ctx context.Context, cl *kgo.Client, what string, handle func(*kgo.Record)) {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if deploy.ReportKafkaFetch(s.log, cl, t, err) {
				return
			}
			s.log.Warn(what+" fetch", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(handle)
	}
}

// startOffsets is the last stable offset of every partition of the events
// topic: the end as a read_committed consumer sees it, so an event of a
// transaction still open at start is delivered when it commits. It retries
// until the topic is there (a gateway may start before topics are
// provisioned); /healthz is 503 meanwhile.
func (s *Server) startOffsets(ctx context.Context) (map[string]map[int32]kgo.Offset, error) {
	return s.offsetsRetrying(ctx, s.cfg.EventsTopic, "cannot list events topic offsets; retrying",
		func(adm *kadm.Client) (kadm.ListedOffsets, error) {
			return adm.ListCommittedOffsets(ctx, s.cfg.EventsTopic)
		})
}

// offsetsRetrying calls list until it gives an offset for every partition
// of topic, backing off up to 2 s, until ctx ends.
func (s *Server) offsetsRetrying(ctx context.Context, topic, warning string,
	list func(*kadm.Client) (kadm.ListedOffsets, error)) (map[string]map[int32]kgo.Offset, error) {
	adm := kadm.NewClient(s.admin)
	wait := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		listed, err := list(adm)
		if err == nil {
			err = listed.Error()
		}
		if err == nil && len(listed[topic]) == 0 {
			err = errors.New("no partitions")
		}
		if err == nil {
			return listed.KOffsets(), nil
		}
		if deploy.ReportKafkaFetch(s.log, s.admin, topic, err) {
			// logged and counted
		} else if attempt%10 == 0 {
			s.log.Warn(warning, "topic", topic, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
			wait = min(2*wait, 2*time.Second)
		}
	}
}

// deliver routes one event record. It never blocks: sessions queue without
// waiting, and a session that cannot keep up is closed, so one slow device
// never delays the others.
func (s *Server) deliver(rec *kgo.Record) {
	s.metrics.eventsConsumed.Inc()
	ev := &pb.Event{}
	if err := proto.Unmarshal(rec.Value, ev); err != nil {
		s.metrics.eventsUndecoded.Inc()
		s.log.Warn("undecodable event skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
		return
	}
	s.decisions.offer(ev)
	r := s.route(ev)
	targets := s.hub.sessionsFor(r)
	if len(targets) == 0 {
		return
	}
	o := newOutbound(eventFrame(ev))
	var w *outbound // the Withheld form, encoded once for all who get it
	for _, sess := range targets {
		out := o
		if r.Withheld[sess.user] {
			if w == nil {
				w = newOutbound(eventFrame(withheldEvent(ev)))
			}
			out = w
		}
		if sess.offer(ev, out) {
			s.metrics.eventsDelivered.Inc()
			if out == w {
				s.metrics.eventsWithheld.Inc()
			}
		}
	}
}

func eventFrame(ev *pb.Event) *pb.ServerFrame {
	return &pb.ServerFrame{Body: &pb.ServerFrame_Event{Event: ev}}
}

// withheldEvent is ev as sent to a device whose user may not see it: the
// conversation, the version (the device's cursor stays dense) and the
// command id (a device can still match its own command), with a Withheld
// body and nothing else — no actor, no time, nothing of the body.
func withheldEvent(ev *pb.Event) *pb.Event {
	return &pb.Event{ConversationId: ev.GetConversationId(), Version: ev.GetVersion(), CommandId: ev.GetCommandId(),
		Body: &pb.Event_Withheld{Withheld: &pb.Withheld{}}}
}

// route is recipients with the membership cache: it applies ev to the
// cache first, so a membership change takes effect with its own event.
// While no session is open nothing is loaded (nobody would receive it), but
// cached conversations still follow their membership events. Recipients
// who may not see the message ev changes get it withheld
// (membership.withheld).
func (s *Server) route(ev *pb.Event) route {
	switch schemas.EventType(ev) {
	case schemas.TypeDirectBlockChanged, schemas.TypeMessageForwarded:
		// Decision records of two-stream decisions: for no device (the
		// outcome is the other stream's event).
		return route{}
	}
	if conv := ev.GetConversationId(); schemas.IsUserStreamID(conv) {
		// A user stream is its owner's alone: every session of the actor,
		// whose stream it must be; no membership is loaded for it.
		actor := ev.GetActorUserId()
		if schemas.UserStreamID(actor) != conv {
			s.metrics.eventsMisrouted.Inc()
			s.log.Warn("user stream event not of its actor's stream dropped", "conversation", conv, "type", schemas.EventType(ev))
			return route{}
		}
		s.noteBlock(ev)
		return recipients(ev, []string{actor}, s.cfg.Fanout.ReceiptFanoutMaxMembers)
	}
	var members []string
	if s.hub.empty() {
		s.members.applyCached(ev)
	} else {
		members = s.members.apply(context.Background(), ev)
	}
	r := recipients(ev, members, s.cfg.Fanout.ReceiptFanoutMaxMembers)
	r.Withheld = s.members.withheld(ev, r.Users)
	return r
}
