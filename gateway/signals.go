package gateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Typing and presence travel between gateways on the signals topic and
// nowhere else: no event, no view, no table. See README.md "Typing and
// presence".

// presenceChunk caps the devices one presence record lists.
const presenceChunk = 500

// signalTypeHeader names the body of a signals record, like the "type"
// header of the events topic.
const signalTypeHeader = "type"

// publishSignal writes one record to the signals topic without waiting.
// Signals are best-effort: leader-acked, not retried for long, and a lost
// one is healed by the next typing renewal or presence refresh.
func (s *Server) publishSignal(key string, sig *pb.GatewaySignal) {
	sig.GatewayId = s.instance
	sig.At = timestamppb.Now()
	v, err := proto.Marshal(sig)
	if err != nil {
		s.log.Error("encode signal", "err", err)
		return
	}
	typ := "presence"
	if sig.GetTyping() != nil {
		typ = "typing"
	}
	rec := &kgo.Record{Topic: s.cfg.SignalsTopic, Key: []byte(key), Value: v,
		Headers: []kgo.RecordHeader{{Key: signalTypeHeader, Value: []byte(typ)}}}
	s.signalsOut.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			s.metrics.signalFailures.Inc()
			s.log.Debug("signal not published", "type", typ, "err", err)
			return
		}
		s.metrics.signalsPublished.WithLabelValues(typ).Inc()
	})
}

// publishPresence states devices of this gateway; presence records are
// keyed by gateway instance, so this gateway's statements are read in the
// order it made them.
func (s *Server) publishPresence(devs ...*pb.DevicePresence) {
	ttl := durationpb.New(s.cfg.Signals.PresenceTTL)
	for chunk := range slices.Chunk(devs, presenceChunk) {
		s.publishSignal(s.instance, &pb.GatewaySignal{Body: &pb.GatewaySignal_Presence{
			Presence: &pb.DevicePresences{Ttl: ttl, Devices: chunk}}})
	}
}

// refreshPresence restates every local device, so that its entries
// elsewhere do not expire.
func (s *Server) refreshPresence() {
	sessions := s.hub.all()
	devs := make([]*pb.DevicePresence, 0, len(sessions))
	for _, sess := range sessions {
		devs = append(devs, sess.devicePresence())
	}
	s.publishPresence(devs...)
}

// runSignals consumes the signals topic until ctx ends: it starts one
// presence TTL back, which rebuilds the presence table after a restart,
// and meanwhile restates this gateway's devices and expires the entries of
// gateways that stopped restating theirs.
func (s *Server) runSignals(ctx context.Context) error {
	offsets, err := s.signalOffsets(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	cl, err := kgo.NewClient(s.kafkaOpts(
		kgo.SeedBrokers(s.cfg.Seeds...),
		kgo.ClientID("parley-gateway-signals"),
		kgo.ConsumePartitions(offsets),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.MetadataMinAge(500*time.Millisecond),
		kgo.WithLogger(kafkaLogger{s.log.With("client", "signals-in")}),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	go s.presenceTicks(ctx)
	s.pollLoop(ctx, cl, "signals", s.receiveSignal)
	return nil
}

func (s *Server) presenceTicks(ctx context.Context) {
	refresh := time.NewTicker(s.cfg.Signals.PresenceRefresh)
	defer refresh.Stop()
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			s.refreshPresence()
		case now := <-sweep.C:
			s.presence.expire(now)
			s.userLimits.sweep(now)
		}
	}
}

// signalOffsets finds, per partition, the first record of the last
// presence TTL, retrying until the topic exists.
func (s *Server) signalOffsets(ctx context.Context) (map[string]map[int32]kgo.Offset, error) {
	return s.offsetsRetrying(ctx, s.cfg.SignalsTopic, "cannot list signals topic offsets; retrying (typing and presence wait)",
		func(adm *kadm.Client) (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, time.Now().Add(-s.cfg.Signals.PresenceTTL).UnixMilli(), s.cfg.SignalsTopic)
		})
}

