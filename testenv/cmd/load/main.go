// Command load is Parley's load benchmark (`go tool task bench`). It starts
// a fresh Kafka and Cassandra (or uses the background env with -shared-env),
// runs the whole of Parley in a child process, opens many WebSocket clients
// from several loopback source addresses, runs a mixed 1:1 and group
// workload at a fixed rate after a warm-up, and reports accepted-ack
// latency, send→deliver latency measured at the recipients (split at the
// decider), sustained messages/s, view lag (delivered live → visible in
// query), CPU per process, the decider's transactions, gateway RSS per
// connection, and lost and duplicated deliveries. Results go to a JSON file.
//
// With -idle N it instead holds N idle connections on one gateway and
// reports their memory. With -secured it runs on nodes secured as in
// production (secured.go), for the cost of TLS and SASL_SSL.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley/testenv"
)

type config struct {
	Clients     int           `json:"clients"`
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	Rate        int           `json:"rate_msgs_per_s"`
	GroupSize   int           `json:"group_size"`
	GroupShare  float64       `json:"group_share_of_users"`
	Sources     int           `json:"source_addresses"`
	Idle        int           `json:"idle_connections,omitempty"`
	ViewSample  int           `json:"view_lag_sample_every"`
	Out         string        `json:"-"`
	CPUProfile  string        `json:"-"`
	HeapProfile string        `json:"-"`
	SharedEnv   bool          `json:"shared_env"`
	// Cluster runs on testenv's cluster mode: three brokers and three
	// Cassandra nodes, topics and keyspace at replication factor 3.
	Cluster     bool      `json:"cluster"`
	Secured     bool      `json:"secured"`
	Mix         string    `json:"mix"`
	StartedAt   time.Time `json:"started_at"`
	MachineCPUs int       `json:"machine_cpus"`
}

