package main

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/system"
)

// world is the clients of a run: one sender per conversation, and per
// receiver a phone that stays online and a laptop that goes offline before
// the Cassandra crash and resumes at the end.
type world struct {
	c   config
	sys *system.System

	convs   []string          // conversation ids, by sender index
	sender  []*device         // by conversation index
	owner   map[string]string // conversation → receiver user
	phones  []*device
	laptops []*device

	accepted, resends atomic.Int64

	mu           sync.Mutex
	acceptedIDs  map[string]map[string]bool // conversation → client ids accepted
	delivered    map[string]int64           // conversation → highest seq delivered to a phone
	deliveries   []delivery                 // live deliveries to phones, in arrival order
	accepts      []time.Time                // when each send was accepted, in order
	laptopSeen   map[string]int64           // conversation → highest seq a laptop saw before going offline
	laptopAt     map[string]int64           // conversation → highest version a laptop saw before going offline
	laptopOnline bool
}

type delivery struct {
	at, decided time.Time
}

func newWorld(ctx context.Context, c config, sys *system.System) (*world, error) {
	w := &world{c: c, sys: sys, owner: map[string]string{}, acceptedIDs: map[string]map[string]bool{},
		delivered: map[string]int64{}, laptopSeen: map[string]int64{}, laptopAt: map[string]int64{}, laptopOnline: true}
	gw := sys.GatewayURLs[0]
	token := func(user, dev string) (string, error) { return sys.Issuer.Issue(user, dev, 6*time.Hour) }
	for r := 0; r < c.Receivers; r++ {
		user := fmt.Sprintf("r%03d", r)
		for _, name := range []string{"phone", "laptop"} {
			tok, err := token(user, name)
			if err != nil {
				return nil, err
			}
			d, err := dialDevice(ctx, gw, tok, user, name, "", w.onEvent)
			if err != nil {
				return nil, err
			}
			if name == "phone" {
				w.phones = append(w.phones, d)
			} else {
				w.laptops = append(w.laptops, d)
			}
		}
	}
	for i := 0; i < c.Conversations; i++ {
		user, peer := fmt.Sprintf("s%03d", i), fmt.Sprintf("r%03d", i%c.Receivers)
		tok, err := token(user, "phone")
		if err != nil {
			return nil, err
		}
		d, err := dialDevice(ctx, gw, tok, user, "phone", "", nil)
		if err != nil {
			return nil, err
		}
		a, err := d.do(ctx, &pb.ClientFrame{Body: &pb.ClientFrame_CreateConversation{CreateConversation: &pb.CreateConversation{
			Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{peer}}}}, 30*time.Second)
		if err != nil || a.GetAccepted() == nil {
			return nil, fmt.Errorf("create conversation %s–%s: %v %v", user, peer, a, err)
		}
		conv := a.GetAccepted().GetConversationId()
		w.convs = append(w.convs, conv)
		w.sender = append(w.sender, d)
		w.owner[conv] = peer
		w.acceptedIDs[conv] = map[string]bool{}
	}
	return w, nil
}

func (w *world) onEvent(d *device, ev *pb.Event) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	conv := ev.GetConversationId()
	if d.name == "laptop" && w.laptopOnline {
		// A device resumes from the last version it applied, whatever
		// the event (receipts included).
		w.laptopAt[conv] = max(w.laptopAt[conv], ev.GetVersion())
	}
	if ev.GetMessageSent() == nil {
		return
	}
	if d.name == "laptop" {
		if w.laptopOnline && ev.GetSeq() > w.laptopSeen[conv] {
			w.laptopSeen[conv] = ev.GetSeq()
		}
		return
	}
	if ev.GetSeq() > w.delivered[conv] {
		w.delivered[conv] = ev.GetSeq()
	}
	w.deliveries = append(w.deliveries, delivery{at: now, decided: ev.GetOccurredAt().AsTime()})
}

