package gateway

import (
	"context"
	"fmt"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

const (
	// maxResumeCursors bounds the cursors of one Resume.
	maxResumeCursors = 1000
	// resumeBatch is how many rows one views read returns.
	resumeBatch = 500
	// resumePoll is how often a Resume waiting for the views reads again.
	resumePoll = 50 * time.Millisecond
	// maxHeld bounds the live events held for one conversation while it
	// catches up; beyond it the session is closed as a slow consumer.
	maxHeld = 10_000
)

// held is a live event kept back while its conversation catches up.
type held struct {
	ev *pb.Event
	o  *outbound
}

// span is the seqs of one conversation pushed to a session, first to last.
type span struct{ first, last int64 }

// offer hands a live event to the session: held back while its
// conversation catches up, dropped when its seq was already pushed, else
// queued. Called by the events consumer only.
func (s *session) offer(ev *pb.Event, o *outbound) bool {
	conv, seq := ev.GetConversationId(), ev.GetSeq()
	s.mu.Lock()
	defer s.mu.Unlock()
	buf, ok := s.held[conv]
	if !ok && s.holdAll {
		ok = true
	}
	if ok {
		if len(buf) >= maxHeld {
			if s.close(ClosePolicyViolation, "slow consumer", false) {
				s.srv.metrics.slowConsumers.Inc()
				s.log.Warn("closing session: too many live events held during resume", "conversation", conv)
			}
			return false
		}
		s.held[conv] = append(buf, held{ev, o})
		return true
	}
	if seq > 0 {
		p, ok := s.pushed[conv]
		if ok && seq <= p.last {
			return false
		}
		if !ok {
			p.first = seq
		}
		p.last = seq
		s.pushed[conv] = p
	}
	return s.send(o)
}

// releaseAll ends the hold of a session opened with ?resume=1: every
// conversation held, except those in keep (whose catch-up is unfinished),
// goes live with what it holds. That includes conversations that caught up
// during this Resume and were held again by holdAll since.
func (s *session) releaseAll(keep map[string]bool) {
	s.mu.Lock()
	if !s.holdAll {
		s.mu.Unlock()
		return
	}
	s.holdAll = false
	var convs []string
	for c := range s.held {
		if !keep[c] {
			convs = append(convs, c)
		}
	}
	for _, c := range convs {
		s.goLive(c, -1, 0)
		s.mu.Lock()
	}
	s.mu.Unlock()
}

// sendPaced queues o, first waiting while the queue is half full: catch-up
// may be far larger than the queue, and must leave room for live events of
// other conversations, which never wait.
func (s *session) sendPaced(o *outbound) bool {
	for len(s.out) >= cap(s.out)/2 {
		if s.closing.Load() {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return s.send(o)
}

// startResume runs one Resume beside the reader, so pings and commands are
// still read during a long catch-up. One Resume runs at a time.
func (s *session) startResume(requestID string, r *pb.Resume) {
	if s.srv.views == nil {
		s.sendError(requestID, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "resume needs the gateway's Cassandra views, which are not configured")
		return
	}
	if len(r.GetCursors()) > maxResumeCursors {
		s.sendError(requestID, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, fmt.Sprintf("at most %d cursors per resume", maxResumeCursors))
		return
	}
	seen := map[string]bool{}
	for _, c := range r.GetCursors() {
		id := c.GetConversationId()
		switch {
		case id == "" || len(id) > maxIDBytes:
			s.sendError(requestID, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "cursor conversationId must be 1 to 128 bytes")
			return
		case seen[id]:
			s.sendError(requestID, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "conversation "+id+" named twice")
			return
		case c.GetLastSeq() < 0:
			s.sendError(requestID, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "cursor lastSeq must not be negative")
			return
		}
		seen[id] = true
	}
	if !s.resuming.CompareAndSwap(false, true) {
		s.sendError(requestID, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "a resume is already running on this session; wait for its Resumed")
		return
	}
	go func() {
		defer s.resuming.Store(false)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		s.resume(ctx, requestID, r.GetCursors())
	}()
}

// resume answers one validated Resume; see README.md "Resume".
func (s *session) resume(ctx context.Context, requestID string, cursors []*pb.ConversationCursor) {
	v := s.srv.views
	unavailable := func(err error) {
		s.log.Warn("resume failed", "err", err)
		s.sendError(requestID, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "resume could not read the views; resume again")
	}
	resumed := &pb.Resumed{RequestId: requestID}
	if len(cursors) == 0 {
		// Nothing missed: report where each conversation stands.
		convs, err := v.conversations(ctx, s.user)
		if err != nil {
			unavailable(err)
			return
		}
		for _, c := range convs {
			last, err := v.lastSeq(ctx, c)
			if err != nil {
				unavailable(err)
				return
			}
			resumed.Cursors = append(resumed.Cursors, &pb.ConversationCursor{ConversationId: c, LastSeq: last})
		}
		s.releaseAll(nil)
		s.send(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Resumed{Resumed: resumed}}))
		return
	}
	for _, c := range cursors {
		ok, err := v.isMember(ctx, c.GetConversationId(), s.user)
		if err != nil {
			unavailable(err)
			return
		}
		if !ok {
			s.sendError(requestID, pb.ErrorCode_ERROR_CODE_NOT_MEMBER, "not a member of "+c.GetConversationId())
			return
		}
	}
	// Subscribe first: from here live events of these conversations are
	// held, so nothing falls between catch-up and live. A conversation
	// still held from an unfinished Resume keeps what it holds.
	s.mu.Lock()
	for _, c := range cursors {
		if _, ok := s.held[c.GetConversationId()]; !ok {
			s.held[c.GetConversationId()] = []held{}
		}
	}
	s.mu.Unlock()
	budget := s.srv.cfg.Fanout.MaxResumeEvents
	keep := map[string]bool{} // unfinished: stay held
	for _, c := range cursors {
		last := c.GetLastSeq()
		keep[c.GetConversationId()] = true
		if budget > 0 {
			var err error
			var done bool
			last, done, err = s.catchUp(ctx, c.GetConversationId(), last, &budget)
			keep[c.GetConversationId()] = !done
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("resume failed", "conversation", c.GetConversationId(), "err", err)
				s.sendError(requestID, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, err.Error())
				return
			}
		}
		if keep[c.GetConversationId()] {
			resumed.More = true
		}
		resumed.Cursors = append(resumed.Cursors, &pb.ConversationCursor{ConversationId: c.GetConversationId(), LastSeq: last})
	}
	s.releaseAll(keep)
	s.send(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Resumed{Resumed: resumed}}))
}