func main() {
	if os.Getenv(serveVar) != "" {
		if err := serve(); err != nil {
			fmt.Fprintln(os.Stderr, "load: serve:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	flag.IntVar(&c.Clients, "clients", 2000, "connected clients (one device each)")
	flag.DurationVar(&c.Duration, "duration", 60*time.Second, "how long to send (measured)")
	flag.DurationVar(&c.Warmup, "warmup", 30*time.Second, "how long to send first at the same rate, unmeasured (the JVMs are fresh)")
	flag.IntVar(&c.Rate, "rate", 1000, "messages per second, all senders together")
	flag.IntVar(&c.GroupSize, "group-size", 20, "members per group")
	flag.Float64Var(&c.GroupShare, "group-share", 0.5, "share of users in groups; the rest are in 1:1 pairs")
	flag.IntVar(&c.Sources, "sources", 8, "loopback source addresses to dial from (127.0.0.1 … 127.0.0.N)")
	flag.IntVar(&c.Idle, "idle", 0, "instead of the workload, hold this many idle connections and report memory")
	flag.IntVar(&c.ViewSample, "view-sample", 50, "measure view lag for every Nth message")
	flag.StringVar(&c.Out, "out", "", "result file (default $PARLEY_CACHE/bench/results-<time>.json)")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the Parley process, taken mid-run, to this file")
	flag.StringVar(&c.HeapProfile, "heapprofile", "", "with -idle: write a heap profile of the Parley process, taken with every connection open, to this file")
	flag.StringVar(&c.Mix, "mix", "plain", "workload: plain (text messages only) or rich (a share of the commands are replies, mentions, reactions, edits and recalls; -rate counts every command)")
	flag.BoolVar(&c.Cluster, "cluster", false, "run on three Kafka brokers and three Cassandra nodes of its own (testenv's cluster mode: replication factor 3, min.insync.replicas 2, LOCAL_QUORUM)")
	flag.BoolVar(&c.SharedEnv, "shared-env", false, "run on the background env (go tool task env:up) instead of a fresh Kafka and Cassandra of its own")
	flag.BoolVar(&c.Secured, "secured", false, "run secured as in production: TLS at the gateways and query, Kafka over SASL_SSL with ACLs, Cassandra with roles over TLS (fresh nodes of its own)")
	flag.Parse()
	c.StartedAt, c.MachineCPUs = time.Now().UTC(), numCPU()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "load: "+f+"\n", a...) }
	prefix := fmt.Sprintf("bench-%d.", time.Now().Unix())
	var env *testenv.Env
	var childEnv []string
	var err error
	switch {
	case c.Secured && c.SharedEnv:
		return errors.New("-secured starts nodes of its own: leave out -shared-env")
	case c.Secured:
		dir, err := os.MkdirTemp("", "parley-bench-secured-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		var settings string
		var stopSecured func()
		if env, settings, stopSecured, err = startSecured(ctx, dir, prefix, logf); err != nil {
			return err
		}
		defer stopSecured()
		childEnv = []string{securedVar + "=" + settings}
	case c.Cluster && (c.SharedEnv || c.Secured):
		return errors.New("-cluster starts nodes of its own: leave out -shared-env and -secured")
	case c.Cluster:
		if env, err = testenv.StartCluster(ctx, testenv.Options{Logf: logf}); err != nil {
			return err
		}
		defer func() { env.Stop(); _ = os.RemoveAll(env.Dir) }()
		childEnv = []string{clusterVar + "=" + strings.Join(env.KafkaSeeds, ",") + ";" + strings.Join(env.CassandraHosts, ",")}
	default:
		if env, err = benchEnv(ctx, c.SharedEnv, logf); err != nil {
			return err
		}
		if !c.SharedEnv {
			defer func() { env.Stop(); _ = os.RemoveAll(env.Dir) }()
		}
		childEnv = []string{"PARLEY_LOAD_ENV=" + filepath.Join(env.Dir, testenv.EnvFileName)}
	}
	srv, err := startServer(ctx, env, prefix, childEnv, logf)
	if err != nil {
		return err
	}
	defer srv.stop()
	var res any
	if c.Idle > 0 {
		res, err = idle(ctx, c, srv, logf)
	} else {
		res, err = workload(ctx, c, srv, logf)
	}
	if err != nil {
		return err
	}
	return writeResult(c, res, logf)
}

// benchEnv is a fresh Kafka and Cassandra for this run (tied to this
// process, removed afterwards), so figures do not depend on what earlier
// test runs left in the background env (thousands of topics); or, when
// shared, the background env.
func benchEnv(ctx context.Context, shared bool, logf func(string, ...any)) (*testenv.Env, error) {
	if shared {
		return testenv.Up(ctx, "", logf)
	}
	if bg, err := testenv.DefaultDir(); err == nil {
		if e, err := testenv.Load(filepath.Join(bg, testenv.EnvFileName)); err == nil && e.Alive() {
			logf("the background env is running and shares the CPU with this run; `go tool task env:down` stops it")
		}
	}
	return testenv.Start(ctx, testenv.Options{Logf: logf})
}

func writeResult(c config, res any, logf func(string, ...any)) error {
	out := c.Out
	if out == "" {
		cache, err := testenv.CacheDir()
		if err != nil {
			return err
		}
		out = filepath.Join(cache, "bench", "results-"+c.StartedAt.Format("20060102-150405")+".json")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(map[string]any{"config": c, "result": res}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	logf("results written to %s", out)
	return nil
}

// server is the child process running Parley.
type server struct {
	cmd      *exec.Cmd
	env      *testenv.Env
	info     serveInfo
	secret   []byte
	stopOnce func()
}

func (s *server) stop() { s.stopOnce() }

// startServer re-executes this binary in serve mode and reads its URLs.
func startServer(ctx context.Context, env *testenv.Env, prefix string, childEnv []string, logf func(string, ...any)) (*server, error) {
	secret := make([]byte, 32)
	if _, err := randRead(secret); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(append(os.Environ(), serveVar+"=1",
		"PARLEY_LOAD_SECRET="+hex.EncodeToString(secret),
		"PARLEY_LOAD_PREFIX="+prefix), childEnv...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, env: env, secret: secret}
	s.stopOnce = func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	dec := json.NewDecoder(stdout)
	ready := make(chan error, 1)
	go func() { ready <- dec.Decode(&s.info) }()
	select {
	case err := <-ready:
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("server did not start: %w", err)
		}
	case <-time.After(3 * time.Minute):
		s.stop()
		return nil, errors.New("server did not start in 3 minutes")
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	logf("parley running in pid %d: gateways %v, query %s", cmd.Process.Pid, s.info.Gateways, s.info.Query)
	return s, nil
}
