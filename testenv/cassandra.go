package testenv

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas/deploy"
)

// cassandraJVMFlags are the module flags of Cassandra 5.0's
// conf/jvm17-server.options: without them JDK 17 refuses the reflective
// access Cassandra, Netty and Chronicle need (InaccessibleObjectException).
var cassandraJVMFlags = []string{
	"-ea", "-Xss256k", "-XX:+UseTLAB", "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxGCPauseMillis=300",
	"-XX:+UseThreadPriorities", "-XX:+HeapDumpOnOutOfMemoryError", "-XX:-UseBiasedLocking",
	"-Djava.net.preferIPv4Stack=true", "-Dchronicle.analytics.disable=true", "-Djdk.attach.allowAttachSelf=true",
	"--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
	"--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED",
	"--add-exports", "java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
	"--add-exports", "java.management/com.sun.jmx.remote.security=ALL-UNNAMED",
	"--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
	"--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
	"--add-exports", "java.sql/java.sql=ALL-UNNAMED",
	"--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
	"--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
	"--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
	"--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-opens", "java.base/java.io=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang=ALL-UNNAMED",
	"--add-opens", "java.base/java.util=ALL-UNNAMED",
	"--add-opens", "java.base/java.nio=ALL-UNNAMED",
	"--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
	"--add-opens", "java.base/java.util.concurrent.atomic=ALL-UNNAMED",
	"--add-opens", "java.base/java.net=ALL-UNNAMED",
	"--add-opens", "java.base/sun.nio.fs=ALL-UNNAMED",
	"--add-opens", "java.base/java.nio.charset=ALL-UNNAMED",
}

// commitlogSync is the node's commitlog_sync: "periodic" with a 1 s period,
// Cassandra's mode of choice. A write is acknowledged once it is in the
// commitlog's memory-mapped segment, and a sync marker follows within the
// period; a SIGKILLed node replays the commitlog up to its last marker, so
// it keeps a prefix of what it acknowledged and may lose the last second
// (TestCassandraCrashKeepsAPrefix). The projector is built for that: its
// checkpoint row follows the rows it covers, and a checkpoint found behind
// what was written makes it apply that range of the log again (projector
// README, Checkpoints and commits). "group" (a 10 ms window) and "batch"
// acknowledge a write only once its section is complete, so a killed node
// loses nothing it acknowledged — at a price on two cores: every mutation
// holds one of Cassandra's write threads until its window closes, and the
// views trailed live delivery by 1.6 s at the median at 1,000 msgs/s with
// a 10 ms window, against tens of milliseconds periodic (README,
// Benchmarks). skip_sync (below) skips the fsync in every mode: the page
// cache survives a killed process, not a killed machine.
// PARLEY_TESTENV_COMMITLOG_SYNC=group or batch is there to measure the
// difference by hand.
func commitlogSync() string {
	switch os.Getenv("PARLEY_TESTENV_COMMITLOG_SYNC") {
	case "group":
		return "group\ncommitlog_sync_group_window: 10ms"
	case "batch":
		return "batch"
	}
	return "periodic\ncommitlog_sync_period: 1000ms"
}

// durableCommitlog reports whether commitlogSync acknowledges only what a
// killed node replays.
func durableCommitlog() bool { return !strings.HasPrefix(commitlogSync(), "periodic") }

// startCassandra runs one Cassandra node on 127.0.0.1 in the foreground of
// its own process (cassandra-foreground), tuned to start fast on one node.
func startCassandra(ctx context.Context, java, lib, dir string, cqlPort, storagePort, jmxPort int, heapMB int, tied bool, timeout time.Duration) (*proc, error) {
	return startCassandraWith(ctx, java, lib, dir, cqlPort, storagePort, jmxPort, heapMB, tied, timeout, cassandraExtra{})
}

// cassandraExtra is what a node started by startCassandraWith adds to the
// plain one: lines appended to cassandra.yaml, and the probe that says it
// is ready (default: probeCassandra, no password, no TLS).
type cassandraExtra struct {
	yaml  string
	probe func(ctx context.Context, host string) error
	// A node of a cluster (StartCluster); zero: the one node on 127.0.0.1.
	name    string // the process's name (default "cassandra")
	addr    string // listen and rpc address (default 127.0.0.1)
	seeds   string // default the node itself
	token   string // initial_token (default 0)
	cluster bool   // a node of a new cluster: joins without a range movement check
}

