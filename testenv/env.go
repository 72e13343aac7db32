package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Options configures Start. The zero value works: free ports, a new state
// directory under the system temp dir, modest heaps, JVMs tied to this process.
type Options struct {
	// Dir holds data, logs and env.json; empty means a new temp directory.
	Dir string
	// KafkaHeapMB and CassandraHeapMB cap the JVM heaps (default 512 and 1024).
	KafkaHeapMB, CassandraHeapMB int
	// StartTimeout bounds each JVM's start (default 3 minutes).
	StartTimeout time.Duration
	// Detached leaves the JVMs running after this process exits (testenv up);
	// otherwise the kernel kills them when it dies, however it dies.
	Detached bool
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.KafkaHeapMB == 0 {
		o.KafkaHeapMB = 512
	}
	if o.CassandraHeapMB == 0 {
		o.CassandraHeapMB = 1024
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 3 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Env is a running Kafka and Cassandra. Its JSON form is env.json, which is
// how other processes (test binaries, `testenv status`/`down`) find it.
type Env struct {
	KafkaSeeds     []string `json:"kafka_seeds"`
	CassandraHosts []string `json:"cassandra_hosts"`
	Dir            string   `json:"dir"`
	KafkaPID       int      `json:"kafka_pid"`
	CassandraPID   int      `json:"cassandra_pid"`
	// Measured at start, for the README's figures.
	FetchTime          Duration `json:"fetch_time"`
	KafkaStartTime     Duration `json:"kafka_start_time"`
	CassandraStartTime Duration `json:"cassandra_start_time"`

	procs []*proc
}

// Duration marshals as a Go duration string.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// EnvFileName is the name of the file in Dir that describes a running Env.
const EnvFileName = "env.json"

// Start fetches (if needed) and starts Kafka and Cassandra in parallel and
// returns once both answer their own protocol.
func Start(ctx context.Context, opts Options) (*Env, error) {
	opts.defaults()
	java, err := javaBinary(ctx)
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "parley-testenv-"); err != nil {
			return nil, err
		}
	}
	if opts.Dir, err = filepath.Abs(opts.Dir); err != nil {
		return nil, err
	}
	ports, err := FreePorts(5)
	if err != nil {
		return nil, err
	}
	env := &Env{Dir: opts.Dir}

	t0 := time.Now()
	var kafkaLib, cassLib string
	var wg sync.WaitGroup
	var ferr [2]error
	wg.Add(2)
	go func() { defer wg.Done(); kafkaLib, ferr[0] = fetch(ctx, "kafka", KafkaVersion, kafkaArtifacts) }()
	go func() {
		defer wg.Done()
		cassLib, ferr[1] = fetch(ctx, "cassandra", CassandraVersion, cassandraArtifacts)
	}()
	wg.Wait()
	if err := errors.Join(ferr[:]...); err != nil {
		return nil, err
	}
	env.FetchTime = Duration(time.Since(t0))
	opts.Logf("testenv: jars ready in %s", time.Since(t0).Round(time.Millisecond))

	var kp, cp *proc
	var serr [2]error
	wg.Add(2)
	go func() {
		defer wg.Done()
		t := time.Now()
		kp, serr[0] = startKafka(ctx, java, kafkaLib, filepath.Join(opts.Dir, "kafka"), ports[0], ports[1], opts.KafkaHeapMB, !opts.Detached, opts.StartTimeout, opts.Logf)
		env.KafkaStartTime = Duration(time.Since(t))
		if kp != nil {
			kp.restart = func(ctx context.Context) (*proc, error) {
				return startKafka(ctx, java, kafkaLib, filepath.Join(opts.Dir, "kafka"), ports[0], ports[1], opts.KafkaHeapMB, !opts.Detached, opts.StartTimeout, opts.Logf)
			}
		}
	}()
	go func() {
		defer wg.Done()
		t := time.Now()
		start := func(ctx context.Context) (*proc, error) {
			return startCassandra(ctx, java, cassLib, filepath.Join(opts.Dir, "cassandra"), ports[2], ports[3], ports[4], opts.CassandraHeapMB, !opts.Detached, opts.StartTimeout)
		}
		cp, serr[1] = start(ctx)
		env.CassandraStartTime = Duration(time.Since(t))
		if cp != nil {
			cp.restart = start
		}
	}()
	wg.Wait()
	for _, p := range []*proc{kp, cp} {
		if p != nil {
			env.procs = append(env.procs, p)
		}
	}
	if err := errors.Join(serr[:]...); err != nil {
		env.Stop()
		return nil, err
	}
	env.KafkaSeeds = []string{fmt.Sprintf("127.0.0.1:%d", ports[0])}
	env.CassandraHosts = []string{fmt.Sprintf("127.0.0.1:%d", ports[2])}
	env.KafkaPID, env.CassandraPID = kp.pid, cp.pid
	opts.Logf("testenv: kafka %s on %s ready in %s; cassandra %s on %s ready in %s",
		KafkaVersion, env.KafkaSeeds[0], time.Duration(env.KafkaStartTime).Round(time.Millisecond),
		CassandraVersion, env.CassandraHosts[0], time.Duration(env.CassandraStartTime).Round(time.Millisecond))
	if err := env.write(); err != nil {
		env.Stop()
		return nil, err
	}
	return env, nil
}

