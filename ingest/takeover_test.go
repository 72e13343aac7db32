package ingest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// BenchmarkTakeover measures how long a SIGKILLed decider leaves its
// partitions undecided: the ingest binary decides a stream of sends (200/s
// over 20 groups); it is killed, started again after
// PARLEY_BENCH_RESTART_DELAY (default 5s) with the same instance id and
// transactional id, and each of b.N rounds reports the time from the
// restart, and from the kill, to the first event the new process decided
// becoming visible (read_committed). Afterwards every send is checked to be
// decided exactly once with dense seqs.
//
// PARLEY_BENCH_STATIC=false runs the same with dynamic group membership.
//
//	PARLEY_TESTENV=~/.cache/parley/env/env.json go test ./ingest -run '^$' -bench Takeover -benchtime 3x
func BenchmarkTakeover(b *testing.B) {
	delay := 5 * time.Second
	if v, err := time.ParseDuration(os.Getenv("PARLEY_BENCH_RESTART_DELAY")); err == nil {
		delay = v
	}
	static := os.Getenv("PARLEY_BENCH_STATIC") != "false"
	k := testenv.Kafka(b)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	bin := filepath.Join(b.TempDir(), "ingest")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/parley-im/parley/ingest/cmd/ingest").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	prefix := k.Name("takeover") + "."
	topics := schemas.Prefixed(prefix)
	admCl := k.Client()
	if err := ingest.Provision(ctx, admCl, 1, topics.All()...); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		names := make([]string, 0, 5)
		for _, t := range topics.All() {
			names = append(names, t.Name)
		}
		_, _ = kadm.NewClient(admCl).DeleteTopics(context.Background(), names...)
	})
	app, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: k.Seeds, Topic: topics.Commands.Name})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close(context.Background())
	appendCmd := func(c *pb.Command) error {
		v, _ := proto.Marshal(c)
		_, err := app.AppendSync(ctx, ingest.Record{Key: c.GetConversationId(), Type: schemas.CommandType(c), Value: v})
		return err
	}

	var proc *exec.Cmd
	start := func() {
		proc = exec.Command(bin)
		proc.Env = append(os.Environ(),
			"PARLEY_KAFKA_SEEDS="+strings.Join(k.Seeds, ","),
			"PARLEY_TOPIC_PREFIX="+prefix,
			"PARLEY_INSTANCE_ID="+prefix+"ingest-a",
			fmt.Sprintf("PARLEY_INGEST_STATIC_MEMBERSHIP=%t", static),
			// Nothing here reads its /metrics: any free port will do, and
			// the process binds it itself.
			"PARLEY_HTTP_ADDR=127.0.0.1:0",
		)
		proc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if testing.Verbose() {
			proc.Stderr = os.Stderr
		}
		if err := proc.Start(); err != nil {
			b.Fatal(err)
		}
	}
	kill := func() {
		_ = proc.Process.Signal(syscall.SIGKILL)
		_ = proc.Wait()
	}

	const convs = 20
	for c := range convs {
		if err := appendCmd(createGroupCmd(fmt.Sprintf("create-%d", c), fmt.Sprintf("g:%02d", c), "u0", []string{"u1"})); err != nil {
			b.Fatal(err)
		}
	}
	// The reader notes when each event became visible and when it was decided.
	type seen struct{ decided, visible time.Time }
	var mu sync.Mutex
	var events []seen
	seqs := map[string][]int64{}
	next := map[int32]int64{} // per partition, the offset after the last record read
	readCtx, stopRead := context.WithCancel(ctx)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		// Control records (transaction markers) too: with them, the
		// positions read reach the topic's end offsets exactly.
		cl := k.Client(kgo.ConsumeTopics(topics.Events.Name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
		for readCtx.Err() == nil {
			fs := cl.PollFetches(readCtx)
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				next[r.Partition] = r.Offset + 1
				var e pb.Event
				if r.Attrs.IsControl() || proto.Unmarshal(r.Value, &e) != nil {
					return
				}
				events = append(events, seen{e.GetOccurredAt().AsTime(), now})
				if e.GetMessageSent() != nil {
					seqs[e.GetConversationId()] = append(seqs[e.GetConversationId()], e.GetSeq())
				}
			})
			mu.Unlock()
		}
	}()
	// firstAfter waits for the first event decided after t and returns when
	// it became visible.
	firstAfter := func(t time.Time) time.Time {
		var at time.Time
		err := testenv.WaitFor(ctx, 2*time.Minute, func() string {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range events {
				if e.decided.After(t) {
					at = e.visible
					return ""
				}
			}
			return "no event decided after the restart"
		})
		if err != nil {
			b.Fatal(err)
		}
		return at
	}

	// The stream: 200 sends/s until stopped.
	sendCtx, stopSend := context.WithCancel(ctx)
	var sent int
	sendDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for sendCtx.Err() == nil {
			<-tick.C
			c := sent % convs
			if err := appendCmd(sendCmd(fmt.Sprintf("s-%d", sent), "u1", fmt.Sprintf("g:%02d", c), fmt.Sprintf("cm-%d", sent))); err != nil {
				if sendCtx.Err() == nil {
					sendDone <- err
				}
				break
			}
			sent++
		}
		close(sendDone)
	}()

	start()
	defer kill() // whichever process runs when the benchmark ends or fails
	firstAfter(time.Now())
	var fromRestart, fromKill time.Duration
	b.ResetTimer()
	for i := range b.N {
		// The stream in full flow before each kill: 400 new events, 2 s of
		// the 200 sends/s.
		mu.Lock()
		from := len(events)
		mu.Unlock()
		if err := testenv.WaitFor(ctx, time.Minute, func() string {
			mu.Lock()
			defer mu.Unlock()
			if n := len(events) - from; n < 400 {
				return fmt.Sprintf("%d of 400 events since the last restart", n)
			}
			return ""
		}); err != nil {
			b.Fatal(err)
		}
		killed := time.Now()
		kill()
		// Down for delay: the scenario's outage, which the figures below
		// are measured against (not a wait for a condition).
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		}
		restarted := time.Now()
		start()
		at := firstAfter(restarted)
		b.Logf("round %d: restart → first new event %s, kill → first new event %s", i, at.Sub(restarted).Round(time.Millisecond), at.Sub(killed).Round(time.Millisecond))
		fromRestart += at.Sub(restarted)
		fromKill += at.Sub(killed)
	}
	b.StopTimer()
	stopSend()
	if err := <-sendDone; err != nil {
		b.Fatal(err)
	}

	// Every send decided exactly once, dense per conversation.
	want := convs + sent
	if err := testenv.WaitFor(ctx, 2*time.Minute, func() string {
		mu.Lock()
		defer mu.Unlock()
		if n := len(events); n < want {
			return fmt.Sprintf("%d of %d events", n, want)
		}
		return ""
	}); err != nil {
		b.Fatal(err)
	}
	// No duplicate: with the decider stopped nothing more is committed, so
	// reading to the topic's last stable offsets reads every event there
	// will ever be, duplicates included.
	kill()
	ends, err := kadm.NewClient(k.Client()).ListCommittedOffsets(ctx, topics.Events.Name)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		b.Fatal(err)
	}
	if err := testenv.WaitFor(ctx, time.Minute, func() string {
		mu.Lock()
		defer mu.Unlock()
		var behind []string
		ends.Each(func(o kadm.ListedOffset) {
			if next[o.Partition] < o.Offset {
				behind = append(behind, fmt.Sprintf("partition %d at %d of %d", o.Partition, next[o.Partition], o.Offset))
			}
		})
		return strings.Join(behind, ", ")
	}); err != nil {
		b.Fatal(err)
	}
	stopRead()
	<-readDone
	if len(events) != want {
		b.Fatalf("%d events for %d commands", len(events), want)
	}
	for c, s := range seqs {
		for i, seq := range s {
			if seq != int64(i+1) {
				b.Fatalf("%s: message %d has seq %d", c, i, seq)
			}
		}
	}
	b.ReportMetric(fromRestart.Seconds()/float64(b.N), "restart-to-event-s")
	b.ReportMetric(fromKill.Seconds()/float64(b.N), "kill-to-event-s")
	b.ReportMetric(delay.Seconds(), "restart-delay-s")
}