// startSenders runs one sender per conversation at Rate/Conversations
// messages per second each until ctx ends.
func (w *world) startSenders(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	every := time.Duration(float64(time.Second) * float64(w.c.Conversations) / float64(w.c.Rate))
	for i, d := range w.sender {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the senders' phases over one period.
			if sleep(ctx, time.Duration(i)*every/time.Duration(len(w.sender))) != nil {
				return
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for j := 0; ; j++ {
				id := fmt.Sprintf("s%03d-%06d", i, j)
				n, err := d.sendUntilAccepted(ctx, w.convs[i], id, "m")
				if err != nil {
					if ctx.Err() == nil {
						logf("sender %d: %v", i, err)
					}
					return
				}
				w.accepted.Add(1)
				w.resends.Add(int64(n - 1))
				w.mu.Lock()
				w.acceptedIDs[w.convs[i]][id] = true
				w.accepts = append(w.accepts, time.Now())
				w.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return &wg
}

// fault runs one round: kill, stay down for Down, restart, then wait for
// the first delivery of a message decided after the kill and for the views
// to hold everything delivered by the restart.
func (w *world) fault(ctx context.Context, name string, t0 time.Time, kill, restart func() error) (round, error) {
	r := round{Fault: name}
	resends0 := w.resends.Load()
	tKill := time.Now()
	if err := kill(); err != nil {
		return r, err
	}
	r.KilledAt = tKill.Sub(t0)
	logf("%s killed", name)
	if err := sleep(ctx, w.c.Down); err != nil {
		return r, err
	}
	if err := restart(); err != nil {
		return r, err
	}
	tRestart := time.Now()
	r.RestartedAt = tRestart.Sub(t0)
	logf("%s restarted", name)
	w.mu.Lock()
	target := make(map[string]int64, len(w.delivered))
	for c, s := range w.delivered {
		target[c] = s
	}
	w.mu.Unlock()
	deadline := time.Now().Add(3 * time.Minute)
	var delivered, current bool
	for !delivered || !current {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("%s: not recovered 3 minutes after the restart (deliveries resumed: %v, views current: %v)", name, delivered, current)
		}
		if !delivered {
			w.mu.Lock()
			for _, d := range w.deliveries {
				if d.decided.After(tKill) {
					r.DeliveryAfterRestart, delivered = d.at.Sub(tRestart), true
					break
				}
			}
			w.mu.Unlock()
		}
		if !current {
			ok, err := w.viewsHold(ctx, target)
			if err != nil {
				return r, err
			}
			if ok {
				r.ViewsCurrentAfterRestart, current = time.Since(tRestart), true
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return r, err
		}
	}
	w.mu.Lock()
	prev := tKill
	for _, d := range w.deliveries {
		if d.at.Before(tKill) {
			continue
		}
		r.LongestDeliveryGap = max(r.LongestDeliveryGap, d.at.Sub(prev))
		prev = d.at
	}
	prev = tKill
	for _, at := range w.accepts {
		if at.Before(tKill) {
			continue
		}
		r.LongestAcceptGap = max(r.LongestAcceptGap, at.Sub(prev))
		prev = at
	}
	w.mu.Unlock()
	r.Resends = w.resends.Load() - resends0
	return r, nil
}

// viewsHold reports whether query serves, for a sample of conversations,
// the message of the seq in target.
func (w *world) viewsHold(ctx context.Context, target map[string]int64) (bool, error) {
	step := max(1, len(w.convs)/20)
	for i := 0; i < len(w.convs); i += step {
		conv := w.convs[i]
		want := target[conv]
		if want == 0 {
			continue
		}
		var page historyPage
		code, err := getJSON(ctx, w.sys, w.owner[conv], fmt.Sprintf("/v1/conversations/%s/messages?after=%d&limit=1", url.PathEscape(conv), want-1), &page)
		if err != nil || code != 200 || len(page.Messages) == 0 || page.Messages[0].Seq != want {
			return false, nil // down, behind or not yet there
		}
	}
	return true, nil
}

type historyPage struct {
	Messages []struct {
		Seq         int64  `json:"seq"`
		ClientMsgID string `json:"client_msg_id"`
	} `json:"messages"`
}

// verifyViews waits until every conversation's history holds its accepted
// messages (up to 3 minutes), then counts accepted messages missing,
// client ids present more than once, and seqs out of 1…n.
func (w *world) verifyViews(ctx context.Context) (missing, dup, gaps int, err error) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		missing, dup, gaps = 0, 0, 0
		for _, conv := range w.convs {
			seen := map[string]int{}
			var seqs []int64
			after := int64(0)
			for {
				var page historyPage
				code, err := getJSON(ctx, w.sys, w.owner[conv], fmt.Sprintf("/v1/conversations/%s/messages?after=%d&limit=200", url.PathEscape(conv), after), &page)
				if err != nil || code != 200 {
					return 0, 0, 0, fmt.Errorf("history of %s: status %d, %v", conv, code, err)
				}
				for _, m := range page.Messages {
					seen[m.ClientMsgID]++
					seqs = append(seqs, m.Seq)
				}
				if len(page.Messages) < 200 {
					break
				}
				after = page.Messages[len(page.Messages)-1].Seq
			}
			for i, s := range seqs {
				if s != int64(i+1) {
					gaps++
					break
				}
			}
			for _, n := range seen {
				if n > 1 {
					dup++
				}
			}
			w.mu.Lock()
			for id := range w.acceptedIDs[conv] {
				if seen[id] == 0 {
					missing++
				}
			}
			w.mu.Unlock()
		}
		if missing == 0 || time.Now().After(deadline) {
			return missing, dup, gaps, nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return 0, 0, 0, err
		}
	}
}

// laptopsOffline closes every laptop, remembering what each had seen.
func (w *world) laptopsOffline() {
	w.mu.Lock()
	w.laptopOnline = false
	w.mu.Unlock()
	for _, d := range w.laptops {
		d.close()
	}
	logf("laptops offline")
}

// resumeLaptops reconnects every laptop with ?resume=1 and its cursors and
// checks that each of its conversations is caught up completely: every seq
// after the cursor up to the conversation's last, once, in order.
func (w *world) resumeLaptops(ctx context.Context) string {
	byUser := map[string][]string{}
	for _, conv := range w.convs {
		byUser[w.owner[conv]] = append(byUser[w.owner[conv]], conv)
	}
	var problems []string
	for _, d := range w.laptops {
		var mu sync.Mutex
		got := map[string][]int64{}
		d.onEvent = func(_ *device, ev *pb.Event) {
			if ev.GetMessageSent() != nil {
				mu.Lock()
				got[ev.GetConversationId()] = append(got[ev.GetConversationId()], ev.GetSeq())
				mu.Unlock()
			}
		}
		if err := d.connect(ctx, "?resume=1"); err != nil {
			return err.Error()
		}
		res := &pb.Resume{}
		w.mu.Lock()
		cursors := map[string]int64{}
		for _, conv := range byUser[d.user] {
			cursors[conv] = w.laptopSeen[conv]
			res.Cursors = append(res.Cursors, &pb.ConversationCursor{ConversationId: conv, Version: w.laptopAt[conv]})
		}
		w.mu.Unlock()
		a, err := d.do(ctx, &pb.ClientFrame{Body: &pb.ClientFrame_Resume{Resume: res}}, time.Minute)
		if err != nil || a.GetResumed() == nil {
			problems = append(problems, fmt.Sprintf("%s: resume answered %v %v", d.user, a, err))
			continue
		}
		mu.Lock()
		for _, conv := range byUser[d.user] {
			last := w.delivered[conv]
			seqs := got[conv]
			sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
			want := last - cursors[conv]
			if int64(len(seqs)) != want || (want > 0 && (seqs[0] != cursors[conv]+1 || seqs[len(seqs)-1] != last)) {
				problems = append(problems, fmt.Sprintf("%s %s: resumed from %d, got %d events, want %d (to seq %d)", d.user, conv, cursors[conv], len(seqs), want, last))
			}
		}
		mu.Unlock()
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("… %d more", len(problems)-5))
		}
		return fmt.Sprint(problems)
	}
	return "complete"
}

func (w *world) close() {
	for _, ds := range [][]*device{w.phones, w.laptops, w.sender} {
		for _, d := range ds {
			d.close()
		}
	}
}
