// Command deliverysim (`go tool task sim:delivery`) measures, on a real Kafka,
// what a gateway pays to find its deliveries in two designs, for 2, 8 and
// 32 gateways:
//
//   - today: every gateway reads every event of parley.events (keyed by
//     conversation) and keeps those with a member connected to it;
//   - a delivery topic keyed by user: one record per (event, member), users
//     placed on the gateway that owns their partition, each gateway reading
//     only its partitions — at the price of writing every event once per
//     member.
//
// It writes a workload's events to both topics (real protobuf events, the
// load benchmark's mix: direct pairs and groups of 20), then runs each
// gateway's consumer alone and measures the CPU it takes (this process's,
// and Kafka's for serving it). Per record a consumer does what the gateway's
// delivery does before a session's queue: decode the event, look the
// conversation's members up in memory and each member in the sessions
// connected to it, and encode the frame once if any is. What the design
// does not change — the WebSocket writes, the same in number — is left out.
// Figures: README, Benchmarks; design: gateway/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

type config struct {
	Events     int
	Pairs      int
	Groups     int
	GroupSize  int
	GroupShare float64
	Partitions int
	UserParts  int
}

func main() {
	var c config
	flag.IntVar(&c.Events, "events", 100_000, "events written (messages)")
	flag.IntVar(&c.Pairs, "pairs", 5000, "direct conversations")
	flag.IntVar(&c.Groups, "groups", 250, "group conversations")
	flag.IntVar(&c.GroupSize, "group-size", 20, "members per group")
	flag.Float64Var(&c.GroupShare, "group-share", 0.2, "share of the events sent to groups")
	flag.IntVar(&c.Partitions, "partitions", 12, "partitions of the events topic (keyed by conversation)")
	flag.IntVar(&c.UserParts, "user-partitions", 64, "partitions of the delivery topic (keyed by user)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "deliverysim:", err)
		os.Exit(1)
	}
}

func logf(f string, a ...any) { fmt.Fprintf(os.Stderr, "deliverysim: "+f+"\n", a...) }

func part(key string, n int) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int32(h.Sum32() % uint32(n))
}

type workload struct {
	members map[string][]string // conversation → members
	events  []*kgo.Record       // keyed by conversation
	deliver []*kgo.Record       // one per (event, member), keyed by user
	users   []string
}

func build(c config) (*workload, error) {
	w := &workload{members: map[string][]string{}}
	var pairs, groups []string
	u := 0
	next := func() string { u++; s := fmt.Sprintf("u%06d", u); w.users = append(w.users, s); return s }
	for i := 0; i < c.Pairs; i++ {
		id := fmt.Sprintf("d:%06d", i)
		w.members[id] = []string{next(), next()}
		pairs = append(pairs, id)
	}
	for i := 0; i < c.Groups; i++ {
		id := fmt.Sprintf("g:%06d", i)
		for j := 0; j < c.GroupSize; j++ {
			w.members[id] = append(w.members[id], next())
		}
		groups = append(groups, id)
	}
	seq := map[string]int64{}
	for i := 0; i < c.Events; i++ {
		conv := pairs[i%len(pairs)]
		if float64(i%100) < c.GroupShare*100 {
			conv = groups[i%len(groups)]
		}
		seq[conv]++
		m := w.members[conv]
		ev := &pb.Event{ConversationId: conv, Seq: seq[conv], Version: seq[conv], ActorUserId: m[0], ActorDeviceId: "phone",
			CommandId: fmt.Sprintf("c-%d", i), OccurredAt: timestamppb.Now(),
			Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{ClientMsgId: fmt.Sprintf("m-%d", i),
				Text: "a message of about the length people write, sixty bytes or so"}}}
		b, err := proto.Marshal(ev)
		if err != nil {
			return nil, err
		}
		w.events = append(w.events, &kgo.Record{Key: []byte(conv), Value: b})
		for _, user := range m {
			w.deliver = append(w.deliver, &kgo.Record{Key: []byte(user), Value: b})
		}
	}
	return w, nil
}

