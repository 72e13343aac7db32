package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvVar names the env.json of an already running Env. `go tool task test`
// sets it so that every test binary of one `go test ./...` shares one Kafka,
// one Cassandra and one S3 store. Without it, the first test that asks
// starts a private Env for its test binary, which Main stops (or the kernel
// kills with the binary); a binary whose tests ask only for S3 starts only
// an S3 server.
const EnvVar = "PARLEY_TESTENV"

var shared struct {
	once    sync.Once
	env     *Env
	err     error
	started bool
	done    atomic.Bool // once has run
}

func sharedEnv() (*Env, error) {
	shared.once.Do(func() {
		defer shared.done.Store(true)
		if f := os.Getenv(EnvVar); f != "" {
			shared.env, shared.err = Load(f)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		shared.env, shared.err = Start(ctx, Options{})
		shared.started = shared.err == nil
	})
	return shared.env, shared.err
}

var lone struct {
	once sync.Once
	srv  *loneS3
	err  error
}

// Main runs the tests of a package, drops the keyspaces MigratedCassandra
// kept for reuse, and stops the Env (or the lone S3 server) this binary
// started, if it started one. Use it as:
// func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	dropMigrated()
	if shared.started {
		shared.env.Stop()
	}
	if lone.srv != nil {
		lone.srv.p.stop(10 * time.Second)
		if code == 0 { // a failed test's bucket stays for inspection
			_ = os.RemoveAll(lone.srv.dir)
		}
	}
	os.Exit(code)
}

func need(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs Kafka and Cassandra (skipped with -short)")
	}
	env, err := sharedEnv()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return env
}

// KafkaEnv is the Kafka of the shared Env, seen by one test.
type KafkaEnv struct {
	Seeds []string
	t     testing.TB
}

// Kafka returns the shared Kafka. Integration tests are skipped with -short.
func Kafka(t testing.TB) *KafkaEnv {
	t.Helper()
	return &KafkaEnv{Seeds: need(t).KafkaSeeds, t: t}
}

// Client returns a franz-go client on the shared Kafka, closed at cleanup.
func (k *KafkaEnv) Client(opts ...kgo.Opt) *kgo.Client {
	k.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Seeds...)}, opts...)...)
	if err != nil {
		k.t.Fatalf("testenv: kafka client: %v", err)
	}
	k.t.Cleanup(cl.Close)
	return cl
}

// Name returns a topic (or group, or transactional id) name unique to this
// test and this run: "<prefix>.<TestName>.<random>".
func (k *KafkaEnv) Name(prefix string) string {
	n := strings.ToLower(nonName.ReplaceAllString(k.t.Name(), "-"))
	if len(n) > 80 {
		n = n[:80]
	}
	return fmt.Sprintf("%s.%s.%s", prefix, n, randHex(4))
}

// Topic creates a topic unique to this test with the given partition count.
// It is deleted when the test passes and kept for inspection when it fails.
func (k *KafkaEnv) Topic(prefix string, partitions int32) string {
	k.t.Helper()
	name := k.Name(prefix)
	adm := kadm.NewClient(k.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		k.t.Fatalf("testenv: create topic %s: %v", name, err)
	}
	k.t.Cleanup(func() {
		if k.t.Failed() {
			k.t.Logf("testenv: keeping topic %s for inspection", name)
			return
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.Seeds...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(cl).DeleteTopics(ctx, name)
	})
	return name
}

// CassandraEnv is the Cassandra of the shared Env, seen by one test: it owns
// a fresh keyspace.
type CassandraEnv struct {
	Hosts    []string
	Keyspace string
	t        testing.TB
}

// Cassandra returns the shared Cassandra with a new keyspace (SimpleStrategy,
// RF 1) for this test, dropped when the test passes and kept when it fails.
func Cassandra(t testing.TB) *CassandraEnv {
	t.Helper()
	env := need(t)
	ks := "t_" + strings.ToLower(nonKeyspace.ReplaceAllString(t.Name(), "_"))
	if len(ks) > 38 {
		ks = ks[:38]
	}
	ks += "_" + randHex(4)
	s, err := newSession(env.CassandraHosts[0], "", time.Minute)
	if err != nil {
		t.Fatalf("testenv: cassandra session: %v", err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Query(fmt.Sprintf(`CREATE KEYSPACE %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`, ks)).ExecContext(ctx); err != nil {
		t.Fatalf("testenv: create keyspace %s: %v", ks, err)
	}
	c := &CassandraEnv{Hosts: env.CassandraHosts, Keyspace: ks, t: t}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: keeping keyspace %s for inspection", ks)
			return
		}
		s, err := newSession(env.CassandraHosts[0], "", 20*time.Second)
		if err != nil {
			return
		}
		defer s.Close()
		_ = s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
	})
	return c
}

