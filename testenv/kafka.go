package testenv

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startKafka runs one combined KRaft broker+controller on 127.0.0.1; sec
// (nil: a PLAINTEXT client listener) secures its client listener.
func startKafka(ctx context.Context, java, lib, dir string, port, ctrlPort int, heapMB int, tied bool, timeout time.Duration, logf func(string, ...any), sec *kafkaSecurity) (*proc, error) {
	return startKafkaNode(ctx, java, lib, kafkaNode{name: "kafka", dir: dir, id: 1, addr: "127.0.0.1", port: port, ctrlPort: ctrlPort,
		voters: fmt.Sprintf("1@127.0.0.1:%d", ctrlPort)}, heapMB, tied, timeout, logf, sec)
}

// kafkaNode is one combined broker+controller of a KRaft cluster: a single
// node (startKafka) or one of a cluster's three (StartCluster).
type kafkaNode struct {
	name, dir      string
	id             int
	addr           string // the loopback address it listens on
	port, ctrlPort int
	voters         string // controller.quorum.voters
	// clusterID formats the storage; empty: a random one (one node).
	clusterID string
	// replicas is the replication of the internal topics and the default
	// of new ones, with min.insync.replicas replicas-1; 0 or 1: none.
	replicas int
}

func (n kafkaNode) replication() string {
	if n.replicas <= 1 {
		return `# One node: internal topics cannot be replicated. Few partitions keep the
# first group join and the first transaction fast in tests.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
`
	}
	// The production settings (README, Production settings): every
	// partition on every broker of three, a write acknowledged by two.
	return fmt.Sprintf(`offsets.topic.replication.factor=%[1]d
transaction.state.log.replication.factor=%[1]d
transaction.state.log.min.isr=%[2]d
share.coordinator.state.topic.replication.factor=%[1]d
share.coordinator.state.topic.min.isr=%[2]d
default.replication.factor=%[1]d
min.insync.replicas=%[2]d
`, n.replicas, n.replicas-1)
}

func startKafkaNode(ctx context.Context, java, lib string, n kafkaNode, heapMB int, tied bool, timeout time.Duration, logf func(string, ...any), sec *kafkaSecurity) (*proc, error) {
	dir, port, ctrlPort := n.dir, n.port, n.ctrlPort
	data, logs := filepath.Join(dir, "data"), filepath.Join(dir, "logs")
	for _, d := range []string{data, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	listeners := fmt.Sprintf(`listeners=PLAINTEXT://%[3]s:%[1]d,CONTROLLER://%[3]s:%[2]d
advertised.listeners=PLAINTEXT://%[3]s:%[1]d
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
`, port, ctrlPort, n.addr)
	if sec != nil {
		listeners = sec.props(port, ctrlPort)
	}
	props := fmt.Sprintf(`process.roles=broker,controller
node.id=%[5]d
controller.quorum.voters=%[6]s
controller.listener.names=CONTROLLER
%[4]slog.dirs=%[3]s
# Topics are provisioned explicitly (ingest.Provision); an auto-created topic
# would hide a missing provisioning step.
auto.create.topics.enable=false
num.partitions=1
%[7]soffsets.topic.num.partitions=6
transaction.state.log.num.partitions=6
group.initial.rebalance.delay.ms=0
log.segment.bytes=67108864
`, port, ctrlPort, data, listeners, n.id, n.voters, n.replication())
	log4j := fmt.Sprintf(`status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = %s
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%%d] %%p %%m (%%c)%%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
`, filepath.Join(logs, "server.log"))
	propsFile, log4jFile := filepath.Join(dir, "server.properties"), filepath.Join(dir, "log4j2.properties")
	if err := os.WriteFile(propsFile, []byte(props), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(log4jFile, []byte(log4j), 0o644); err != nil {
		return nil, err
	}
	cp := filepath.Join(lib, "*")
	jvm := []string{
		fmt.Sprintf("-Xms%dm", heapMB/2), fmt.Sprintf("-Xmx%dm", heapMB), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
		"-Xss1m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=file:" + log4jFile, "-Dkafka.logs.dir=" + logs,
		"-cp", cp,
	}
	// Format the KRaft metadata directory once; a restarted env keeps its data.
	if _, err := os.Stat(filepath.Join(data, "meta.properties")); err != nil {
		args := append(append([]string{}, jvm...), "kafka.tools.StorageTool", "format",
			"-t", cmp.Or(n.clusterID, clusterID()), "-c", propsFile)
		if sec != nil {
			args = append(args, sec.scramArgs()...)
		}
		// One retry: a format once failed here for a reason its swallowed
		// output did not keep; the first failure is logged in full.
		var err error
		for attempt := 1; attempt <= 2; attempt++ {
			var out []byte
			if out, err = exec.CommandContext(ctx, java, args...).CombinedOutput(); err == nil {
				break
			}
			err = fmt.Errorf("testenv: formatting Kafka storage (attempt %d): %w\n%s", attempt, err, tail(string(out), 20))
			logf("%v", err)
		}
		if err != nil {
			return nil, err
		}
	}
	p, err := startJava(java, dir, n.name, tied, append(jvm, "kafka.Kafka", propsFile))
	if err != nil {
		return nil, err
	}
	p.logFile = filepath.Join(logs, "server.log")
	seed := fmt.Sprintf("%s:%d", n.addr, port)
	var probeOpts []kgo.Opt
	if sec != nil {
		if probeOpts, err = sec.adminOpts(); err != nil {
			p.stop(5 * time.Second)
			return nil, err
		}
	}
	if err := p.waitReady(ctx, timeout, func(ctx context.Context) error { return probeKafka(ctx, seed, probeOpts...) }); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// probeKafka succeeds when the broker answers metadata over the Kafka
// protocol and reports itself as a registered broker.
func probeKafka(ctx context.Context, seed string, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seed), kgo.RetryTimeout(time.Second)}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	brokers, err := kadm.NewClient(cl).ListBrokers(ctx)
	if err != nil {
		return err
	}
	if len(brokers) == 0 {
		return fmt.Errorf("no broker registered yet")
	}
	return nil
}

// clusterID is a random KRaft cluster id: 16 bytes in base64url, never
// starting with '-', which the format command would take for an option (as
// Kafka's own Uuid.randomUuid avoids); one in 64 random ids did.
func clusterID() string {
	for {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		if s := base64.RawURLEncoding.EncodeToString(id); s[0] != '-' {
			return s
		}
	}
}
