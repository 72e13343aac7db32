// Command fault is Parley's fault run (`go tool task fault`): on a Kafka and
// Cassandra of its own it runs the gateway and query in this process and the
// decider and the projector as separate binaries, drives a steady stream of
// direct messages from clients that resend with the same clientMsgId until
// accepted (the documented client contract), and crashes, one round at a
// time, the decider, the projector and Cassandra (SIGKILL, restart after
// -down). For each round it reports how long after the restart deliveries
// resumed and the views were current again; at the end it checks that every
// accepted message is in the views exactly once with dense seqs, and that a
// device that went offline before the Cassandra crash resumes every
// conversation completely. It exits 1 when any of that fails.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

type config struct {
	Conversations int           `json:"conversations"`
	Receivers     int           `json:"receivers"`
	Rate          int           `json:"rate_msgs_per_s"`
	Warmup        time.Duration `json:"warmup_ns"`
	Down          time.Duration `json:"down_ns"`
	Settle        time.Duration `json:"settle_ns"`
	Faults        []string      `json:"faults"`
	// Cluster runs on testenv's cluster mode (three brokers, three
	// Cassandra nodes, replication factor 3) instead of one node of each.
	Cluster bool   `json:"cluster"`
	Out     string `json:"-"`
}

func main() {
	var c config
	var faults string
	flag.IntVar(&c.Conversations, "conversations", 100, "direct conversations, one sender each")
	flag.IntVar(&c.Receivers, "receivers", 20, "users receiving them (each in conversations/receivers conversations, with a live phone and a laptop)")
	flag.IntVar(&c.Rate, "rate", 200, "messages per second, all senders together")
	flag.DurationVar(&c.Warmup, "warmup", 15*time.Second, "steady traffic before the first fault")
	flag.DurationVar(&c.Down, "down", 5*time.Second, "how long a crashed process stays down")
	flag.DurationVar(&c.Settle, "settle", 10*time.Second, "steady traffic after a round recovered, before the next")
	flag.StringVar(&faults, "faults", "", "rounds, in order: ingest, projector, cassandra, and on a cluster kafka-leader and kafka-controller (default ingest,projector,cassandra; on a cluster kafka-leader,kafka-controller,cassandra,ingest,projector)")
	flag.BoolVar(&c.Cluster, "cluster", false, "run on three Kafka brokers and three Cassandra nodes (testenv's cluster mode, replication factor 3, min.insync.replicas 2, LOCAL_QUORUM); cassandra then kills one node")
	flag.StringVar(&c.Out, "out", "", "result file (default $PARLEY_CACHE/fault/results-<time>.json)")
	flag.Parse()
	if faults == "" {
		faults = "ingest,projector,cassandra"
		if c.Cluster {
			faults = "kafka-leader,kafka-controller,cassandra,ingest,projector"
		}
	}
	c.Faults = strings.Split(faults, ",")
	for _, f := range c.Faults {
		known := f == "ingest" || f == "projector" || f == "cassandra"
		if c.Cluster && (f == "kafka-leader" || f == "kafka-controller") {
			known = true
		}
		if !known {
			fmt.Fprintf(os.Stderr, "fault: unknown fault %q (want ingest, projector or cassandra; kafka-leader or kafka-controller with -cluster)\n", f)
			os.Exit(2)
		}
	}
	if c.Conversations < 1 || c.Receivers < 1 || c.Receivers > c.Conversations || c.Rate < 1 {
		fmt.Fprintln(os.Stderr, "fault: want 1 ≤ receivers ≤ conversations and rate ≥ 1")
		os.Exit(2)
	}
	ok, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func logf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "fault: %s "+f+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
}

// round is what one fault cost.
type round struct {
	Fault string `json:"fault"`
	// KilledAt and RestartedAt (the process started again; for Cassandra,
	// answering CQL again) are offsets from the start of the run.
	KilledAt    time.Duration `json:"killed_at_ns"`
	RestartedAt time.Duration `json:"restarted_at_ns"`
	// DeliveryAfterRestart: from RestartedAt to the first live delivery of
	// a message decided after the kill (negative: deliveries never stopped,
	// it came before the restart). ViewsCurrentAfterRestart: from
	// RestartedAt until the views of the sampled conversations held every
	// message delivered live by RestartedAt.
	DeliveryAfterRestart     time.Duration `json:"delivery_after_restart_ns"`
	ViewsCurrentAfterRestart time.Duration `json:"views_current_after_restart_ns"`
	// LongestDeliveryGap is the longest time without any live delivery
	// between the kill and the views being current.
	LongestDeliveryGap time.Duration `json:"longest_delivery_gap_ns"`
	// LongestAcceptGap is the longest time without any send accepted, from
	// the kill until the views are current; Resends how many sends the
	// clients sent again meanwhile (a timeout or a refusal, then the same
	// clientMsgId again).
	LongestAcceptGap time.Duration `json:"longest_accept_gap_ns"`
	Resends          int64         `json:"resends"`
}