// receiveSignal applies one record of the signals topic.
func (s *Server) receiveSignal(rec *kgo.Record) {
	sig := &pb.GatewaySignal{}
	if err := proto.Unmarshal(rec.Value, sig); err != nil {
		s.log.Warn("undecodable signal skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
		return
	}
	s.metrics.signalsConsumed.Inc()
	switch b := sig.GetBody().(type) {
	case *pb.GatewaySignal_Presence:
		s.presence.apply(sig.GetGatewayId(), sig.GetAt().AsTime(), b.Presence)
	case *pb.GatewaySignal_Typing:
		s.deliverTyping(b.Typing, sig.GetRecipientUserIds())
	}
}

// pushPresence queues a presence change to its watchers (never blocks).
func pushPresence(c presenceChange) {
	o := newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Signal{Signal: &pb.Signal{
		Body: &pb.Signal_Presence{Presence: c.presence}}}})
	for _, sess := range c.watchers {
		sess.send(o)
	}
}

// deliverTyping pushes a typing signal to the local devices of its
// recipients (the typist's gateway named them). A stale one (read back
// after a restart, or delayed past its expiry) is dropped.
func (s *Server) deliverTyping(t *pb.TypingSignal, recipients []string) {
	if !t.GetExpiresAt().AsTime().After(time.Now()) {
		return
	}
	var targets []*session
	for _, u := range recipients {
		targets = s.hub.appendUser(targets, u)
	}
	if len(targets) == 0 {
		return
	}
	o := newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Signal{Signal: &pb.Signal{
		Body: &pb.Signal_Typing{Typing: t}}}})
	for _, sess := range targets {
		sess.send(o)
	}
}

// conversationMembers returns conv's current members from the membership
// cache, or else reads them from the members view (without caching them:
// only the events consumer fills the cache, in log order). ok is false when
// they cannot be known. Only the typist's gateway asks, on the session's
// reader goroutine.
func (s *Server) conversationMembers(ctx context.Context, conv string) (members []string, ok bool) {
	if m, ok := s.members.peek(conv); ok {
		return m, true
	}
	if s.views == nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	m, _, found, err := s.views.members(ctx, conv)
	if err != nil || !found {
		return nil, false
	}
	return m, true
}

// typing handles a Typing frame: only a member may signal, and nothing is
// answered unless refused.
func (sess *session) typing(f *pb.ClientFrame) {
	conv := f.GetConversationId() // checked by checkFrame
	members, ok := sess.srv.conversationMembers(context.Background(), conv)
	switch {
	case !ok && sess.srv.views == nil:
		sess.sendError(f.GetRequestId(), pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "typing needs the members view, which this gateway has not")
		return
	case !ok || !slices.Contains(members, sess.user):
		sess.sendError(f.GetRequestId(), pb.ErrorCode_ERROR_CODE_NOT_MEMBER, "not a member of this conversation")
		return
	}
	srv := sess.srv
	others := slices.DeleteFunc(members, func(u string) bool { return u == sess.user })
	srv.publishSignal(conv, &pb.GatewaySignal{RecipientUserIds: others, Body: &pb.GatewaySignal_Typing{Typing: &pb.TypingSignal{
		ConversationId: conv, UserId: sess.user, DeviceId: sess.device, Active: f.GetTyping().GetActive(),
		ExpiresAt: timestamppb.New(time.Now().Add(srv.cfg.Signals.TypingTTL))}}})
}

// setPresence handles SetPresence: ONLINE, AWAY, BUSY, DO_NOT_DISTURB or
// INVISIBLE.
func (sess *session) setPresence(f *pb.ClientFrame) {
	st := f.GetSetPresence().GetState()
	if !settable(st) {
		sess.sendError(f.GetRequestId(), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT,
			"setPresence.state must be PRESENCE_STATE_ONLINE, _AWAY, _BUSY, _DO_NOT_DISTURB or _INVISIBLE (closing the session makes it offline)")
		return
	}
	sess.state.Store(int32(st))
	sess.srv.publishPresence(sess.devicePresence())
}

