package gateway

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parley-im/parley/schemas"
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

// span is the versions of one conversation pushed to a session, first to
// last. Resume counts versions (Event.version, dense over every event that
// changes a view), so receipts and every other change are caught up and
// deduplicated like messages; events without a version (the sender-only
// answers) always pass.
type span struct{ first, last int64 }

// offer hands a live event to the session: held back while its
// conversation catches up, dropped when its version was already pushed,
// else queued. Called by the events consumer only.
func (s *session) offer(ev *pb.Event, o *outbound) bool {
	conv, pos := ev.GetConversationId(), ev.GetVersion()
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
	if pos > 0 {
		p, ok := s.pushed[conv]
		if ok && pos <= p.last {
			return false
		}
		if !ok {
			p.first = pos
		}
		p.last = pos
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
	for s.out.len() >= s.out.limit/2 {
		if s.closing.Load() {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return s.send(o)
}

// startResume runs one Resume beside the reader, so pings and commands are
// still read during a long catch-up. One Resume runs at a time. checkFrame
// has checked the cursors' forms; whether each lies within its
// conversation is checked per conversation by catchUp.
func (s *session) startResume(requestID string, r *pb.Resume) {
	if s.srv.views == nil {
		s.sendError(requestID, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "resume needs the gateway's Cassandra views, which are not configured")
		return
	}
	if !s.resuming.CompareAndSwap(false, true) {
		s.sendError(requestID, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "a resume is already running on this session; wait for its Resumed")
		return
	}
	go func() {
		// resume clears the running flag as it answers. One it leaves
		// without an answer ended with the session, which takes no other.
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

// resume answers one validated Resume; see README.md "Resume". Only what
// concerns the whole request fails it (not a member, the views unreadable
// before any catch-up); a conversation that cannot be caught up is reported
// in Resumed.failed and the others resume. The session may resume again
// once it has the answer: the answer is queued only after the running
// flag is cleared (a device's next Resume must not find it set).
func (s *session) resume(ctx context.Context, requestID string, cursors []*pb.ConversationCursor) {
	v := s.srv.views
	fail := func(code pb.ErrorCode, msg string) {
		s.resuming.Store(false)
		s.sendError(requestID, code, msg)
	}
	answer := func(resumed *pb.Resumed) {
		s.resuming.Store(false)
		s.send(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Resumed{Resumed: resumed}}))
	}
	unavailable := func(err error) {
		s.log.Warn("resume failed", "err", err)
		fail(pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "resume could not read the views; resume again")
	}
	resumed := &pb.Resumed{RequestId: requestID}
	own := schemas.UserStreamID(s.user)
	if len(cursors) == 0 {
		// Nothing missed: report where each conversation stands, and the
		// user's own stream.
		convs, err := v.conversations(ctx, s.user)
		if err != nil {
			unavailable(err)
			return
		}
		for _, c := range append(convs, own) {
			last, version, err := v.position(ctx, c)
			if err != nil {
				unavailable(err)
				return
			}
			if c == own {
				if version == 0 {
					continue // no setting made yet: nothing to stand at
				}
				last = 0 // a user stream has no timeline
			}
			resumed.Cursors = append(resumed.Cursors, &pb.ConversationCursor{ConversationId: c, LastSeq: last, Version: version})
		}
		s.releaseAll(nil)
		answer(resumed)
		return
	}
	// One wait for the views per Resume, shared by its conversations: many
	// conversations behind (or with a hole) cost ResumeGapWait once, not
	// once each.
	deadline := time.Now().Add(s.srv.cfg.Fanout.ResumeGapWait)
	// A former member (removed, or left on another device, while this one
	// was away) catches up to its removal; anyone else is refused. A
	// conversation whose views have not reached the cursor yet cannot say:
	// it is waited for, and fails alone if the views stay behind.
	removedAt := map[string]int64{}
	behind := map[string]bool{}
	for _, c := range cursors {
		conv := c.GetConversationId()
		st, at, err := s.membershipAt(ctx, conv, c.GetVersion(), deadline)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			unavailable(err)
			return
		case st == notMember:
			fail(pb.ErrorCode_ERROR_CODE_NOT_MEMBER, notMemberOf(conv))
			return
		case st == formerMember:
			removedAt[conv] = at
		case st == viewsBehind:
			behind[conv] = true
		}
	}
	// Subscribe first: from here live events of these conversations are
	// held, so nothing falls between catch-up and live. A conversation
	// still held from an unfinished Resume keeps what it holds.
	s.mu.Lock()
	for _, c := range cursors {
		if _, gone := removedAt[c.GetConversationId()]; gone || behind[c.GetConversationId()] {
			continue // no live event of it reaches this user, or not known yet
		}
		if _, ok := s.held[c.GetConversationId()]; !ok {
			s.held[c.GetConversationId()] = []held{}
		}
	}
	s.mu.Unlock()
	budget := s.srv.cfg.Fanout.MaxResumeEvents
	keep := map[string]bool{} // unfinished: stay held
	for _, c := range cursors {
		conv, last := c.GetConversationId(), c.GetVersion()
		if behind[conv] {
			resumed.Failed = append(resumed.Failed, &pb.ResumeFailure{ConversationId: conv, Code: pb.ErrorCode_ERROR_CODE_UNAVAILABLE,
				Message: fmt.Sprintf("the views have not caught up with this conversation (version %d) yet; resume again from lastVersion", max(last, s.srv.members.logVersion(conv))), LastVersion: last})
			continue
		}
		_, gone := removedAt[conv]
		// A member added later to a group whose history visibility is
		// since_join sees nothing from before its join (query hides it):
		// a cursor below the join — a device that never held such a
		// version, or asks for every change — catches up from the join,
		// and a change of a message below its joined seq comes withheld.
		var fl floor
		var err error
		if conv != own { // the user's stream is all its own: from version 1
			fl, err = v.joinFloor(ctx, conv, s.user)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("resume could not read the views", "conversation", conv, "err", schemas.Clip(err.Error()))
			if !gone {
				s.mu.Lock()
				after := max(last, s.pushed[conv].last) // live from here, as catchUp's failures
				s.mu.Unlock()
				s.failLive(conv, after)
			}
			resumed.Failed = append(resumed.Failed, &pb.ResumeFailure{ConversationId: conv, Code: pb.ErrorCode_ERROR_CODE_UNAVAILABLE,
				Message: "the views could not be read; resume again from lastVersion", LastVersion: last})
			continue
		}
		last = max(last, fl.version-1)
		if at, gone := removedAt[conv]; gone {
			last, reached, fail := s.catchUpRemoved(ctx, conv, last, at, fl.seq, &budget, deadline)
			switch {
			case ctx.Err() != nil:
				return
			case fail != nil:
				resumed.Failed = append(resumed.Failed, fail)
			case !reached:
				resumed.More = true
				resumed.Cursors = append(resumed.Cursors, &pb.ConversationCursor{ConversationId: conv, Version: last})
			default:
				resumed.Removed = append(resumed.Removed, &pb.ConversationCursor{ConversationId: conv, Version: last})
			}
			continue
		}
		if budget <= 0 {
			keep[conv], resumed.More = true, true
			resumed.Cursors = append(resumed.Cursors, &pb.ConversationCursor{ConversationId: conv, Version: last})
			continue
		}
		// Far behind: the device refetches the state instead, and the
		// conversation is live from the version that state has (at least).
		top, err := v.lastVersion(ctx, conv)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("resume could not read the views", "conversation", conv, "err", schemas.Clip(err.Error()))
			s.mu.Lock()
			after := max(last, s.pushed[conv].last) // live from here, as catchUp's failures
			s.mu.Unlock()
			s.failLive(conv, after)
			resumed.Failed = append(resumed.Failed, &pb.ResumeFailure{ConversationId: conv, Code: pb.ErrorCode_ERROR_CODE_UNAVAILABLE,
				Message: "the views could not be read; resume again from lastVersion", LastVersion: last})
			continue
		}
		if top-last > s.srv.cfg.Fanout.MaxResumeGap {
			s.mu.Lock()
			s.goLive(conv, top, top)
			s.srv.metrics.resumeRefetches.Inc()
			resumed.Refetch = append(resumed.Refetch, &pb.ConversationCursor{ConversationId: conv, Version: top})
			continue
		}
		last, done, fail := s.catchUp(ctx, conv, last, top, fl.seq, &budget, deadline)
		if ctx.Err() != nil {
			return // the session ended: nobody to answer
		}
		switch {
		case fail != nil:
			resumed.Failed = append(resumed.Failed, fail)
		case !done:
			keep[conv], resumed.More = true, true
			resumed.Cursors = append(resumed.Cursors, &pb.ConversationCursor{ConversationId: conv, Version: last})
		default:
			resumed.Cursors = append(resumed.Cursors, &pb.ConversationCursor{ConversationId: conv, Version: last})
		}
	}
	// The conversations the device did not name: joined while it was away.
	convs, err := v.conversations(ctx, s.user)
	if err != nil {
		s.log.Warn("resume could not list the user's conversations", "err", schemas.Clip(err.Error()))
	}
	named := make(map[string]bool, len(cursors))
	for _, c := range cursors {
		named[c.GetConversationId()] = true
	}
	// The user's own stream is listed like a conversation joined while
	// away when the device does not name it (a device that never knew it)
	// and it has events.
	for _, conv := range append(convs, own) {
		if named[conv] {
			continue
		}
		last, version, err := v.position(ctx, conv)
		if err != nil {
			s.log.Warn("resume could not read a conversation to list", "conversation", conv)
			continue
		}
		if conv == own {
			if version == 0 {
				continue // no setting made yet: listed once there is one
			}
			last = 0
		}
		resumed.Added = append(resumed.Added, &pb.ConversationCursor{ConversationId: conv, LastSeq: last, Version: version})
	}
	s.releaseAll(keep)
	answer(resumed)
}

// memberState is what the views say of a user in a conversation named by
// a Resume.
type memberState int

const (
	currentMember memberState = iota
	formerMember              // removed or left; catches up to the removal
	notMember                 // never a member, as of the cursor's version
	viewsBehind               // the views have not reached the cursor yet
)

// membershipAt reads user's standing in conv from the views. A user the
// views do not list is refused only once the views have reached both cursor
// (the version the device holds, so one it was sent live as a member) and
// the highest version of conv this gateway has seen (membership.logVersion:
// a join this gateway delivered live, which a device may resume from
// version 0 before it holds any): before that the projector may simply lag,
// and the members view is read again every resumePoll until deadline. at is
// the removal's version for a former member.
//
// The members row of a user not listed is read again after the view's last
// version: the projector writes last_version after every other row of a
// change, so once it is read the rows of every change up to it are there,
// and a user added at a version the last version reached is listed.
func (s *session) membershipAt(ctx context.Context, conv string, cursor int64, deadline time.Time) (_ memberState, at int64, _ error) {
	v := s.srv.views
	if schemas.IsUserStreamID(conv) {
		// A user stream has one member, its owner, from its first version;
		// nobody else may read it. Nothing to read.
		if conv == schemas.UserStreamID(s.user) {
			return currentMember, 0, nil
		}
		return notMember, 0, nil
	}
	for {
		ok, err := v.isMember(ctx, conv, s.user)
		if err != nil || ok {
			return currentMember, 0, err
		}
		top, err := v.lastVersion(ctx, conv)
		if err != nil {
			return 0, 0, err
		}
		if ok, err := v.isMember(ctx, conv, s.user); err != nil || ok {
			return currentMember, 0, err
		}
		at, former, err := v.removedAt(ctx, conv, s.user)
		if err != nil {
			return 0, 0, err
		}
		if former {
			return formerMember, at, nil
		}
		if top >= max(cursor, s.srv.members.logVersion(conv)) {
			return notMember, 0, nil
		}
		if time.Now().After(deadline) {
			s.srv.metrics.resumeGaps.Inc()
			return viewsBehind, 0, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(resumePoll):
		}
	}
}

// changeFrame is the frame of one change a catch-up sends: ev, or ev
// withheld when it changes a message below from, the lowest seq the user
// sees (views.joinFloor).
func changeFrame(ev *pb.Event, from int64) *outbound {
	if q := schemas.MessageSeq(ev); q > 0 && q < from {
		return newOutbound(eventFrame(withheldEvent(ev)))
	}
	return newOutbound(eventFrame(ev))
}

// sendChange queues one change of a catch-up (changeFrame), pacing.
func (s *session) sendChange(ev *pb.Event, from int64) bool {
	o := changeFrame(ev, from)
	if !s.sendPaced(o) {
		return false
	}
	if o.frame.GetEvent().GetWithheld() != nil {
		s.srv.metrics.eventsWithheld.Inc()
	}
	return true
}

// catchUpRemoved sends a former member's device the changes of conv after
// cursor up to the user's removal (version removedAt), in order, and reports
// whether it got there; nothing after the removal is ever sent. Changes made
// while the user was away from the group (removed, then added again before
// the latest removal) are skipped. A log from before versions (removedAt 0)
// has nothing to send. Changes of messages below from are withheld.
func (s *session) catchUpRemoved(ctx context.Context, conv string, cursor, removedAt, from int64, budget *int, deadline time.Time) (last int64, reached bool, _ *pb.ResumeFailure) {
	v := s.srv.views
	last = cursor
	fail := func(code pb.ErrorCode, msg string) (int64, bool, *pb.ResumeFailure) {
		return last, false, &pb.ResumeFailure{ConversationId: conv, Code: code, Message: msg, LastVersion: last}
	}
	if cursor > removedAt {
		// The device saw the removal, and what the others did after it
		// was never its to see: nothing to send, not even a refusal.
		return removedAt, true, nil
	}
	away := false
	for last < removedAt {
		if *budget <= 0 {
			return last, false, nil
		}
		evs, err := v.changes(ctx, conv, last, removedAt, int(min(int64(min(*budget, resumeBatch)), removedAt-last)))
		if err != nil {
			if ctx.Err() != nil {
				return last, false, nil
			}
			return fail(pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the views could not be read; resume again from lastVersion")
		}
		for _, ev := range evs {
			if ev.GetVersion() > removedAt {
				break
			}
			if added := ev.GetMembersAdded(); added != nil && slices.Contains(added.GetUserIds(), s.user) {
				away = false
			}
			if !away {
				if !s.sendChange(ev, from) {
					return last, false, nil
				}
				*budget--
			}
			if rm := ev.GetMemberRemoved(); rm != nil && rm.GetUserId() == s.user {
				away = true
			}
			last = ev.GetVersion()
		}
		if len(evs) > 0 {
			continue
		}
		// The removal is in the views (the members row says so), so the
		// rows before it are too unless one was lost: wait, then repair.
		if time.Now().After(deadline) {
			s.srv.metrics.resumeGaps.Inc()
			s.srv.requestRepair(conv, last+1, removedAt, time.Time{})
			return fail(pb.ErrorCode_ERROR_CODE_UNAVAILABLE,
				fmt.Sprintf("changes not available past version %d (the removal is at %d); resume again from %d later", last, removedAt, last))
		}
		select {
		case <-ctx.Done():
			return last, false, nil
		case <-time.After(resumePoll):
		}
	}
	// What was sent counts as pushed: the removal may also come live (or
	// be held by ?resume=1) and must not arrive twice.
	s.mu.Lock()
	if p, ok := s.pushed[conv]; !ok || p.last < last {
		s.pushed[conv] = span{first: min(cursor+1, last), last: last}
	}
	s.mu.Unlock()
	return last, true, nil
}

// catchUp sends conv's changes after cursor (a version) from the views,
// then what was held, and switches conv to live (done). It returns the last
// version sent. When the budget runs out first, conv stays held (until a
// Resume completes it). When conv cannot be caught up — its cursor lies
// beyond its last version, its changes have a hole the views did not fill by
// deadline, or the views cannot be read — it goes live all the same and the
// failure says why. top is the view's last version, as the caller read it;
// it is read again only while waiting for the views. Changes of messages
// below from are withheld.
func (s *session) catchUp(ctx context.Context, conv string, cursor, top, from int64, budget *int, deadline time.Time) (_ int64, done bool, _ *pb.ResumeFailure) {
	v := s.srv.views
	m := s.srv.metrics
	s.mu.Lock()
	pushed := s.pushed[conv] // sent live before the subscription: never twice
	s.mu.Unlock()
	last := cursor
	var lastAt time.Time // occurred_at of the event at last, once read
	// fail makes conv live past after and reports it.
	fail := func(after int64, code pb.ErrorCode, lastVersion int64, msg string) (int64, bool, *pb.ResumeFailure) {
		s.failLive(conv, after)
		return last, false, &pb.ResumeFailure{ConversationId: conv, Code: code, Message: msg, LastVersion: lastVersion}
	}
	unreadable := func(err error) (int64, bool, *pb.ResumeFailure) {
		s.log.Warn("resume could not read the views", "conversation", conv, "err", schemas.Clip(err.Error()))
		return fail(max(last, pushed.last), pb.ErrorCode_ERROR_CODE_UNAVAILABLE, last, "the views could not be read; resume again from lastVersion")
	}
	// wait sleeps one poll; false when the session ended.
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(resumePoll):
			return true
		}
	}
	// The cursor must name a version the conversation has: the view's last
	// version, or what this gateway has seen of the log (the projector may
	// lag).
	// reread waits one poll and reads the view's last version again.
	reread := func() (ok bool, err error) {
		if !wait() {
			return false, nil
		}
		top, err = v.lastVersion(ctx, conv)
		return err == nil, err
	}
	for {
		known := max(top, pushed.last, s.srv.members.logVersion(conv), s.heldTop(conv))
		if cursor <= known {
			break
		}
		if time.Now().After(deadline) {
			m.resumeInvalidCursors.Inc()
			// Live from what it holds: the device never saw versions
			// beyond known, so none of them counts as delivered.
			return fail(pushed.last, pb.ErrorCode_ERROR_CODE_INVALID_CURSOR, known, schemas.CheckCursor("version", cursor, known).Error())
		}
		if ok, err := reread(); !ok {
			if err == nil || ctx.Err() != nil {
				return last, false, nil
			}
			return unreadable(err)
		}
	}
	for {
		evs, err := v.changes(ctx, conv, last, top, min(*budget, resumeBatch))
		if err != nil {
			if ctx.Err() != nil {
				return last, false, nil
			}
			return unreadable(err)
		}
		for _, ev := range evs {
			lastAt = ev.GetOccurredAt().AsTime()
			if ev.GetVersion() < pushed.first || ev.GetVersion() > pushed.last {
				if !s.sendChange(ev, from) {
					return last, false, nil
				}
				*budget--
			}
			last = ev.GetVersion()
		}
		if *budget <= 0 {
			return last, false, nil
		}
		if len(evs) == resumeBatch {
			continue
		}
		// The views are read up to last. Live events take over if they
		// continue right after it (or none came), else the projector is
		// behind the log: read again shortly. The view's own last version
		// and the log position the consumer has seen are floors too: they
		// catch a hole, or a projector lag, even when no live event is held.
		target := max(top, pushed.last, s.srv.members.logVersion(conv))
		s.mu.Lock()
		for _, h := range s.held[conv] {
			if pv := h.ev.GetVersion(); pv > last {
				target = max(target, pv-1)
				break
			}
		}
		if last >= target {
			return s.goLive(conv, cursor, last), true, nil
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			m.resumeGaps.Inc()
			if s.srv.gapsLogged.first(fmt.Sprintf("%s/%d", conv, last+1)) {
				s.log.Warn("history gap: a changes row is missing below the conversation's last version; asking for a repair from the log",
					"conversation", conv, "missing_version", last+1, "last_version", target, "waited", s.srv.cfg.Fanout.ResumeGapWait)
			}
			s.srv.requestRepair(conv, last+1, target, lastAt)
			return fail(max(last, pushed.last), pb.ErrorCode_ERROR_CODE_UNAVAILABLE, last,
				fmt.Sprintf("changes not available past version %d (the conversation is at %d); live events follow; resume again from %d later", last, target, last))
		}
		if ok, err := reread(); !ok {
			if err == nil || ctx.Err() != nil {
				return last, false, nil
			}
			return unreadable(err)
		}
	}
}

