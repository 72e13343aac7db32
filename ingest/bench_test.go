package ingest_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// BenchmarkDecider measures the decider alone: b.N sends to 100 groups are
// appended first, then a decider is started and timed until every event is
// on the events topic. Reports events/s.
//
//	go tool task env:up
//	PARLEY_TESTENV=~/.cache/parley/env/env.json go test ./ingest -run '^$' -bench Decider -benchtime 20000x
func BenchmarkDecider(b *testing.B) {
	p := newPipeline(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const convs = 100
	for c := 0; c < convs; c++ {
		p.append(ctx, createGroupCmd(fmt.Sprintf("create-%d", c), fmt.Sprintf("g:%03d", c), "u0", []string{"u1", "u2", "u3"}))
	}
	var wg sync.WaitGroup
	for i := 0; i < b.N; i++ {
		c := sendCmd(fmt.Sprintf("send-%d", i), fmt.Sprintf("u%d", i%4), fmt.Sprintf("g:%03d", i%convs), fmt.Sprintf("cm-%d", i))
		v, _ := proto.Marshal(c)
		wg.Add(1)
		p.app.Append(ctx, ingest.Record{Key: c.GetConversationId(), Type: schemas.CommandType(c), Value: v}, func(_ ingest.Position, err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	b.ResetTimer()
	start := time.Now()
	stop := p.startDeciderWith(p.k.Name("ingest"), 2000)
	defer stop()
	evs, reached := p.readEventsTimed(ctx, convs+b.N)
	elapsed := reached.Sub(start)
	b.StopTimer()
	if len(evs) != convs+b.N {
		b.Fatalf("%d events, want %d", len(evs), convs+b.N)
	}
	b.ReportMetric(float64(convs+b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkRestore measures how long a fresh decider takes to rebuild its
// state from the changelog: b.N conversations with 4 members and
// PARLEY_BENCH_SENDS (default 20) sends each, spread over the 4 senders,
// are decided first — every send stays remembered (per sender, within the
// dedup window), so the changelog holds one dedup record per send; then a
// second decider (same group, so it must restore every partition) decides
// one more command per conversation.
//
//	PARLEY_TESTENV=~/.cache/parley/env/env.json go test ./ingest -run '^$' -bench Restore -benchtime 20000x
func BenchmarkRestore(b *testing.B) {
	p := newPipeline(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	group := p.k.Name("ingest")
	var wg sync.WaitGroup
	appendAsync := func(c *pb.Command) {
		v, _ := proto.Marshal(c)
		wg.Add(1)
		p.app.Append(ctx, ingest.Record{Key: c.GetConversationId(), Value: v}, func(_ ingest.Position, err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		})
	}
	for c := 0; c < b.N; c++ {
		appendAsync(createGroupCmd(fmt.Sprintf("create-%d", c), fmt.Sprintf("g:%05d", c), "u0", []string{"u1", "u2", "u3"}))
	}
	perConv := 20
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_SENDS")); err == nil && v > 0 {
		perConv = v
	}
	for i := 0; i < perConv; i++ {
		for c := 0; c < b.N; c++ {
			appendAsync(sendCmd(fmt.Sprintf("s-%d-%d", c, i), fmt.Sprintf("u%d", i%4), fmt.Sprintf("g:%05d", c), fmt.Sprintf("cm-%d-%d", c, i)))
		}
	}
	wg.Wait()
	stop := p.startDeciderWith(group, 2000)
	p.readEvents(ctx, b.N*(1+perConv))
	stop()

	// One more send per conversation: the new decider must restore first.
	for c := 0; c < b.N; c++ {
		appendAsync(sendCmd(fmt.Sprintf("last-%d", c), "u2", fmt.Sprintf("g:%05d", c), fmt.Sprintf("last-%d", c)))
	}
	wg.Wait()
	b.ResetTimer()
	start := time.Now()
	stop = p.startDeciderWith(group, 2000)
	defer stop()
	evs, reached := p.readEventsTimed(ctx, b.N*(2+perConv))
	elapsed := reached.Sub(start)
	b.StopTimer()
	for _, e := range evs[b.N*(1+perConv):] {
		if e.GetSeq() != int64(perConv+1) {
			b.Fatalf("after restore: %v, want seq %d (state lost?)", e, perConv+1)
		}
	}
	b.ReportMetric(elapsed.Seconds(), "restore+decide-s")
	b.ReportMetric(float64(b.N), "conversations")
	b.ReportMetric(float64(b.N*perConv), "remembered-sends")
}

// BenchmarkCommandLatency measures what the decider adds to a message's
// way, without gateways, Cassandra or clients: b.N sends to 100 groups are
// appended open-loop at PARLEY_BENCH_RATE commands/s (default 500) while a
// decider runs, and a read_committed consumer times each event. Reports the
// p50 and p99 of append → acked, append → decided (the event's occurredAt,
// taken when its transaction's batch was polled) and decided → visible to
// a read_committed consumer (the transaction's commit, then a fetch).
//
//	PARLEY_TESTENV=~/.cache/parley/env/env.json go test ./ingest -run '^$' -bench CommandLatency -benchtime 15000x
func BenchmarkCommandLatency(b *testing.B) {
	rate := 500
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_RATE")); err == nil && v > 0 {
		rate = v
	}
	p := newPipeline(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const convs = 100
	for c := 0; c < convs; c++ {
		p.append(ctx, createGroupCmd(fmt.Sprintf("create-%d", c), fmt.Sprintf("g:%03d", c), "u0", []string{"u1", "u2", "u3"}))
	}
	stop := p.startDeciderWith(p.k.Name("ingest"), 2000)
	defer stop()

	var mu sync.Mutex
	sent := make(map[string]time.Time, b.N)
	var ack, decided, visible []time.Duration
	done := make(chan struct{})
	go func() { // the reader
		defer close(done)
		cl := p.k.Client(kgo.ConsumeTopics(p.events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		defer cl.Close()
		for n := 0; n < b.N && ctx.Err() == nil; {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				var e pb.Event
				if proto.Unmarshal(r.Value, &e) != nil || e.GetMessageSent() == nil {
					return
				}
				mu.Lock()
				at, ok := sent[e.GetMessageSent().GetClientMsgId()]
				mu.Unlock()
				if !ok {
					return
				}
				n++
				d := e.GetOccurredAt().AsTime()
				decided = append(decided, d.Sub(at))
				visible = append(visible, now.Sub(d))
			})
		}
	}()

	b.ResetTimer()
	tick := time.NewTicker(10 * time.Millisecond)
	perTick, owed := float64(rate)/100, 0.0
	for i := 0; i < b.N; {
		<-tick.C
		for owed += perTick; owed >= 1 && i < b.N; owed-- {
			c := sendCmd(fmt.Sprintf("send-%d", i), fmt.Sprintf("u%d", i%4), fmt.Sprintf("g:%03d", i%convs), fmt.Sprintf("cm-%d", i))
			v, _ := proto.Marshal(c)
			t0 := time.Now()
			mu.Lock()
			sent[c.GetSendMessage().GetClientMsgId()] = t0
			mu.Unlock()
			p.app.Append(ctx, ingest.Record{Key: c.GetConversationId(), Type: schemas.CommandType(c), Value: v}, func(_ ingest.Position, err error) {
				if err != nil {
					b.Error(err)
				}
				mu.Lock()
				ack = append(ack, time.Since(t0))
				mu.Unlock()
			})
			i++
		}
	}
	tick.Stop()
	<-done
	b.StopTimer()
	if len(visible) != b.N {
		b.Fatalf("%d of %d events read", len(visible), b.N)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"ack", ack}, {"decided", decided}, {"visible", visible}} {
		slices.Sort(m.d)
		b.ReportMetric(float64(m.d[len(m.d)/2].Microseconds())/1000, m.name+"-p50-ms")
		b.ReportMetric(float64(m.d[len(m.d)*99/100].Microseconds())/1000, m.name+"-p99-ms")
	}
}
