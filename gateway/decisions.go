package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The HTTP endpoints that append a command (an upload's record, a push
// target) answer with its decision: they append like a frame (acks=all)
// and wait for the event that decides it among those the gateway
// consumes.

// appendCommand makes cmd durable (acks=all), like a frame's.
func (s *Server) appendCommand(ctx context.Context, cmd *pb.Command) error {
	value, err := proto.Marshal(cmd)
	if err != nil {
		return err
	}
	typ := schemas.CommandType(cmd)
	done := make(chan error, 1)
	s.appender.Append(s.appendCtx, ingest.Record{Key: cmd.GetConversationId(), Type: typ, Value: value},
		func(_ ingest.Position, err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			s.metrics.appendFailed.Inc()
			return fmt.Errorf("append %s: %w", typ, err)
		}
		s.metrics.appended.WithLabelValues(typ).Inc()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// appendAndWait appends cmd and waits up to wait for the event that
// decides it: its CommandRejected, or the first of its events decides
// accepts (nil: its first event). nil, nil when none came in time.
func (s *Server) appendAndWait(ctx context.Context, cmd *pb.Command, wait time.Duration, decides func(*pb.Event) bool) (*pb.Event, error) {
	decided := s.decisions.wait(cmd.GetCommandId(), decides)
	defer s.decisions.forget(cmd.GetCommandId())
	if err := s.appendCommand(ctx, cmd); err != nil {
		return nil, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case ev := <-decided:
		return ev, nil
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// decisions hands the events of waited-for commands to their waiters.
// offer runs for every event the gateway consumes: while nobody waits it
// costs one atomic load.
type decisions struct {
	waiting atomic.Int32
	mu      sync.Mutex
	by      map[string]waiter
}

type waiter struct {
	ch      chan *pb.Event
	decides func(*pb.Event) bool // nil: any event of the command
}

func (d *decisions) wait(commandID string, decides func(*pb.Event) bool) <-chan *pb.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.by == nil {
		d.by = map[string]waiter{}
	}
	w := waiter{ch: make(chan *pb.Event, 1), decides: decides}
	d.by[commandID] = w
	d.waiting.Store(int32(len(d.by)))
	return w.ch
}

func (d *decisions) forget(commandID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.by, commandID)
	d.waiting.Store(int32(len(d.by)))
}

// offer passes ev to the waiter of its command, if it decides it.
func (d *decisions) offer(ev *pb.Event) {
	if d.waiting.Load() == 0 || ev.GetCommandId() == "" {
		return
	}
	d.mu.Lock()
	w, ok := d.by[ev.GetCommandId()]
	if ok && w.decides != nil && ev.GetCommandRejected() == nil && !w.decides(ev) {
		ok = false // not the event it waits for: the command has others
	}
	if ok {
		delete(d.by, ev.GetCommandId())
		d.waiting.Store(int32(len(d.by)))
	}
	d.mu.Unlock()
	if ok {
		w.ch <- ev
	}
}