func (e *Env) write() error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(e.Dir, EnvFileName+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(e.Dir, EnvFileName))
}

// Load reads the env.json of a running Env (from `testenv up` or `run`).
func Load(file string) (*Env, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var e Env
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("testenv: %s: %w", file, err)
	}
	for _, x := range []struct {
		name string
		pid  int
	}{{"kafka", e.KafkaPID}, {"cassandra", e.CassandraPID}} {
		e.procs = append(e.procs, &proc{name: x.name, pid: x.pid})
	}
	return &e, nil
}

// Process is what Status reports of one JVM.
type Process struct {
	Name   string
	PID    int
	Alive  bool
	RSSKiB int64
}

// Status reports each JVM of the Env.
func (e *Env) Status() []Process {
	var out []Process
	for _, p := range e.procs {
		alive := p.alive() && isJava(p.pid)
		ps := Process{Name: p.name, PID: p.pid, Alive: alive}
		if alive {
			ps.RSSKiB = p.rssKiB()
		}
		out = append(out, ps)
	}
	return out
}

// Stop terminates both JVMs (SIGTERM, then SIGKILL after a grace period) and
// removes env.json. The data directory stays for inspection.
func (e *Env) Stop() {
	var wg sync.WaitGroup
	for _, p := range e.procs {
		if p.exited == nil && !isJava(p.pid) {
			continue // the pid was reused by something that is not ours
		}
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop(20 * time.Second) }(p)
	}
	wg.Wait()
	_ = os.Remove(filepath.Join(e.Dir, EnvFileName))
}

func isJava(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "java")
}

// Alive reports whether both JVMs of the env still run.
func (e *Env) Alive() bool {
	for _, p := range e.Status() {
		if !p.Alive {
			return false
		}
	}
	return true
}

// DefaultDir is the state directory of the background env (`testenv up`).
func DefaultDir() (string, error) {
	c, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "env"), nil
}

// Up returns the background env in dir (DefaultDir when empty), starting it
// detached if it is not running; leftovers of a half-dead one are stopped.
func Up(ctx context.Context, dir string, logf func(string, ...any)) (*Env, error) {
	if dir == "" {
		var err error
		if dir, err = DefaultDir(); err != nil {
			return nil, err
		}
	}
	if env, err := Load(filepath.Join(dir, EnvFileName)); err == nil && env.Alive() {
		return env, nil
	} else if err == nil {
		env.Stop()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return Start(ctx, Options{Dir: dir, Detached: true, Logf: logf})
}
