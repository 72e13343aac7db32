package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
)

// stats collects what the clients observe.
type stats struct {
	mu      sync.Mutex
	ack     []time.Duration
	deliver []time.Duration
	// The two stages of deliver, split at the event's occurredAt (when
	// the decider took the command's batch; same clock): send → decided,
	// and decided → delivered (transaction commit, gateway fetch, push).
	toDecided, fromDecided []time.Duration
	viewLag                []time.Duration
	sent                   map[string]sentMsg        // client_msg_id -> what was sent
	received               map[string]map[string]int // client_msg_id -> receiving user -> count
	// onFirst is called on the first delivery of each message; set before
	// any client connects, read by every client's reader.
	onFirst    func(id, conv string, seq int64, user string)
	acked      atomic.Int64
	refused    atomic.Int64
	disconnect atomic.Int64
	// The rich mix: the newest messages of each conversation (actions
	// name them), and what was sent and refused per command kind.
	recent       map[string][]recentMsg
	actions      map[string]int64
	rejected     atomic.Int64
	refusedSends map[string]bool // client_msg_id of sends the decider refused
}

// recentMsg is a message an action may name.
type recentMsg struct {
	seq    int64
	sender string
}

// recentPerConv is how many of a conversation's newest messages actions
// choose from.
const recentPerConv = 8

type sentMsg struct {
	at     time.Time
	conv   string
	sender string
}

type client struct {
	user    string
	conn    *websocket.Conn
	wmu     sync.Mutex
	pending sync.Map // request id -> time.Time
	st      *stats
	done    chan struct{}
}

func dialer(i, sources int) *websocket.Dialer {
	ip := net.IPv4(127, 0, 0, byte(1+i%sources))
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	return &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 30 * time.Second, TLSClientConfig: clientTLS}
}

func connectClient(i, sources int, url, user string, iss *token.DevIssuer, st *stats) (*client, error) {
	tok, err := iss.Issue(user, "d", 3*time.Hour)
	if err != nil {
		return nil, err
	}
	conn, _, err := dialer(i, sources).Dial(strings.Replace(url, "http", "ws", 1)+"/v1/ws", http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		return nil, err
	}
	c := &client{user: user, conn: conn, st: st, done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *client) read() {
	defer close(c.done)
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				c.st.disconnect.Add(1)
			}
			return
		}
		now := time.Now()
		var f pb.ServerFrame
		if protojson.Unmarshal(b, &f) != nil {
			continue
		}
		switch body := f.GetBody().(type) {
		case *pb.ServerFrame_Accepted:
			if t, ok := c.pending.LoadAndDelete(body.Accepted.GetRequestId()); ok {
				c.st.mu.Lock()
				c.st.ack = append(c.st.ack, now.Sub(t.(time.Time)))
				c.st.mu.Unlock()
				c.st.acked.Add(1)
			}
		case *pb.ServerFrame_Error:
			c.pending.Delete(body.Error.GetRequestId())
			c.st.refused.Add(1)
		case *pb.ServerFrame_Event:
			if r := body.Event.GetCommandRejected(); r != nil {
				c.st.rejected.Add(1)
				if r.GetCommandType() == schemas.TypeSendMessage && r.GetClientMsgId() != "" {
					// A refused send (a reply to a message recalled
					// meanwhile) is delivered to nobody: not a loss.
					c.st.mu.Lock()
					c.st.refusedSends[r.GetClientMsgId()] = true
					c.st.mu.Unlock()
				}
				continue
			}
			ms := body.Event.GetMessageSent()
			if ms == nil || body.Event.GetActorUserId() == c.user {
				continue
			}
			id := ms.GetClientMsgId()
			c.st.mu.Lock()
			s, ok := c.st.sent[id]
			r := c.st.received[id]
			if r == nil {
				r = map[string]int{}
				c.st.received[id] = r
			}
			first := len(r) == 0
			r[c.user]++
			if ok && r[c.user] == 1 {
				c.st.deliver = append(c.st.deliver, now.Sub(s.at))
				if at := body.Event.GetOccurredAt(); at != nil {
					c.st.toDecided = append(c.st.toDecided, at.AsTime().Sub(s.at))
					c.st.fromDecided = append(c.st.fromDecided, now.Sub(at.AsTime()))
				}
			}
			c.st.mu.Unlock()
			if first {
				c.st.mu.Lock()
				conv := body.Event.GetConversationId()
				r := append(c.st.recent[conv], recentMsg{body.Event.GetSeq(), body.Event.GetActorUserId()})
				if len(r) > recentPerConv {
					r = r[len(r)-recentPerConv:]
				}
				c.st.recent[conv] = r
				c.st.mu.Unlock()
			}
			if first && c.st.onFirst != nil {
				c.st.onFirst(id, body.Event.GetConversationId(), body.Event.GetSeq(), c.user)
			}
		}
	}
}

