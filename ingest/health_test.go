package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
)

// cutDialer is a dialer whose connections the test can cut: while off, it
// refuses to dial and every connection it made is closed. It stands for
// Kafka going away without stopping the shared brokers.
type cutDialer struct {
	mu    sync.Mutex
	off   bool
	conns []net.Conn
}

func (c *cutDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off {
		return nil, errors.New("test: Kafka cut off")
	}
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, host)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

func (c *cutDialer) set(off bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = off
	if off {
		for _, conn := range c.conns {
			_ = conn.Close()
		}
		c.conns = nil
	}
}

// healthz reads a /healthz answer.
func healthz(t *testing.T, addr string) (int, deploy.HealthBody) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b deploy.HealthBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// waitHealth polls /healthz until ok says the answer is the one wanted, or
// fails after timeout with the last answer.
func waitHealth(t *testing.T, addr string, timeout time.Duration, what string, ok func(int, deploy.HealthBody) bool) {
	t.Helper()
	testenv.Eventually(t, timeout, func() string {
		code, b := healthz(t, addr)
		if ok(code, b) {
			return ""
		}
		return fmt.Sprintf("%s: last /healthz %d %v", what, code, b.Checks)
	})
}

func (p *pipeline) newDecider(t *testing.T, txnID string, f func(*ingest.DeciderConfig)) *ingest.Decider {
	cfg := ingest.DeciderConfig{Seeds: p.k.Seeds, Group: p.k.Name("ingest"), TransactionalID: txnID,
		CommandsTopic: p.commands, EventsTopic: p.events, StateTopic: p.state, DeadLetterTopic: p.deadLetter, BansTopic: p.bans,
		Logger: testenv.Logger(t)}
	if f != nil {
		f(&cfg)
	}
	d, err := ingest.NewDecider(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func runDecider(t *testing.T, d *ingest.Decider) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestDeciderHealthz: /healthz is 503 while Kafka cannot be reached and
// before the group assigned partitions, 503 while more commands wait than
// MaxHealthyLag, 200 once the decider works, 503 again when Kafka goes away
// and 200 when it is back.
func TestDeciderHealthz(t *testing.T) {
	p := newPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cut := &cutDialer{off: true}
	d := p.newDecider(t, p.txnID, func(c *ingest.DeciderConfig) {
		c.KafkaOptions = []kgo.Opt{kgo.Dialer(cut.dial)}
		c.MaxHealthyLag = 5
	})
	ops := deploy.ServeOps(testenv.Listen(t), testenv.Logger(t), deploy.Registry(), d.Health(), nil)
	defer ops.Close()

	code, b := healthz(t, ops.Addr())
	if code != 503 || b.Checks["kafka"] == "ok" || !strings.Contains(b.Checks["partitions"], "not yet a member") {
		t.Fatalf("Kafka unreachable: %d %v", code, b.Checks)
	}

	p.append(ctx, createGroupCmd("c", "g:h", "alice", []string{"bob"}))
	for i := range 19 {
		p.append(ctx, sendCmd(fmt.Sprintf("s%d", i), "bob", "g:h", fmt.Sprintf("m%d", i)))
	}
	cut.set(false)
	// The client joins its group before Run polls: partitions are assigned,
	// and the 20 commands wait on them.
	waitHealth(t, ops.Addr(), time.Minute, "lag above the bound", func(code int, b deploy.HealthBody) bool {
		return code == 503 && b.Checks["kafka"] == "ok" && b.Checks["partitions"] == "ok" &&
			strings.Contains(b.Checks["lag"], "20 commands wait")
	})
	runDecider(t, d)
	if evs := p.readEvents(ctx, 20); len(evs) != 20 {
		t.Fatalf("%d events, want 20", len(evs))
	}
	waitHealth(t, ops.Addr(), time.Minute, "healthy once deciding", func(code int, b deploy.HealthBody) bool {
		return code == 200 && b.Status == "ok" && len(b.Checks) == 3
	})

	cut.set(true)
	waitHealth(t, ops.Addr(), time.Minute, "Kafka gone", func(code int, b deploy.HealthBody) bool {
		return code == 503 && b.Checks["kafka"] != "ok"
	})
	cut.set(false)
	waitHealth(t, ops.Addr(), time.Minute, "Kafka back", func(code int, _ deploy.HealthBody) bool { return code == 200 })
}

// TestDeciderHealthzStandby: with more deciders than partitions, the one
// that owns no partition is healthy (a standby), since every partition is
// owned; the owner is healthy too.
func TestDeciderHealthzStandby(t *testing.T) {
	p := newPipeline(t)
	p.commands, p.events, p.state = p.k.Topic("commands1", 1), p.k.Topic("events1", 1), p.k.Topic("state1", 1)
	waitTopics(t, p.k, p.commands, p.events, p.state)
	group := p.k.Name("ingest")
	var addrs []string
	for i := range 2 {
		d := p.newDecider(t, fmt.Sprintf("%s-%d", p.txnID, i), func(c *ingest.DeciderConfig) { c.Group = group })
		ops := deploy.ServeOps(testenv.Listen(t), testenv.Logger(t), deploy.Registry(), d.Health(), nil)
		defer ops.Close()
		runDecider(t, d)
		addrs = append(addrs, ops.Addr())
	}
	for i, a := range addrs {
		waitHealth(t, a, time.Minute, fmt.Sprintf("decider %d healthy", i), func(code int, _ deploy.HealthBody) bool { return code == 200 })
	}
}
