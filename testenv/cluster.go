package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClusterSize is the number of Kafka brokers and of Cassandra nodes of a
// cluster env.
const ClusterSize = 3

// ClusterAddr is the loopback address of node i (1 … ClusterSize) of a
// cluster env: 127.0.0.1, 127.0.0.2, 127.0.0.3 (Linux routes all of
// 127.0.0.0/8 to the loopback interface).
func ClusterAddr(i int) string { return fmt.Sprintf("127.0.0.%d", i) }

// Cluster tokens: the Murmur3 ring split in three equal ranges, one per
// node, so the nodes of a new cluster join at once without streaming.
var clusterTokens = [ClusterSize]string{"-9223372036854775808", "-3074457345618258603", "3074457345618258602"}

// StartCluster starts testenv's cluster mode: three Kafka brokers that are
// also the KRaft controller quorum (three voters) and three Cassandra nodes,
// node i of each on ClusterAddr(i). It runs the production settings
// (README, Production settings): Kafka's internal topics and every new
// topic at replication factor 3 with min.insync.replicas 2; the clients
// choose Cassandra's replication (factor 3 for Parley's keyspace) and
// LOCAL_QUORUM. The servers are named kafka-1 … kafka-3 and cassandra-1 …
// cassandra-3 for Kill, Pause and Restart. No S3 store. Heaps: opts'
// (default 512 MiB for each broker and 1 GiB for each node; six JVMs).
func StartCluster(ctx context.Context, opts Options) (*Env, error) {
	java, err := opts.prepare(ctx, "parley-cluster-")
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	kafkaLib, err := fetch(ctx, "kafka", KafkaVersion, kafkaArtifacts)
	if err != nil {
		return nil, err
	}
	cassLib, err := fetch(ctx, "cassandra", CassandraVersion, cassandraArtifacts)
	if err != nil {
		return nil, err
	}
	env := &Env{Dir: opts.Dir, FetchTime: Duration(time.Since(t0))}
	// Kafka: a client and a controller port per broker. Cassandra: the
	// same CQL and storage ports on each node's address (drivers dial every
	// node discovered on the CQL port they were given), a JMX port each
	// (JMX binds 127.0.0.1).
	ports, err := freeClusterPorts(2*ClusterSize+2, ClusterSize)
	if err != nil {
		return nil, err
	}
	cqlPort, storagePort := ports[2*ClusterSize], ports[2*ClusterSize+1]
	jmx, err := FreePorts(ClusterSize)
	if err != nil {
		return nil, err
	}
	id := clusterID()
	var voters []string
	for i := 1; i <= ClusterSize; i++ {
		voters = append(voters, fmt.Sprintf("%d@%s:%d", i, ClusterAddr(i), ports[2*(i-1)+1]))
	}
	nodes := make([]kafkaNode, ClusterSize)
	for i := range nodes {
		nodes[i] = kafkaNode{name: fmt.Sprintf("kafka-%d", i+1), dir: filepath.Join(opts.Dir, fmt.Sprintf("kafka-%d", i+1)),
			id: i + 1, addr: ClusterAddr(i + 1), port: ports[2*i], ctrlPort: ports[2*i+1], voters: strings.Join(voters, ","),
			clusterID: id, replicas: ClusterSize}
	}
	seeds := fmt.Sprintf("%s:%d", ClusterAddr(1), storagePort)
	cass := make([]cassandraExtra, ClusterSize)
	for i := range cass {
		cass[i] = cassandraExtra{name: fmt.Sprintf("cassandra-%d", i+1), addr: ClusterAddr(i + 1), seeds: seeds,
			token: clusterTokens[i], cluster: true}
	}
	startK := func(n kafkaNode) func(context.Context) (*proc, error) {
		return func(ctx context.Context) (*proc, error) {
			return startKafkaNode(ctx, java, kafkaLib, n, opts.KafkaHeapMB, !opts.Detached, opts.StartTimeout, opts.Logf, nil)
		}
	}
	startC := func(i int) func(context.Context) (*proc, error) {
		return func(ctx context.Context) (*proc, error) {
			return startCassandraWith(ctx, java, cassLib, filepath.Join(opts.Dir, cass[i].name), cqlPort, storagePort, jmx[i],
				opts.CassandraHeapMB, !opts.Detached, opts.StartTimeout, cass[i])
		}
	}
	var mu sync.Mutex
	var errs []error
	start := func(name string, fn func(context.Context) (*proc, error)) {
		p, err := fn(ctx)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		p.restart = fn
		env.procs = append(env.procs, p)
	}
	// The brokers together (a controller needs two voters to elect one);
	// the seed Cassandra node first, the two others together once it
	// answers, beside them.
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start(n.name, startK(n))
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		start(cass[0].name, startC(0))
		mu.Lock()
		seedUp := len(errs) == 0
		mu.Unlock()
		if !seedUp {
			return
		}
		var cwg sync.WaitGroup
		for i := 1; i < ClusterSize; i++ {
			cwg.Add(1)
			go func() { defer cwg.Done(); start(cass[i].name, startC(i)) }()
		}
		cwg.Wait()
	}()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		env.Stop()
		return nil, err
	}
	for i := range nodes {
		env.KafkaSeeds = append(env.KafkaSeeds, fmt.Sprintf("%s:%d", nodes[i].addr, nodes[i].port))
		env.CassandraHosts = append(env.CassandraHosts, fmt.Sprintf("%s:%d", cass[i].addr, cqlPort))
	}
	opts.Logf("testenv: cluster of %d Kafka %s brokers on %s and %d Cassandra %s nodes on %s, up in %s",
		ClusterSize, KafkaVersion, strings.Join(env.KafkaSeeds, ","), ClusterSize, CassandraVersion,
		strings.Join(env.CassandraHosts, ","), time.Since(t0).Round(time.Millisecond))
	return env, nil
}

// freeClusterPorts returns n ports, each free on the first addrs cluster
// addresses at once.
func freeClusterPorts(n, addrs int) ([]int, error) {
	var out []int
	for tries := 0; len(out) < n && tries < 100*n; tries++ {
		ps, err := FreePorts(1)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, ps[0]) && portFreeOn(ps[0], addrs) {
			out = append(out, ps[0])
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("testenv: no %d ports free on %d loopback addresses", n, addrs)
	}
	return out, nil
}

// portFreeOn reports whether port can be listened on at each of the first
// addrs cluster addresses.
func portFreeOn(port, addrs int) bool {
	for i := 1; i <= addrs; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(ClusterAddr(i), strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}