// Session opens a session on the test's keyspace, closed at cleanup.
func (c *CassandraEnv) Session() *gocql.Session {
	c.t.Helper()
	s, err := newSession(c.Hosts[0], c.Keyspace, time.Minute)
	if err != nil {
		c.t.Fatalf("testenv: cassandra session: %v", err)
	}
	c.t.Cleanup(s.Close)
	return s
}

// S3Env is the S3-compatible store of the shared Env, seen by one test: it
// owns a fresh bucket. Endpoint is host:port, plain http.
type S3Env struct {
	Endpoint, AccessKey, SecretKey, Region string
	Bucket                                 string
	t                                      testing.TB
}

// S3 returns the shared S3 store with a new bucket for this test, emptied
// and removed when the test passes and kept when it fails. Without
// PARLEY_TESTENV and without an Env already started by this binary, it
// starts a lone S3 server (tied to the binary, stopped by Main) rather than
// a whole Env. An env.json without S3 (from an older testenv) fails the
// test with how to restart it.
func S3(t testing.TB) *S3Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the S3 store (skipped with -short)")
	}
	s := &S3Env{Region: s3Region, t: t}
	if os.Getenv(EnvVar) != "" || shared.done.Load() {
		env := need(t)
		if !env.HasS3() {
			t.Fatalf("%v", errNoS3)
		}
		s.Endpoint, s.AccessKey, s.SecretKey = env.S3Endpoint, env.S3AccessKey, env.S3SecretKey
	} else {
		lone.once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			lone.srv, lone.err = startLoneS3(ctx)
		})
		if lone.err != nil {
			t.Fatalf("testenv: %v", lone.err)
		}
		s.Endpoint, s.AccessKey, s.SecretKey = lone.srv.Endpoint, lone.srv.AccessKey, lone.srv.SecretKey
	}
	s.Bucket = bucketName(t.Name())
	cl := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", s.Bucket, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: keeping bucket %s for inspection", s.Bucket)
			return
		}
		if err := emptyBucket(cl, s.Bucket); err != nil {
			t.Logf("testenv: removing bucket %s: %v", s.Bucket, err)
		}
	})
	return s
}

// Client returns a minio-go client on the store.
func (s *S3Env) Client() *minio.Client {
	s.t.Helper()
	cl, err := newS3Client(s.Endpoint, s.AccessKey, s.SecretKey)
	if err != nil {
		s.t.Fatalf("testenv: s3 client: %v", err)
	}
	return cl
}

// bucketName is a bucket name unique to this test and run, valid under S3's
// rules (3–63 of a-z, 0-9 and '-', starting and ending with one of a-z,
// 0-9): "t-<test-name>-<random>".
func bucketName(test string) string {
	n := strings.Trim(nonBucket.ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(n) > 40 {
		n = strings.TrimRight(n[:40], "-")
	}
	if n == "" {
		return "t-" + randHex(4)
	}
	return "t-" + n + "-" + randHex(4)
}

// emptyBucket removes every object and incomplete upload of bucket, then
// the bucket.
func emptyBucket(cl *minio.Client, bucket string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	objs := make(chan minio.ObjectInfo)
	go func() {
		defer close(objs)
		for o := range cl.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err == nil {
				objs <- o
			}
		}
	}()
	for r := range cl.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		if r.Err != nil {
			return r.Err
		}
	}
	for u := range cl.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err == nil {
			_ = cl.RemoveIncompleteUpload(ctx, bucket, u.Key)
		}
	}
	return cl.RemoveBucket(ctx, bucket)
}

var (
	nonName     = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
	nonKeyspace = regexp.MustCompile(`[^A-Za-z0-9_]+`)
	nonBucket   = regexp.MustCompile(`[^a-z0-9]+`)
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