// send writes one command frame; the Accepted answer records ack latency.
func (c *client) send(f *pb.ClientFrame) error {
	b, _ := protojson.Marshal(f)
	c.pending.Store(f.GetRequestId(), time.Now())
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

func (c *client) close() {
	c.wmu.Lock()
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	c.conn.Close()
	<-c.done
}

type conversation struct {
	id      string
	members []int // client indexes
}

// connectAll opens n clients, spread over the source addresses.
func connectAll(ctx context.Context, n, sources int, url string, iss *token.DevIssuer, st *stats, logf func(string, ...any)) ([]*client, error) {
	clients := make([]*client, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := connectClient(i, sources, url, fmt.Sprintf("u%05d", i), iss, st)
			if err != nil {
				firstErr.CompareAndSwap(nil, fmt.Errorf("client %d: %w", i, err))
				return
			}
			clients[i] = c
		}()
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
		return nil, err
	}
	logf("%d clients connected", n)
	return clients, nil
}

func workload(ctx context.Context, c config, srv *server, logf func(string, ...any)) (map[string]any, error) {
	iss, err := token.NewDevIssuer(token.Config{HMACSecret: srv.secret})
	if err != nil {
		return nil, err
	}
	st := &stats{sent: map[string]sentMsg{}, received: map[string]map[string]int{}, recent: map[string][]recentMsg{}, actions: map[string]int64{},
		refusedSends: map[string]bool{}}
	if c.Mix != "plain" && c.Mix != "rich" {
		return nil, fmt.Errorf("load: -mix must be plain or rich, not %q", c.Mix)
	}
	// View lag: for sampled messages, poll query from the first recipient.
	var lagWG sync.WaitGroup
	st.onFirst = func(id, conv string, seq int64, user string) {
		n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
		if n%c.ViewSample != 0 {
			return
		}
		lagWG.Add(1)
		go func() {
			defer lagWG.Done()
			if d, ok := viewLag(srv.info.Query, iss, user, conv, seq); ok {
				st.mu.Lock()
				st.viewLag = append(st.viewLag, d)
				st.mu.Unlock()
			}
		}()
	}
	rssBefore := rssKiB(srv.cmd.Process.Pid)
	clients, err := connectAll(ctx, c.Clients, c.Sources, srv.info.Gateways[0], iss, st, logf)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, cl := range clients {
			cl.close()
		}
	}()
	time.Sleep(2 * time.Second)
	rssConnected := rssKiB(srv.cmd.Process.Pid)

	// Conversations: groups of GroupSize for GroupShare of the users, 1:1 pairs for the rest.
	var convs []conversation
	groupUsers := int(float64(c.Clients)*c.GroupShare) / c.GroupSize * c.GroupSize
	for g := 0; g < groupUsers; g += c.GroupSize {
		var m []int
		for i := g; i < g+c.GroupSize; i++ {
			m = append(m, i)
		}
		convs = append(convs, conversation{members: m})
	}
	for i := groupUsers; i+1 < c.Clients; i += 2 {
		convs = append(convs, conversation{members: []int{i, i + 1}})
	}
	if err := createAll(clients, convs, logf); err != nil {
		return nil, err
	}
	logf("%d conversations (%d groups of %d, %d pairs); sending %d msgs/s for %s",
		len(convs), groupUsers/c.GroupSize, c.GroupSize, (c.Clients-groupUsers)/2, c.Rate, c.Duration)

	// Open-loop sending: every 10 ms, rate/100 messages, round-robin over
	// conversations, each from a random member. A warm-up at the same rate
	// comes first (fresh JVMs compile their hot paths meanwhile); its
	// latencies are dropped, its deliveries still checked.
	var n, next int
	sendFor := func(d time.Duration) {
		start := time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		perTick := float64(c.Rate) / 100
		var owed float64
		for time.Since(start) < d && ctx.Err() == nil {
			<-tick.C
			for owed += perTick; owed >= 1; owed-- {
				cv := convs[next%len(convs)]
				next++
				sender := clients[cv.members[rand.IntN(len(cv.members))]]
				id := fmt.Sprintf("%s-%d", sender.user, n)
				n++
				var f *pb.ClientFrame
				if c.Mix == "rich" {
					f = richAction(st, cv, sender, clients, id)
				}
				if f == nil {
					f = &pb.ClientFrame{RequestId: id, ConversationId: cv.id,
						Body: &pb.ClientFrame_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: id, Text: "load " + id}}}
				}
				if m := f.GetSendMessage(); m != nil {
					st.mu.Lock()
					st.sent[id] = sentMsg{at: time.Now(), conv: cv.id, sender: sender.user}
					st.actions[sendKind(m)]++
					st.mu.Unlock()
				}
				if err := sender.send(f); err != nil {
					st.disconnect.Add(1)
				}
			}
		}
	}
	if c.Warmup > 0 {
		logf("warming up for %s", c.Warmup)
		sendFor(c.Warmup)
		time.Sleep(5 * time.Second)
		lagWG.Wait()
		st.mu.Lock()
		st.ack, st.deliver, st.toDecided, st.fromDecided, st.viewLag = nil, nil, nil, nil, nil
		st.mu.Unlock()
		st.acked.Store(0)
	}
	warm := n
	start := time.Now()
	cpu0, txn0 := cpuTimes(srv), transactionCounters(srv)
	profiled := profileLater(ctx, c, srv, logf)
	sendFor(c.Duration)
	elapsed := time.Since(start)
	cpu, txn := cpuShares(cpu0, cpuTimes(srv), elapsed), transactionStats(txn0, transactionCounters(srv))
	n -= warm
	logf("sent %d messages in %s; draining", n, elapsed.Round(time.Millisecond))
	time.Sleep(10 * time.Second)
	lagWG.Wait()
	<-profiled
	rssEnd := rssKiB(srv.cmd.Process.Pid)

	// Every acked message must reach every other member exactly once.
	members := map[string]int{}
	for _, cv := range convs {
		members[cv.id] = len(cv.members)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var expected, delivered, dup int64
	for id, s := range st.sent {
		if st.refusedSends[id] {
			continue
		}
		expected += int64(members[s.conv] - 1)
		for _, k := range st.received[id] {
			delivered++
			if k > 1 {
				dup += int64(k - 1)
			}
		}
	}
	res := map[string]any{
		"mix":                      c.Mix,
		"commands_by_kind":         st.actions,
		"commands_rejected":        st.rejected.Load(),
		"sends_refused":            len(st.refusedSends),
		"messages_sent":            n,
		"messages_acked":           st.acked.Load(),
		"messages_refused":         st.refused.Load(),
		"sustained_msgs_per_s":     float64(st.acked.Load()) / elapsed.Seconds(),
		"accepted_ack_ms":          pcts(st.ack),
		"send_to_deliver_ms":       pcts(st.deliver),
		"send_to_decided_ms":       pcts(st.toDecided),
		"decided_to_deliver_ms":    pcts(st.fromDecided),
		"cpu_cores_used":           cpu,
		"ingest_transactions":      txn,
		"view_lag_ms":              pcts(st.viewLag),
		"deliveries_expected":      expected,
		"deliveries_received":      delivered,
		"deliveries_lost":          expected - delivered,
		"deliveries_duplicated":    dup,
		"client_disconnects":       st.disconnect.Load(),
		"server_rss_mib_before":    rssBefore / 1024,
		"server_rss_mib_connected": rssConnected / 1024,
		"server_rss_mib_end":       rssEnd / 1024,
		"server_rss_kib_per_conn":  float64(rssConnected-rssBefore) / float64(c.Clients),
	}
	printSummary(res, logf)
	return res, nil
}