func startCassandraWith(ctx context.Context, java, lib, dir string, cqlPort, storagePort, jmxPort int, heapMB int, tied bool, timeout time.Duration, extra cassandraExtra) (*proc, error) {
	data, logs := filepath.Join(dir, "data"), filepath.Join(dir, "logs")
	for _, d := range []string{data, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	addr := cmp.Or(extra.addr, "127.0.0.1")
	yaml := fmt.Sprintf(`cluster_name: parley-testenv
num_tokens: 1
initial_token: %[6]s
auto_bootstrap: false
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
commitlog_sync: %[4]s
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "%[7]s"
listen_address: %[5]s
rpc_address: %[5]s
storage_port: %[2]d
native_transport_port: %[1]d
start_native_transport: true
auto_snapshot: false
snapshot_on_duplicate_row_detection: false
data_file_directories: [%[3]s/data]
commitlog_directory: %[3]s/commitlog
saved_caches_directory: %[3]s/saved_caches
hints_directory: %[3]s/hints
cdc_raw_directory: %[3]s/cdc_raw
concurrent_reads: 8
concurrent_writes: 16
concurrent_counter_writes: 4
concurrent_materialized_view_writes: 4
`, cqlPort, storagePort, data, commitlogSync(), addr, cmp.Or(extra.token, "0"),
		cmp.Or(extra.seeds, fmt.Sprintf("%s:%d", addr, storagePort))) + extra.yaml
	logback := fmt.Sprintf(`<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>%s</file>
    <encoder><pattern>%%-5level [%%thread] %%date{ISO8601} %%F:%%L - %%msg%%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
`, filepath.Join(logs, "system.log"))
	yamlFile, logbackFile := filepath.Join(dir, "cassandra.yaml"), filepath.Join(dir, "logback.xml")
	if err := os.WriteFile(yamlFile, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(logbackFile, []byte(logback), 0o644); err != nil {
		return nil, err
	}
	args := append([]string{}, cassandraJVMFlags...)
	args = append(args,
		fmt.Sprintf("-Xms%dm", heapMB), fmt.Sprintf("-Xmx%dm", heapMB),
		"-javaagent:"+filepath.Join(lib, jammJar),
		"-Dcassandra.config=file://"+yamlFile,
		"-Dcassandra.storagedir="+data,
		"-Dcassandra.logdir="+logs,
		"-Dcassandra-foreground=yes",
		"-Dlogback.configurationFile="+logbackFile,
		// One node: nothing to gossip with, no ring to wait for.
		"-Dcassandra.skip_wait_for_gossip_to_settle=0",
		"-Dcassandra.ring_delay_ms=100",
		"-Dcassandra.superuser_setup_delay_ms=0",
		// Test data needs no fsync: a crash of the test machine loses only
		// test data. A crash of Cassandra loses nothing (commitlogSync).
		"-Dcassandra.skip_sync=true",
		fmt.Sprintf("-Dcassandra.jmx.local.port=%d", jmxPort),
	)
	if extra.cluster {
		// Nodes of a new cluster with their tokens given join without
		// streaming (auto_bootstrap: false), all at once.
		args = append(args, "-Dcassandra.consistent.rangemovement=false")
	}
	args = append(args, "-cp", filepath.Join(lib, "*"), "org.apache.cassandra.service.CassandraDaemon")
	p, err := startJava(java, dir, cmp.Or(extra.name, "cassandra"), tied, args)
	if err != nil {
		return nil, err
	}
	p.logFile = filepath.Join(logs, "system.log")
	host := fmt.Sprintf("%s:%d", addr, cqlPort)
	probe := extra.probe
	if probe == nil {
		probe = probeCassandra
	}
	if err := p.waitReady(ctx, timeout, func(ctx context.Context) error { return probe(ctx, host) }); err != nil {
		p.stop(10 * time.Second)
		return nil, err
	}
	return p, nil
}

// probeCassandra succeeds when a CQL session opens and system.local answers.
func probeCassandra(ctx context.Context, host string) error {
	s, err := newSession(host, "", 2*time.Second)
	if err != nil {
		return err
	}
	defer s.Close()
	var v string
	return s.Query("SELECT release_version FROM system.local").ScanContext(ctx, &v)
}

// newSession opens a session to one node, optionally on a keyspace, with
// the one session builder: consistency ONE and no discovery of other nodes
// (testenv runs a single node, and a probe must not wait for a peer list).
func newSession(host, keyspace string, timeout time.Duration) (*gocql.Session, error) {
	c, err := deploy.Cassandra{Hosts: []string{host}, Timeout: timeout, Consistency: "ONE"}.Cluster()
	if err != nil {
		return nil, err
	}
	c.Keyspace = keyspace
	c.DisableInitialHostLookup = true
	c.Logger = gocql.NewLogger(gocql.LogLevelNone)
	return c.CreateSession()
}