// heldTop is the highest version held for conv (0 when none).
func (s *session) heldTop(conv string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var top int64
	for _, h := range s.held[conv] {
		top = max(top, h.ev.GetVersion())
	}
	return top
}

// failLive makes conv live after a catch-up that could not complete: what
// it holds beyond after is sent, and the pushed span restarts at the first
// version sent live, so a later Resume from the reported version still
// fills the hole between.
func (s *session) failLive(conv string, after int64) {
	s.mu.Lock()
	delete(s.pushed, conv)
	var p span
	for {
		buf := s.held[conv]
		if len(buf) == 0 {
			delete(s.held, conv)
			if p.last > 0 {
				s.pushed[conv] = p
			}
			s.mu.Unlock()
			return
		}
		s.held[conv] = []held{}
		s.mu.Unlock()
		for _, h := range buf {
			pv := h.ev.GetVersion()
			if pv > 0 && pv <= after {
				continue
			}
			s.sendPaced(h.o)
			if pv > 0 {
				if p.first == 0 {
					p.first = pv
				}
				p.last, after = pv, pv
			}
		}
		s.mu.Lock()
	}
}

// onceLog remembers keys already logged (bounded), so a device that resumes
// again and again across a hole logs it once, not once per Resume.
type onceLog struct {
	mu   sync.Mutex
	seen map[string]bool
}