func run(c config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := testenv.Start(ctx, testenv.Options{Logf: logf})
	if err != nil {
		return err
	}
	defer func() { env.Stop(); _ = os.RemoveAll(env.Dir) }()
	w, err := build(c)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.KafkaSeeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for name, n := range map[string]int{"sim.events": c.Partitions, "sim.deliveries": c.UserParts} {
		if _, err := adm.CreateTopic(ctx, int32(n), 1, nil, name); err != nil {
			return err
		}
	}
	fanout := float64(len(w.deliver)) / float64(len(w.events))
	logf("%d events to %d conversations (%d users), %.2f members per event on average", len(w.events), len(w.members), len(w.users), fanout)
	write := func(topic string, recs []*kgo.Record, n int) (self, kafka time.Duration, err error) {
		for _, r := range recs {
			r.Topic, r.Partition = topic, part(string(r.Key), n)
		}
		s0, k0 := selfCPU(), cpu(env.KafkaPID)
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return 0, 0, err
		}
		return selfCPU() - s0, cpu(env.KafkaPID) - k0, nil
	}
	evSelf, evKafka, err := write("sim.events", w.events, c.Partitions)
	if err != nil {
		return err
	}
	dSelf, dKafka, err := write("sim.deliveries", w.deliver, c.UserParts)
	if err != nil {
		return err
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(len(w.events)) }
	fmt.Printf("writing, µs of CPU per event: events topic producer %.1f + Kafka %.1f; delivery topic producer %.1f + Kafka %.1f (%.2f records per event)\n",
		per(evSelf), per(evKafka), per(dSelf), per(dKafka), fanout)

	fmt.Println("gateways  design          records read per gateway   µs of CPU per event of total traffic, per gateway (gateway + Kafka serving it)   cores per gateway at 10k / 100k events/s")
	for _, n := range []int{2, 8, 32} {
		for _, design := range []string{"all events", "delivery topic"} {
			var gw, ks time.Duration
			var read int
			for g := 0; g < n; g++ {
				self, kafka, recs, err := consume(ctx, env, w, c, design, n, g)
				if err != nil {
					return err
				}
				gw += self
				ks += kafka
				read += recs
			}
			us := (per(gw) + per(ks)) / float64(n)
			fmt.Printf("%8d  %-14s  %24d   %.2f (%.2f + %.2f)   %.3f / %.2f\n", n, design, read/n, us, per(gw)/float64(n), per(ks)/float64(n),
				us*10_000/1e6, us*100_000/1e6)
		}
	}
	return nil
}

// consume runs gateway g of n alone: it reads its share of the records of
// design and does a gateway's work on each; it returns its CPU, Kafka's, and
// how many records it read.
func consume(ctx context.Context, env *testenv.Env, w *workload, c config, design string, n, g int) (self, kafka time.Duration, read int, err error) {
	// Where a user is connected: today any gateway (a hash of the user); with
	// the delivery topic the gateway that owns the user's partition.
	local := map[string]bool{}
	for _, u := range w.users {
		if design == "all events" && part(u, 1<<20)%int32(n) == int32(g) {
			local[u] = true
		}
		if design == "delivery topic" && part(u, c.UserParts)%int32(n) == int32(g) {
			local[u] = true
		}
	}
	topic, parts, want := "sim.events", map[int32]kgo.Offset{}, 0
	if design == "all events" {
		for p := 0; p < c.Partitions; p++ {
			parts[int32(p)] = kgo.NewOffset().AtStart()
		}
		want = len(w.events)
	} else {
		topic = "sim.deliveries"
		for p := 0; p < c.UserParts; p++ {
			if p%n == g {
				parts[int32(p)] = kgo.NewOffset().AtStart()
			}
		}
		for _, r := range w.deliver {
			if _, ok := parts[r.Partition]; ok {
				want++
			}
		}
	}
	s0, k0 := selfCPU(), cpu(env.KafkaPID)
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.KafkaSeeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		return 0, 0, 0, err
	}
	defer cl.Close()
	frames := 0
	for read < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, 0, 0, ctx.Err()
		}
		if err := fs.Err0(); err != nil {
			return 0, 0, 0, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			ev := &pb.Event{}
			if proto.Unmarshal(r.Value, ev) != nil {
				return
			}
			hit := false
			if design == "all events" {
				for _, m := range w.members[ev.GetConversationId()] {
					hit = hit || local[m]
				}
			} else {
				hit = local[string(r.Key)]
			}
			if hit {
				if b, err := proto.Marshal(&pb.ServerFrame{Body: &pb.ServerFrame_Event{Event: ev}}); err == nil && len(b) > 0 {
					frames++
				}
			}
		})
	}
	if frames == 0 {
		return 0, 0, 0, fmt.Errorf("gateway %d of %d (%s): no deliveries among %d records", g, n, design, read)
	}
	return selfCPU() - s0, cpu(env.KafkaPID) - k0, read, nil
}

// selfCPU is this process's CPU time so far, to the microsecond.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpu is process pid's CPU time so far (1/100 s ticks).
func cpu(pid int) time.Duration {
	d, _ := testenv.ProcessCPU(pid)
	return d
}
