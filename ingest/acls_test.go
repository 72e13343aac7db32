package ingest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/provision"
	"github.com/parley-im/parley/testenv"
)

// TestKafkaACLs: on a secured Kafka (SASL_SSL, SCRAM-SHA-512, ACLs only),
// with the topics and the per-component ACLs the provisioning creates, the
// gateway's principal appends a command, the decider's decides it into an
// event (its transactions, group and changelog), and the projector's reads
// it; the gateway's principal is refused on parley.events and the
// projector's on every topic, each with TOPIC_AUTHORIZATION_FAILED at once
// (no retry), an error log line naming the principal and the topic, and the
// parley_kafka_authorization_failures_total counter.
func TestKafkaACLs(t *testing.T) {
	k := testenv.StartSecureKafka(t, "gateway", "decider", "projector")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := k.Client(testenv.KafkaAdminUser)
	tp := provision.Topics{Partitions: 2, ReplicationFactor: 1}
	var report provision.Report
	if err := provision.Kafka(ctx, admin, tp, &report); err != nil {
		t.Fatal(err)
	}
	principals := provision.Principals{Gateway: "gateway", Decider: "decider", Projector: "projector"}
	if err := provision.KafkaACLs(ctx, admin, tp, principals, &report); err != nil {
		t.Fatal(err)
	}
	// A second run changes nothing and fails nothing.
	if err := provision.KafkaACLs(ctx, admin, tp, principals, &report); err != nil {
		t.Fatalf("second run: %v", err)
	}
	for _, l := range report.Lines {
		t.Log(l)
	}
	set := tp.TopicSet()

	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	opts := func(user string) []kgo.Opt {
		s := k.SCRAM(user)
		s.Logger = log
		o, err := s.Opts()
		if err != nil {
			t.Fatal(err)
		}
		return o
	}

	// Allowed: the gateway appends, the decider decides, the projector reads.
	gw, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: k.Seeds, Topic: set.Commands.Name, ClientID: "parley-gateway", Extra: opts("gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close(context.Background())
	create := createGroupCmd("c-acl-1", "g-acl", "alice", []string{"bob"})
	if _, err := gw.AppendSync(ctx, ingest.Record{Key: create.GetConversationId(), Type: schemas.CommandType(create), Value: mustMarshal(create)}); err != nil {
		t.Fatalf("the gateway's principal appends a command: %v", err)
	}
	d, err := ingest.NewDecider(ingest.DeciderConfig{Seeds: k.Seeds, Group: "parley-ingest", TransactionalID: "parley-ingest-acl",
		CommandsTopic: set.Commands.Name, EventsTopic: set.Events.Name, StateTopic: set.IngestState.Name,
		DeadLetterTopic: set.DeadLetters.Name, BansTopic: set.Bans.Name, WebhooksTopic: set.Webhooks.Name,
		KafkaOptions: opts("decider"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runDecider(t, d)
	reader, err := kgo.NewClient(append(opts("projector"), kgo.SeedBrokers(k.Seeds...), kgo.ConsumerGroup("parley-projector-acl"),
		kgo.ConsumeTopics(set.Events.Name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var ev pb.Event
	for ev.GetConversationId() == "" {
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the projector's principal read no event: the decider's ACLs or the projector's fall short")
		}
		if err := fs.Err0(); err != nil {
			t.Fatalf("the projector's principal reads events: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { _ = proto.Unmarshal(r.Value, &ev) })
	}
	if ev.GetConversationId() != "g-acl" {
		t.Fatalf("event of %q", ev.GetConversationId())
	}
	if err := reader.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("the projector's principal commits its group's offsets: %v", err)
	}

	// refused checks that err is Kafka's refusal want on resource, counted
	// and logged as an error line naming the principal and the resource.
	refused := func(principal, resource string, want *kerr.Error, err error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s producing (%s): %v, want %s", principal, resource, err, want.Message)
			return
		}
		if n := authzFailures(t, principal, resource, want.Message); n < 1 {
			t.Errorf("%s on %s: parley_kafka_authorization_failures_total = %v", principal, resource, n)
		}
		testenv.Eventually(t, 10*time.Second, func() string {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "level=ERROR") && strings.Contains(l, "kafka refused: not authorised") &&
					strings.Contains(l, "principal="+principal) && strings.Contains(l, "resource="+resource+" ") &&
					strings.Contains(l, "kafka_error="+want.Message) {
					return ""
				}
			}
			return "no error line names " + principal + " and " + resource
		})
	}

	// A read without READ: the follower's poll (as the gateway's, the
	// decider's and the projector's) reports it the same way, naming the
	// client's principal.
	fol, err := ingest.NewBanFollower(ingest.BanFollowerConfig{Seeds: k.Seeds, Topic: set.Bans.Name, KafkaOptions: opts("projector"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithCancel(ctx)
	fdone := make(chan struct{})
	go func() { defer close(fdone); _ = fol.Run(fctx) }()
	testenv.Eventually(t, time.Minute, func() string {
		if strings.Contains(logs.String(), "principal=User:projector resource=topic:"+set.Bans.Name+" kafka_error=TOPIC_AUTHORIZATION_FAILED") &&
			authzFailures(t, "User:projector", "topic:"+set.Bans.Name, "TOPIC_AUTHORIZATION_FAILED") >= 1 {
			return ""
		}
		return "the follower's refused read is not reported"
	})
	fcancel()
	<-fdone

	// Refused: the gateway's producer, pointed at parley.events.
	bad, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: k.Seeds, Topic: set.Events.Name, ClientID: "parley-gateway", Extra: opts("gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close(context.Background())
	start := time.Now()
	_, err = bad.AppendSync(ctx, ingest.Record{Key: "g-acl", Type: "x", Value: []byte("forged")})
	refused("User:gateway", "topic:"+set.Events.Name, kerr.TopicAuthorizationFailed, err)
	t.Logf("the gateway's refusal on %s came after %s: %v", set.Events.Name, time.Since(start).Round(time.Millisecond), err)

	// Refused: the projector's principal, on every topic. Its idempotent
	// producer is refused its producer id (it may write nowhere, so not
	// even that: CLUSTER_AUTHORIZATION_FAILED) where it may describe the
	// topic, and the topic elsewhere; without idempotence, every topic.
	pr, err := kgo.NewClient(append(opts("projector"), kgo.SeedBrokers(k.Seeds...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	plain, err := kgo.NewClient(append(opts("projector"), kgo.SeedBrokers(k.Seeds...), kgo.DisableIdempotentWrite())...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	readable := map[string]bool{set.Events.Name: true, set.Repairs.Name: true, set.DeadLetters.Name: true}
	for _, topic := range set.All() {
		rec := func() *kgo.Record {
			return &kgo.Record{Topic: topic.Name, Key: []byte("g-acl"), Value: []byte("forged")}
		}
		err := pr.ProduceSync(ctx, rec()).FirstErr()
		if readable[topic.Name] {
			refused("User:projector", "cluster", kerr.ClusterAuthorizationFailed, err)
		} else {
			refused("User:projector", "topic:"+topic.Name, kerr.TopicAuthorizationFailed, err)
		}
		err = plain.ProduceSync(ctx, rec()).FirstErr()
		refused("User:projector", "topic:"+topic.Name, kerr.TopicAuthorizationFailed, err)
	}
	if ctx.Err() != nil {
		t.Fatal("the refusals took until the deadline: something retried")
	}
}

// authzFailures is parley_kafka_authorization_failures_total of principal
// on resource, as a main's /metrics shows it (deploy.Registry).
func authzFailures(t *testing.T, principal, resource, kafkaErr string) float64 {
	t.Helper()
	mfs, err := deploy.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "parley_kafka_authorization_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["principal"] == principal && l["resource"] == resource && l["error"] == kafkaErr {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// testWriter shows the log lines in the test's output.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