const maxOnceLog = 10_000

func (o *onceLog) first(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen[key] {
		return false
	}
	if o.seen == nil || len(o.seen) >= maxOnceLog {
		o.seen = map[string]bool{}
	}
	o.seen[key] = true
	return true
}

// goLive sends what conv holds, skipping versions already sent, and makes
// conv live. It is called with s.mu held and returns with it released.
// start is the version the device had before (−1: just before the first one
// held).
func (s *session) goLive(conv string, start, last int64) int64 {
	if start < 0 {
		for _, h := range s.held[conv] {
			if pv := h.ev.GetVersion(); pv > 0 {
				start, last = pv-1, pv-1
				break
			}
		}
		if start < 0 {
			start = 0
		}
		// A conversation that went live earlier in this Resume and was held
		// again since (holdAll) may hold versions it already pushed: the
		// catch-up read them from the views before the live consumer
		// delivered them. Never twice.
		if p, ok := s.pushed[conv]; ok && p.last > last {
			last = p.last
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
			pv := h.ev.GetVersion()
			if pv > 0 && pv <= last {
				continue
			}
			s.sendPaced(h.o)
			if pv > 0 {
				last = pv
			}
		}
		s.mu.Lock()
	}
}

// requestRepair asks the projector's repairer (projector/repair) to
// re-apply conv from the log: the views lost changes rows from fromVersion
// on. Every Resume that meets the hole asks again (the repairer coalesces
// repeats), so a request lost with a Kafka outage is made again by the next
// Resume.
func (s *Server) requestRepair(conv string, fromVersion, toVersion int64, notBefore time.Time) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := s.repairs.Request(ctx, conv, fromVersion, toVersion, notBefore); err != nil {
			s.metrics.repairRequests.WithLabelValues("failed").Inc()
			s.log.Warn("repair request not appended; the next Resume asks again", "conversation", conv, "err", err)
			return
		}
		s.metrics.repairRequests.WithLabelValues("appended").Inc()
	}()
}

// notMemberOf is the refusal of a Resume naming conv.
func notMemberOf(conv string) string {
	if schemas.IsUserStreamID(conv) {
		return conv + " is another user's stream; resume your own (Welcome.userStreamId)"
	}
	return "not a member of " + conv
}
