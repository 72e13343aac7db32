package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Options configures Start. The zero value works: free ports, a new state
// directory under the system temp dir, modest heaps, servers tied to this
// process.
type Options struct {
	// Dir holds data, logs and env.json; empty means a new temp directory.
	Dir string
	// KafkaHeapMB and CassandraHeapMB cap the JVM heaps (default 512 and 1024).
	KafkaHeapMB, CassandraHeapMB int
	// StartTimeout bounds each server's start (default 3 minutes).
	StartTimeout time.Duration
	// Detached leaves the servers running after this process exits (testenv
	// up); otherwise the kernel kills them when it dies, however it dies.
	Detached bool
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// prepare fills in the defaults, makes the state directory (a new temp
// directory named after prefix when Dir is empty) absolute, and finds java.
func (o *Options) prepare(ctx context.Context, prefix string) (java string, err error) {
	o.defaults()
	if java, err = javaBinary(ctx); err != nil {
		return "", err
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", prefix); err != nil {
			return "", err
		}
	}
	o.Dir, err = filepath.Abs(o.Dir)
	return java, err
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

// Env is a running Kafka, Cassandra and S3-compatible store (Versity
// Gateway). Its JSON form is env.json, which is how other processes (test
// binaries, `testenv status`/`down`) find it; it holds the S3 credentials,
// so it is readable by its owner only.
type Env struct {
	KafkaSeeds     []string `json:"kafka_seeds"`
	CassandraHosts []string `json:"cassandra_hosts"`
	// S3Endpoint is host:port (plain http); the access key and secret are
	// random, made at start. All three are empty in the env.json of an
	// older testenv (HasS3).
	S3Endpoint   string `json:"s3_endpoint"`
	S3AccessKey  string `json:"s3_access_key"`
	S3SecretKey  string `json:"s3_secret_key"`
	Dir          string `json:"dir"`
	KafkaPID     int    `json:"kafka_pid"`
	CassandraPID int    `json:"cassandra_pid"`
	S3PID        int    `json:"s3_pid"`
	// Measured at start, for the README's figures. FetchTime includes the
	// build of versitygw, made alongside the jar fetch.
	FetchTime          Duration `json:"fetch_time"`
	KafkaStartTime     Duration `json:"kafka_start_time"`
	CassandraStartTime Duration `json:"cassandra_start_time"`
	S3StartTime        Duration `json:"s3_start_time"`

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

// Start fetches (if needed) and starts Kafka, Cassandra and the S3 store in
// parallel and returns once each answers its own protocol.
func Start(ctx context.Context, opts Options) (*Env, error) {
	java, err := opts.prepare(ctx, "parley-testenv-")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(6)
	if err != nil {
		return nil, err
	}
	env := &Env{Dir: opts.Dir}

	t0 := time.Now()
	var kafkaLib, cassLib, s3Bin string
	var wg sync.WaitGroup
	var ferr [3]error
	wg.Add(3)
	go func() { defer wg.Done(); kafkaLib, ferr[0] = fetch(ctx, "kafka", KafkaVersion, kafkaArtifacts) }()
	go func() {
		defer wg.Done()
		cassLib, ferr[1] = fetch(ctx, "cassandra", CassandraVersion, cassandraArtifacts)
	}()
	go func() { defer wg.Done(); s3Bin, ferr[2] = versityBinary(ctx, opts.Logf) }()
	wg.Wait()
	if err := errors.Join(ferr[:]...); err != nil {
		return nil, err
	}
	env.FetchTime = Duration(time.Since(t0))
	opts.Logf("testenv: jars and versitygw ready in %s", time.Since(t0).Round(time.Millisecond))

	var kp, cp, sp *proc
	var serr [3]error
	creds := newS3Creds()
	wg.Add(3)
	go func() {
		defer wg.Done()
		t := time.Now()
		start := func(ctx context.Context) (*proc, error) {
			return startS3(ctx, s3Bin, filepath.Join(opts.Dir, "s3"), ports[5], creds, !opts.Detached, opts.StartTimeout)
		}
		sp, serr[2] = start(ctx)
		env.S3StartTime = Duration(time.Since(t))
		if sp != nil {
			sp.restart = start
		}
	}()
	go func() {
		defer wg.Done()
		t := time.Now()
		kp, serr[0] = startKafka(ctx, java, kafkaLib, filepath.Join(opts.Dir, "kafka"), ports[0], ports[1], opts.KafkaHeapMB, !opts.Detached, opts.StartTimeout, opts.Logf, nil)
		env.KafkaStartTime = Duration(time.Since(t))
		if kp != nil {
			kp.restart = func(ctx context.Context) (*proc, error) {
				return startKafka(ctx, java, kafkaLib, filepath.Join(opts.Dir, "kafka"), ports[0], ports[1], opts.KafkaHeapMB, !opts.Detached, opts.StartTimeout, opts.Logf, nil)
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
	for _, p := range []*proc{kp, cp, sp} {
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
	env.S3Endpoint = fmt.Sprintf("127.0.0.1:%d", ports[5])
	env.S3AccessKey, env.S3SecretKey = creds.access, creds.secret
	env.KafkaPID, env.CassandraPID, env.S3PID = kp.pid, cp.pid, sp.pid
	opts.Logf("testenv: kafka %s on %s ready in %s; cassandra %s on %s ready in %s; versitygw %s on %s ready in %s",
		KafkaVersion, env.KafkaSeeds[0], time.Duration(env.KafkaStartTime).Round(time.Millisecond),
		CassandraVersion, env.CassandraHosts[0], time.Duration(env.CassandraStartTime).Round(time.Millisecond),
		VersityGatewayVersion, env.S3Endpoint, time.Duration(env.S3StartTime).Round(time.Millisecond))
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
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
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
		name, exe string
		pid       int
	}{{"kafka", "java", e.KafkaPID}, {"cassandra", "java", e.CassandraPID}, {"s3", "versitygw", e.S3PID}} {
		if x.pid != 0 { // no s3_pid in an older env.json
			e.procs = append(e.procs, &proc{name: x.name, exe: x.exe, pid: x.pid})
		}
	}
	return &e, nil
}

// HasS3 reports whether the env runs an S3 server; one started by an older
// testenv does not (restart it to get one).
func (e *Env) HasS3() bool { return e.S3Endpoint != "" && e.S3PID != 0 }

// Process is what Status reports of one server process.
type Process struct {
	Name   string
	PID    int
	Alive  bool
	RSSKiB int64
}

// Status reports each server process of the Env.
func (e *Env) Status() []Process {
	var out []Process
	for _, p := range e.procs {
		alive := p.alive() && p.ours()
		ps := Process{Name: p.name, PID: p.pid, Alive: alive}
		if alive {
			ps.RSSKiB = p.rssKiB()
		}
		out = append(out, ps)
	}
	return out
}

// Stop terminates every server (SIGTERM, then SIGKILL after a grace period)
// and removes env.json. The data directory stays for inspection.
func (e *Env) Stop() {
	var wg sync.WaitGroup
	for _, p := range e.procs {
		if !p.ours() {
			continue // the pid was reused by something that is not ours
		}
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop(20 * time.Second) }(p)
	}
	wg.Wait()
	_ = os.Remove(filepath.Join(e.Dir, EnvFileName))
}

// Alive reports whether every server of the env still runs.
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
// A running env of an older testenv, without an S3 server, is returned as it
// is (others may be using it), with a line saying how to get one.
func Up(ctx context.Context, dir string, logf func(string, ...any)) (*Env, error) {
	if dir == "" {
		var err error
		if dir, err = DefaultDir(); err != nil {
			return nil, err
		}
	}
	if env, err := Load(filepath.Join(dir, EnvFileName)); err == nil && env.Alive() {
		if !env.HasS3() && logf != nil {
			logf("%v", errNoS3)
		}
		return env, nil
	} else if err == nil {
		env.Stop()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return Start(ctx, Options{Dir: dir, Detached: true, Logf: logf})
}