// watchPresence handles WatchPresence and answers with Presences. Presence
// is private to co-members: a named user who shares no conversation with
// the watcher, or who blocked the watcher, is answered offline, without
// lastSeen, and never followed.
// Finding the co-members reads the views, so it runs beside the reader; the
// session's watches are decided one at a time, in the order they came.
func (sess *session) watchPresence(f *pb.ClientFrame) {
	users := f.GetWatchPresence().GetUserIds() // count and forms checked by checkFrame
	decide := func() {
		allowed, hidden := users, []string(nil)
		if sess.srv.views != nil && len(users) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
			co, err := sess.coMembers(ctx)
			cancel()
			if err != nil {
				sess.log.Warn("watchPresence could not read the user's conversations", "err", schemas.Clip(err.Error()))
				sess.sendError(f.GetRequestId(), pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "could not read your conversations; watch again")
				return
			}
			allowed = nil
			for _, u := range users {
				if co[u] {
					allowed = append(allowed, u)
				} else {
					hidden = append(hidden, u)
				}
			}
			ctx, cancel = context.WithTimeout(context.Background(), loadTimeout)
			blockers, err := sess.blockedBy(ctx, allowed)
			cancel()
			if err != nil {
				sess.log.Warn("watchPresence could not read blocks", "err", schemas.Clip(err.Error()))
				sess.sendError(f.GetRequestId(), pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "could not read blocks; watch again")
				return
			}
			if len(blockers) > 0 {
				allowed = slices.DeleteFunc(allowed, func(u string) bool { return blockers[u] })
				for u := range blockers {
					hidden = append(hidden, u)
				}
			}
		}
		sess.srv.presence.watch(sess, allowed, func(ps []*pb.UserPresence) {
			for _, u := range hidden {
				ps = append(ps, &pb.UserPresence{UserId: u, State: pb.PresenceState_PRESENCE_STATE_OFFLINE})
			}
			slices.SortFunc(ps, func(a, b *pb.UserPresence) int { return strings.Compare(a.GetUserId(), b.GetUserId()) })
			ps = slices.CompactFunc(ps, func(a, b *pb.UserPresence) bool { return a.GetUserId() == b.GetUserId() })
			sess.send(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Presences{Presences: &pb.Presences{
				RequestId: f.GetRequestId(), Users: ps}}}))
		})
	}
	sess.watchOnce.Do(func() { go sess.runWatches() })
	select {
	case sess.watchQueue <- decide:
	default:
		sess.sendError(f.GetRequestId(), pb.ErrorCode_ERROR_CODE_RATE_LIMITED,
			fmt.Sprintf("%d presence watches are still being decided; watch again later", watchQueueLen))
	}
}

// watchQueueLen bounds the WatchPresence frames of a session waiting to
// be decided.
const watchQueueLen = 4

// runWatches decides the session's WatchPresence frames in order until it
// ends.
func (sess *session) runWatches() {
	for {
		select {
		case <-sess.closed:
			return
		case fn := <-sess.watchQueue:
			fn()
		}
	}
}

// coMembers is the set of users who share a current conversation with the
// session's user (the user included), from the views: the user's
// conversations, then each one's members (the gateway's cache where it has
// them).
func (sess *session) coMembers(ctx context.Context) (map[string]bool, error) {
	v := sess.srv.views
	convs, err := v.conversations(ctx, sess.user)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{sess.user: true}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, conv := range convs {
		g.Go(func() error {
			members, ok := sess.srv.members.peek(conv)
			if !ok {
				var err error
				if members, _, _, err = v.members(gctx, conv); err != nil {
					return err
				}
			}
			mu.Lock()
			for _, u := range members {
				out[u] = true
			}
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

// blockedBy is the set of users who blocked the session's user, among
// users (the blocks view: one row read per user, 8 at a time).
func (sess *session) blockedBy(ctx context.Context, users []string) (map[string]bool, error) {
	v := sess.srv.views
	out := map[string]bool{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, u := range users {
		if u == sess.user {
			continue
		}
		g.Go(func() error {
			b, err := v.blocked(gctx, u, sess.user)
			if b {
				mu.Lock()
				out[u] = true
				mu.Unlock()
			}
			return err
		})
	}
	return out, g.Wait()
}

// noteBlock applies a UserBlocked or UserUnblocked read by the events
// consumer to the presence table: the blocked user's watches of the blocker
// on this gateway end at once, and watches decided from a blocks view that
// has not caught up yet still honour it (presenceTable.block).
func (s *Server) noteBlock(ev *pb.Event) {
	switch b := ev.GetBody().(type) {
	case *pb.Event_UserBlocked:
		s.presence.block(ev.GetActorUserId(), b.UserBlocked.GetUserId(), time.Now())
	case *pb.Event_UserUnblocked:
		s.presence.unblock(ev.GetActorUserId(), b.UserUnblocked.GetUserId())
	}
}

// devicePresence is this session's statement for the signals topic.
func (sess *session) devicePresence() *pb.DevicePresence {
	return &pb.DevicePresence{UserId: sess.user, DeviceId: sess.device, State: pb.PresenceState(sess.state.Load())}
}
