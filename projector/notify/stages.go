package notify

import (
	"context"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/projector/bus"
)

// stages is the Router scaffolding the notifier and the dispatcher share:
// a publisher, a Router with Recoverer, and per-handler subscribers and
// middleware. A plan stage retries until its error is permanent (then the
// message goes to the dead-letter topic); a send stage retries a bounded
// number of times, then dead-letters.
type stages struct {
	ctx         context.Context
	seeds       []string
	kopts       []kgo.Opt
	deadLetters string
	wlog        watermill.LoggerAdapter
	pub         *bus.Publisher
	router      *message.Router
	subs        map[string]*bus.Subscriber // handler name → its subscriber
}

// retries are a send stage's tries after a temporary failure and their
// backoff.
type retries struct {
	max              int
	initial, ceiling time.Duration
}

func newStages(ctx context.Context, log *slog.Logger, seeds []string, kopts []kgo.Opt, clientID, deadLetters string) (*stages, error) {
	wlog := watermill.NewSlogLogger(log)
	pub, err := bus.NewPublisher(bus.PublisherConfig{Brokers: seeds, ClientID: clientID, KafkaOptions: kopts}, wlog)
	if err != nil {
		return nil, err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
	if err != nil {
		_ = pub.Close()
		return nil, err
	}
	router.AddMiddleware(middleware.Recoverer)
	return &stages{ctx: ctx, seeds: seeds, kopts: kopts, deadLetters: deadLetters, wlog: wlog, pub: pub, router: router,
		subs: map[string]*bus.Subscriber{}}, nil
}

func (s *stages) close() { _ = s.pub.Close() }

// subscriber is a consumer of group handing out inFlight records of a
// partition at once (one per key: bus MaxInFlight).
func (s *stages) subscriber(group string, start bus.StartOffset, inFlight int) (*bus.Subscriber, error) {
	return bus.NewSubscriber(bus.SubscriberConfig{Brokers: s.seeds, ClientID: group, ConsumerGroup: group, StartFrom: start,
		MaxInFlight: inFlight, KafkaOptions: s.kopts}, s.wlog)
}

// retryable reports whether a failed message is tried again: not after a
// permanent error, nor while stopping.
func (s *stages) retryable(p middleware.RetryParams) bool {
	return !isPermanent(p.Err) && s.ctx.Err() == nil
}

// addPlan adds a plan stage: group reads topic; a temporary failure is
// retried without end (backoff from initial up to 5s), a permanent one
// dead-lettered.
func (s *stages) addPlan(name, topic, group string, start bus.StartOffset, inFlight int, initial time.Duration,
	h message.NoPublishHandlerFunc) error {
	sub, err := s.subscriber(group, start, inFlight)
	if err != nil {
		return err
	}
	s.subs[name] = sub
	poison, err := middleware.PoisonQueueWithFilter(s.pub, s.deadLetters, isPermanent)
	if err != nil {
		return err
	}
	s.router.AddConsumerHandler(name, topic, sub, h).AddMiddleware(poison, middleware.Retry{MaxRetries: 1 << 20,
		InitialInterval: initial, MaxInterval: 5 * time.Second, Multiplier: 2, ShouldRetry: s.retryable, Logger: s.wlog}.Middleware)
	return nil
}

// addSend adds a send stage: group reads topic from its start; a failure
// is tried again r.max times with backoff, then the message is
// dead-lettered (dead counts it; not while stopping: it is sent again
// after the restart). first runs before the retries (a filter), last
// after them (a throttle).
func (s *stages) addSend(name, topic, group string, inFlight int, r retries, dead func(), h message.NoPublishHandlerFunc,
	first, last []message.HandlerMiddleware) error {
	sub, err := s.subscriber(group, bus.StartEarliest, inFlight)
	if err != nil {
		return err
	}
	s.subs[name] = sub
	poison, err := middleware.PoisonQueueWithFilter(s.pub, s.deadLetters, func(error) bool {
		if s.ctx.Err() != nil {
			return false
		}
		dead()
		return true
	})
	if err != nil {
		return err
	}
	mw := append(append(first, poison, middleware.Retry{MaxRetries: r.max, InitialInterval: r.initial, MaxInterval: r.ceiling,
		Multiplier: 2, RandomizationFactor: 0.2, ShouldRetry: s.retryable, Logger: s.wlog}.Middleware), last...)
	s.router.AddConsumerHandler(name, topic, sub, h).AddMiddleware(mw...)
	return nil
}

// run runs the Router until ctx ends or side (a reader the stages need)
// ends with an error; nil when ctx ended.
func (s *stages) run(cancel context.CancelFunc, side <-chan error) error {
	routed := make(chan error, 1)
	go func() { routed <- s.router.Run(s.ctx) }()
	var err error
	select {
	case err = <-routed:
	case err = <-side:
		cancel()
		<-routed
		return err
	}
	if s.ctx.Err() != nil {
		return nil
	}
	return err
}