// richAction picks the command of one slot of the rich mix: 60% plain
// messages, 10% replies, 10% mentions (one member, or @all once in 20 in a
// group), 10% reactions, 7% edits and 3% recalls of one of the sender's own
// recent messages. Actions name the conversation's recent messages; with
// none to name (or no message of the sender's to edit or recall) the slot
// is a plain message (nil).
func richAction(st *stats, cv conversation, sender *client, clients []*client, id string) *pb.ClientFrame {
	st.mu.Lock()
	recent := st.recent[cv.id]
	var own []recentMsg
	for _, m := range recent {
		if m.sender == sender.user {
			own = append(own, m)
		}
	}
	st.mu.Unlock()
	frame := func(body proto.Message) *pb.ClientFrame {
		f, err := schemas.NewClientFrame(id, cv.id, body)
		if err != nil {
			panic(err) // every body here is a ClientFrame body
		}
		return f
	}
	text := "load " + id
	switch p := rand.IntN(100); {
	case p < 60 || len(recent) == 0:
		return nil
	case p < 70:
		return frame(&pb.SendMessage{ClientMsgId: id, Text: text, ReplyToSeq: recent[rand.IntN(len(recent))].seq})
	case p < 80:
		m := &pb.SendMessage{ClientMsgId: id, Text: text}
		if len(cv.members) > 2 && rand.IntN(20) == 0 {
			m.MentionAll = true
		} else if other := clients[cv.members[rand.IntN(len(cv.members))]]; other != sender {
			m.MentionUserIds = []string{other.user}
		}
		return frame(m)
	case p < 90:
		st.count("AddReaction")
		return frame(&pb.AddReaction{Seq: recent[rand.IntN(len(recent))].seq, Emoji: []string{"+1", "🎉", "👀", "❤️"}[rand.IntN(4)]})
	case len(own) == 0:
		return nil
	case p < 97:
		st.count("EditMessage")
		return frame(&pb.EditMessage{Seq: own[rand.IntN(len(own))].seq, Text: text + " (edited)", ClientMsgId: id})
	default:
		st.count("RecallMessage")
		return frame(&pb.RecallMessage{Seq: own[rand.IntN(len(own))].seq})
	}
}