// catchUp sends conv's timeline after last from the views, then what was
// held, and switches conv to live (done). It returns the last seq sent. When
// the budget runs out first, conv stays held (until a Resume completes it).
func (s *session) catchUp(ctx context.Context, conv string, last int64, budget *int) (_ int64, done bool, _ error) {
	v := s.srv.views
	s.mu.Lock()
	pushed := s.pushed[conv] // sent live before the subscription: never twice
	s.mu.Unlock()
	deadline := time.Now().Add(s.srv.cfg.Fanout.ResumeGapWait)
	start := last
	for {
		evs, err := v.timeline(ctx, conv, last, min(*budget, resumeBatch))
		if err != nil {
			return last, false, fmt.Errorf("resume could not read the views; resume again: %w", err)
		}
		for _, ev := range evs {
			if ev.GetSeq() < pushed.first || ev.GetSeq() > pushed.last {
				if !s.sendPaced(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Event{Event: ev}})) {
					return last, false, ctx.Err()
				}
				*budget--
			}
			last = ev.GetSeq()
		}
		if *budget <= 0 {
			return last, false, nil
		}
		if len(evs) == resumeBatch {
			continue
		}
		// The views are read up to last. Live events take over if they
		// continue right after it (or none came), else the projector is
		// behind the log: read again shortly.
		// The log position the consumer has seen is a floor too: it
		// catches a projector lag even when no live event is held.
		target := max(pushed.last, s.srv.members.logSeq(conv))
		s.mu.Lock()
		for _, h := range s.held[conv] {
			if sq := h.ev.GetSeq(); sq > last {
				target = max(target, sq-1)
				break
			}
		}
		if last >= target {
			return s.goLive(conv, start, last), true, nil
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			return last, false, fmt.Errorf("history of %s not available past seq %d (live is at %d); resume again later", conv, last, target+1)
		}
		select {
		case <-ctx.Done():
			return last, false, ctx.Err()
		case <-time.After(resumePoll):
		}
	}
}

// goLive sends what conv holds, skipping seqs already sent, and makes conv
// live. It is called with s.mu held and returns with it released. start is
// the seq the device had before (−1: just before the first one held).
func (s *session) goLive(conv string, start, last int64) int64 {
	if start < 0 {
		for _, h := range s.held[conv] {
			if sq := h.ev.GetSeq(); sq > 0 {
				start, last = sq-1, sq-1
				break
			}
		}
		if start < 0 {
			start = 0
		}
	}
	for {
		buf := s.held[conv]
		if len(buf) == 0 {
			delete(s.held, conv)
			p, ok := s.pushed[conv]
			if !ok || start+1 < p.first {
				p.first = start + 1
			}
			p.last = max(p.last, last)
			s.pushed[conv] = p
			s.mu.Unlock()
			return last
		}
		s.held[conv] = []held{}
		s.mu.Unlock()
		for _, h := range buf {
			sq := h.ev.GetSeq()
			if sq > 0 && sq <= last {
				continue
			}
			s.sendPaced(h.o)
			if sq > 0 {
				last = sq
			}
		}
		s.mu.Lock()
	}
}