type result struct {
	Rounds          []round `json:"rounds"`
	Accepted        int64   `json:"accepted"`
	Resends         int64   `json:"resends"`
	MissingFromView int     `json:"missing_from_views"`
	Duplicated      int     `json:"duplicated_in_views"`
	SeqGaps         int     `json:"seq_gaps"`
	OfflineResume   string  `json:"offline_resume"`
}

// run does the whole run; ok is false when a correctness check failed.
func run(c config) (bool, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start, replication := testenv.Start, 1
	if c.Cluster {
		start, replication = testenv.StartCluster, testenv.ClusterSize
	}
	env, err := start(ctx, testenv.Options{Logf: logf, StartTimeout: 6 * time.Minute})
	if err != nil {
		return false, err
	}
	defer func() { env.Stop(); _ = os.RemoveAll(env.Dir) }()
	bins, err := build(ctx, "ingest", "projector")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(filepath.Dir(bins["ingest"]))
	const keyspace, prefix = "parley_fault", "fault."
	sys, err := system.Start(ctx, system.Options{
		Seeds: env.KafkaSeeds, Hosts: env.CassandraHosts, Keyspace: keyspace, TopicPrefix: prefix,
		External: []string{"ingest", "projector"}, KeyspaceReplication: replication,
		GatewayLimits: gateway.Limits{RatePerSecond: 1e6, Burst: 1_000_000},
	})
	if err != nil {
		return false, err
	}
	defer sys.Close()
	procs := &children{bins: bins, env: []string{
		"PARLEY_KAFKA_SEEDS=" + strings.Join(env.KafkaSeeds, ","),
		"PARLEY_CASSANDRA_HOSTS=" + strings.Join(env.CassandraHosts, ","),
		"PARLEY_KEYSPACE=" + keyspace,
		"PARLEY_TOPIC_PREFIX=" + prefix,
		"PARLEY_INGEST_GROUP=" + sys.GroupOf("ingest"),
		"PARLEY_INGEST_TRANSACTIONAL_ID=" + sys.TxnIDOf("ingest"),
		"PARLEY_PROJECTOR_GROUP=" + sys.GroupOf("projector"),
	}, running: map[string]*exec.Cmd{}}
	defer procs.killAll()
	for _, n := range []string{"ingest", "projector"} {
		if err := procs.start(n); err != nil {
			return false, err
		}
	}
	w, err := newWorld(ctx, c, sys)
	if err != nil {
		return false, err
	}
	defer w.close()
	t0 := time.Now()
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	senders := w.startSenders(sendCtx)
	logf("%d conversations, %d msgs/s; warm-up %s", c.Conversations, c.Rate, c.Warmup)
	if err := sleep(ctx, c.Warmup); err != nil {
		return false, err
	}
	var res result
	for _, f := range c.Faults {
		if f == "cassandra" {
			w.laptopsOffline()
		}
		victim := f // the process or server killed
		r, err := w.fault(ctx, f, t0, func() (err error) {
			if victim, err = target(ctx, env, sys, c.Cluster, f); err != nil {
				return err
			}
			logf("%s: killing %s", f, victim)
			return kill(env, procs, victim)
		}, func() error { return restart(ctx, env, procs, victim) })
		if err != nil {
			return false, err
		}
		res.Rounds = append(res.Rounds, r)
		logf("%s: deliveries %s after the restart, views current %s after it, longest delivery gap %s",
			f, r.DeliveryAfterRestart.Round(time.Millisecond), r.ViewsCurrentAfterRestart.Round(time.Millisecond),
			r.LongestDeliveryGap.Round(time.Millisecond))
		if err := sleep(ctx, c.Settle); err != nil {
			return false, err
		}
	}
	stopSending()
	senders.Wait()
	res.Accepted, res.Resends = w.accepted.Load(), w.resends.Load()
	logf("senders stopped: %d accepted (%d resends); checking the views", res.Accepted, res.Resends)
	res.MissingFromView, res.Duplicated, res.SeqGaps, err = w.verifyViews(ctx)
	if err != nil {
		return false, err
	}
	res.OfflineResume = "not run (no cassandra round)"
	if slices.Contains(c.Faults, "cassandra") {
		res.OfflineResume = w.resumeLaptops(ctx)
	}
	ok := res.MissingFromView == 0 && res.Duplicated == 0 && res.SeqGaps == 0 &&
		(res.OfflineResume == "complete" || !slices.Contains(c.Faults, "cassandra"))
	printResult(res)
	return ok, writeResult(c, res)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// target names what a fault kills: the decider or projector process, the
// Cassandra server (on a cluster its second node), the broker leading
// partition 0 of the events topic, or the active KRaft controller.
func target(ctx context.Context, env *testenv.Env, sys *system.System, cluster bool, f string) (string, error) {
	switch {
	case f == "cassandra" && cluster:
		return "cassandra-2", nil
	case f == "kafka-leader" || f == "kafka-controller":
		id, err := kafkaNodeOf(ctx, env, sys, f == "kafka-controller")
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("kafka-%d", id), nil
	}
	return f, nil
}

// kafkaNodeOf is the id of the broker leading partition 0 of the events
// topic, or of the active controller (the leader of the metadata quorum).
func kafkaNodeOf(ctx context.Context, env *testenv.Env, sys *system.System, controller bool) (int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.KafkaSeeds...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if controller {
		req := kmsg.NewPtrDescribeQuorumRequest()
		t := kmsg.NewDescribeQuorumRequestTopic()
		t.Topic = "__cluster_metadata"
		p := kmsg.NewDescribeQuorumRequestTopicPartition()
		t.Partitions = append(t.Partitions, p)
		req.Topics = append(req.Topics, t)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return 0, err
		}
		if len(resp.Topics) == 0 || len(resp.Topics[0].Partitions) == 0 {
			return 0, fmt.Errorf("describe quorum: no partition in the answer")
		}
		qp := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(qp.ErrorCode); err != nil {
			return 0, fmt.Errorf("describe quorum: %w", err)
		}
		return qp.LeaderID, nil
	}
	md, err := kadm.NewClient(cl).Metadata(ctx, sys.Topics.Events.Name)
	if err != nil {
		return 0, err
	}
	parts := md.Topics[sys.Topics.Events.Name].Partitions
	if p, ok := parts[0]; ok && p.Leader >= 0 {
		return p.Leader, nil
	}
	return 0, fmt.Errorf("partition 0 of %s has no leader", sys.Topics.Events.Name)
}