func (st *stats) count(kind string) {
	st.mu.Lock()
	st.actions[kind]++
	st.mu.Unlock()
}

// sendKind names a SendMessage of the mix.
func sendKind(m *pb.SendMessage) string {
	switch {
	case m.GetReplyToSeq() > 0:
		return "SendMessage (reply)"
	case m.GetMentionAll() || len(m.GetMentionUserIds()) > 0:
		return "SendMessage (mention)"
	}
	return "SendMessage"
}

// createAll creates every conversation and records its id.
func createAll(clients []*client, convs []conversation, logf func(string, ...any)) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(convs))
	sem := make(chan struct{}, 32)
	for i := range convs {
		cv := &convs[i]
		creator := clients[cv.members[0]]
		if len(cv.members) == 2 {
			cv.id = schemas.DirectConversationID(creator.user, clients[cv.members[1]].user)
		} else {
			cv.id = schemas.NewGroupConversationID()
		}
		var others []string
		for _, m := range cv.members[1:] {
			others = append(others, clients[m].user)
		}
		kind := pb.ConversationKind_CONVERSATION_KIND_GROUP
		if len(cv.members) == 2 {
			kind = pb.ConversationKind_CONVERSATION_KIND_DIRECT
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id := "create-" + cv.id
			if err := creator.send(&pb.ClientFrame{RequestId: id, ConversationId: cv.id,
				Body: &pb.ClientFrame_CreateConversation{CreateConversation: &pb.CreateConversation{Kind: kind, MemberUserIds: others}}}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	// Creates are acked like sends; give the decider a moment to decide them
	// before messages follow (same partition, so order holds anyway).
	time.Sleep(3 * time.Second)
	for _, cl := range clients {
		cl.st.mu.Lock()
		cl.st.ack = cl.st.ack[:0]
		cl.st.mu.Unlock()
		cl.st.acked.Store(0)
	}
	logf("%d conversations created", len(convs))
	return nil
}

// viewLag polls query until seq of conv is visible to user.
func viewLag(query string, iss *token.DevIssuer, user, conv string, seq int64) (time.Duration, bool) {
	t0 := time.Now()
	tok, _ := iss.Issue(user, "", time.Hour)
	url := fmt.Sprintf("%s/v1/conversations/%s/messages?after=%d&limit=1", query, conv, seq-1)
	for time.Since(t0) < 30*time.Second {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := httpClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), `"seq":`+strconv.FormatInt(seq, 10)+`,`) {
				return time.Since(t0), true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, false
}

func pcts(d []time.Duration) map[string]float64 {
	if len(d) == 0 {
		return map[string]float64{"n": 0}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(p float64) float64 { return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000 }
	return map[string]float64{"n": float64(len(s)), "p50": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": at(1)}
}

func printSummary(res map[string]any, logf func(string, ...any)) {
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		logf("%-26s %v", k, res[k])
	}
}

// rssKiB reads VmRSS of pid.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// idle holds c.Idle connections on one gateway and reports their memory.
func idle(ctx context.Context, c config, srv *server, logf func(string, ...any)) (map[string]any, error) {
	iss, err := token.NewDevIssuer(token.Config{HMACSecret: srv.secret})
	if err != nil {
		return nil, err
	}
	st := &stats{sent: map[string]sentMsg{}, received: map[string]map[string]int{}, recent: map[string][]recentMsg{}, actions: map[string]int64{},
		refusedSends: map[string]bool{}}
	if c.Mix != "plain" && c.Mix != "rich" {
		return nil, fmt.Errorf("load: -mix must be plain or rich, not %q", c.Mix)
	}
	before := rssKiB(srv.cmd.Process.Pid)
	t0 := time.Now()
	clients, err := connectAll(ctx, c.Idle, c.Sources, srv.info.Gateways[0], iss, st, logf)
	if err != nil {
		return nil, err
	}
	took := time.Since(t0)
	time.Sleep(10 * time.Second)
	after := rssKiB(srv.cmd.Process.Pid)
	goroutines := 0
	if srv.info.Debug != "" {
		goroutines = goroutineCount(srv)
		if c.HeapProfile != "" {
			fetchProfile(srv, "heap?gc=1", c.HeapProfile, logf)
		}
	}
	alive := 0
	for _, cl := range clients {
		select {
		case <-cl.done:
		default:
			alive++
		}
	}
	for _, cl := range clients {
		cl.close()
	}
	res := map[string]any{
		"connections_opened":      c.Idle,
		"connections_alive_after": alive,
		"connect_seconds":         took.Seconds(),
		"server_rss_mib_before":   before / 1024,
		"server_rss_mib_after":    after / 1024,
		"server_rss_kib_per_conn": float64(after-before) / float64(c.Idle),
		"server_goroutines":       goroutines,
	}
	printSummary(res, logf)
	return res, nil
}
