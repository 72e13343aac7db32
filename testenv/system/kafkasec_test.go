package system_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/projector/replay"
	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/provision"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// TestE2ESecureKafka: the whole of Parley on a secured Kafka of its own
// (SASL_SSL, SCRAM-SHA-512, ACLs only), each component as its own
// principal with exactly the provisioning's ACLs: a direct send reaches
// the peer live and in query's views, and replay verify (as its own
// read-only principal) finds the views equal to the log. No log line
// holds a Kafka password.
func TestE2ESecureKafka(t *testing.T) {
	k := testenv.StartSecureKafka(t, "gateway", "decider", "projector", "replay")
	c := testenv.MigratedCassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	prefix := "sec."
	tp := provision.Topics{Prefix: prefix}
	var r provision.Report
	if err := provision.KafkaACLs(ctx, k.Client(testenv.KafkaAdminUser), tp,
		provision.Principals{Gateway: "gateway", Decider: "decider", Projector: "projector", Replay: "replay"}, &r); err != nil {
		t.Fatal(err)
	}
	log := testenv.Logger(t)
	var passwords []string
	for _, u := range []string{testenv.KafkaAdminUser, "gateway", "decider", "projector", "replay"} {
		passwords = append(passwords, k.Password(u))
	}
	if !testenv.ForbidInLogs(log, passwords...) {
		t.Fatal("ForbidInLogs refused the test logger")
	}
	users := map[string]string{"provision": testenv.KafkaAdminUser, "ingest": "decider", "projector": "projector", "gateway": "gateway"}
	sys, err := system.Start(ctx, system.Options{Seeds: k.Seeds, Hosts: c.Hosts, Keyspace: c.Keyspace, TopicPrefix: prefix,
		Gateways: 1, Logger: log, Kafka: func(component string) deploy.Kafka {
			u, ok := users[component]
			if !ok {
				t.Errorf("no Kafka user for component %q", component)
			}
			return k.SCRAM(u)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)

	alice, bob := connect(t, sys, 0, "alice", "phone"), connect(t, sys, 0, "bob", "phone")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	accepted(t, alice.MustDo(conv, send("sec-1", "over a secured kafka")))
	bob.WaitEvent("alice's message", func(e *pb.Event) bool { return e.GetMessageSent().GetText() == "over a secured kafka" })
	testenv.Eventually(t, 2*time.Minute, func() string {
		h, code := allHistory(t, sys, "bob", conv)
		if code != 200 || len(h.Messages) != 1 || h.Messages[0].Text != "over a secured kafka" {
			return fmt.Sprintf("bob's history: status %d, %+v", code, h.Messages)
		}
		return ""
	})
	rep, err := replay.Verify(ctx, replay.Config{Seeds: k.Seeds, KafkaOptions: k.Opts(k.SCRAM("replay"))[1:], Topics: sys.Topics,
		Hosts: c.Hosts, Keyspace: c.Keyspace}, replay.VerifyOptions{Conversations: []string{conv}})
	if err != nil || !rep.OK() {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("verify: %v\n%s", err, b.String())
	}
}