func kill(env *testenv.Env, procs *children, victim string) error {
	if victim != "ingest" && victim != "projector" {
		return env.Kill(victim)
	}
	procs.kill(victim)
	return nil
}

func restart(ctx context.Context, env *testenv.Env, procs *children, victim string) error {
	if victim != "ingest" && victim != "projector" {
		return env.Restart(ctx, victim)
	}
	return procs.start(victim)
}

// children are the decider and projector binaries.
type children struct {
	bins    map[string]string
	env     []string
	mu      sync.Mutex
	running map[string]*exec.Cmd
}

func (c *children) start(name string) error {
	cmd := exec.Command(c.bins[name])
	cmd.Env = append(append(os.Environ(), c.env...),
		"PARLEY_HTTP_ADDR=127.0.0.1:0",
		// Static membership: the restarted process takes its partitions back
		// at once (schemas/deploy.Membership).
		"PARLEY_INSTANCE_ID=fault-"+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logFile, err := os.CreateTemp("", "parley-fault-"+name+"-*.log")
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	logf("%s running, pid %d, log %s", name, cmd.Process.Pid, logFile.Name())
	c.mu.Lock()
	c.running[name] = cmd
	c.mu.Unlock()
	return nil
}

func (c *children) kill(name string) {
	c.mu.Lock()
	cmd := c.running[name]
	delete(c.running, name)
	c.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
}

func (c *children) killAll() {
	for _, n := range []string{"ingest", "projector"} {
		c.kill(n)
	}
}

func build(ctx context.Context, names ...string) (map[string]string, error) {
	dir, err := os.MkdirTemp("", "parley-fault-bin-")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		bin := filepath.Join(dir, n)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/parley-im/parley/"+n+"/cmd/"+n)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", n, err, b)
		}
		out[n] = bin
	}
	return out, nil
}

func printResult(r result) {
	fmt.Println("fault             down for   deliveries resumed   views current   longest delivery gap   longest accept gap   resends")
	fmt.Println("                  (kill to   (after the restart)  (after the      (from the kill)        (from the kill)")
	fmt.Println("                  restart)                        restart)")
	for _, x := range r.Rounds {
		resumed := x.DeliveryAfterRestart.Round(time.Millisecond).String()
		if x.DeliveryAfterRestart < 0 {
			resumed = "never stopped"
		}
		fmt.Printf("%-16s %9s %21s %15s %22s %20s %9d\n", x.Fault, (x.RestartedAt - x.KilledAt).Round(100*time.Millisecond), resumed,
			x.ViewsCurrentAfterRestart.Round(time.Millisecond), x.LongestDeliveryGap.Round(time.Millisecond),
			x.LongestAcceptGap.Round(time.Millisecond), x.Resends)
	}
	fmt.Printf("accepted %d (resends %d); missing from views %d, duplicated %d, seq gaps %d; offline device resume: %s\n",
		r.Accepted, r.Resends, r.MissingFromView, r.Duplicated, r.SeqGaps, r.OfflineResume)
}

func writeResult(c config, r result) error {
	out := c.Out
	if out == "" {
		cache, err := testenv.CacheDir()
		if err != nil {
			return err
		}
		out = filepath.Join(cache, "fault", "results-"+time.Now().UTC().Format("20060102-150405")+".json")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(map[string]any{"config": c, "result": r}, "", "  ")
	if err != nil {
		return err
	}
	logf("results written to %s", out)
	return os.WriteFile(out, b, 0o644)
}

// getJSON GETs a query URL as user.
func getJSON(ctx context.Context, sys *system.System, user, path string, out any) (int, error) {
	tok, err := sys.Issuer.Issue(user, "fault-check", time.Hour)
	if err != nil {
		return 0, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sys.QueryURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	return 200, json.Unmarshal(b, out)
}
