package system_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/projector/replay"
	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/provision"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// TestE2ESecured is the end-to-end suite's representative subset with
// everything secured at once, as a production deployment runs:
//   - TLS at the edge: the two gateways serve wss:// and query https://;
//   - Kafka with a SASL_SSL listener only (SCRAM-SHA-512), ACLs and no
//     access without one, each component its own principal with exactly
//     the provisioning's ACLs;
//   - Cassandra with PasswordAuthenticator, CassandraAuthorizer and client
//     TLS, each component its own role with exactly the provisioning's
//     grants (the projector writes; query and the gateways read).
//
// The decider runs as its own process, configured the way a deployment
// configures it (PARLEY_KAFKA_*, the password from a _FILE). In it: a
// direct chat live and in query's views; a group of three fed from two
// gateways while the decider is SIGKILLed and started again, every
// accepted send once with dense seqs; a device that resumes from nothing
// over wss:// gets everything once; and replay verify, as its own
// read-only Kafka principal, finds the views equal to the log. No
// password appears in any log line, the decider's own included.
func TestE2ESecured(t *testing.T) {
	if testing.Short() {
		t.Skip("testenv: integration test skipped with -short")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Cassandra's JVM starts while Kafka's does.
	type secured struct {
		c   *testenv.SecureCassandraEnv
		err error
	}
	cassStarted := make(chan secured, 1)
	go func() {
		c, err := testenv.StartSecureCassandra(ctx, filepath.Join(dir, "cassandra"), testenv.SecureCassandraOptions{})
		cassStarted <- secured{c, err}
	}()
	k := testenv.StartSecureKafka(t, "gateway", "decider", "projector", "replay")
	cs := <-cassStarted
	if cs.err != nil {
		t.Fatal(cs.err)
	}
	c := cs.c
	t.Cleanup(c.Stop)
	t.Logf("secured Cassandra up in %v", c.StartTime.Round(time.Second))

	log := testenv.Logger(t)
	var secrets []string
	for _, u := range []string{testenv.KafkaAdminUser, "gateway", "decider", "projector", "replay"} {
		secrets = append(secrets, k.Password(u))
	}

	// Kafka: the ACLs of every principal.
	const prefix = "secured."
	var r provision.Report
	if err := provision.KafkaACLs(ctx, k.Client(testenv.KafkaAdminUser), provision.Topics{Prefix: prefix},
		provision.Principals{Gateway: "gateway", Decider: "decider", Projector: "projector", Replay: "replay"}, &r); err != nil {
		t.Fatal(err)
	}
	// Cassandra: the keyspace, then a role per component that reaches it.
	const ks = "parley"
	roles := provision.Roles{Passwords: map[string]string{}, Keyspaces: []string{ks}}
	cass := map[string]deploy.Cassandra{"provision": c.Superuser()}
	for _, comp := range []string{"projector", "query", "gateway"} {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		roles.Passwords[comp] = hex.EncodeToString(b)
		secrets = append(secrets, roles.Passwords[comp])
		cass[comp] = c.Client(roles.RoleName(comp), roles.Passwords[comp])
	}
	if !testenv.ForbidInLogs(log, secrets...) {
		t.Fatal("ForbidInLogs refused the test logger")
	}
	super, err := c.Superuser().Session()
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	if err := provision.Cassandra(ctx, super, provision.Keyspace{Name: ks}, &r); err != nil {
		t.Fatal(err)
	}
	if err := provision.CassandraRoles(ctx, super, roles, &r); err != nil {
		t.Fatal(err)
	}

	kafkaUsers := map[string]string{"provision": testenv.KafkaAdminUser, "projector": "projector", "gateway": "gateway"}
	cert := testenv.WriteCert(t, dir, "edge")
	sys, err := system.Start(ctx, system.Options{Seeds: k.Seeds, Hosts: c.Hosts, Keyspace: ks, TopicPrefix: prefix,
		Gateways: 2, TLS: &cert, Cassandra: cass, Logger: log, External: []string{"ingest"},
		Kafka: func(component string) deploy.Kafka {
			u, ok := kafkaUsers[component]
			if !ok {
				t.Errorf("no Kafka user for component %q", component)
			}
			return k.SCRAM(u)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	if !strings.HasPrefix(sys.GatewayURLs[1], "https://") || !strings.HasPrefix(sys.QueryURL, "https://") {
		t.Fatalf("URLs %v %s, want https", sys.GatewayURLs, sys.QueryURL)
	}
	decider := newSecuredDecider(t, dir, sys, k)
	decider.start()

	// Direct: live over wss, and in query's views over https.
	alice, bob := connect(t, sys, 0, "alice", "phone"), connect(t, sys, 1, "bob", "phone")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	accepted(t, alice.MustDo(conv, send("d-1", "over everything secured")))
	bob.WaitEvent("alice's message", func(e *pb.Event) bool { return e.GetMessageSent().GetText() == "over everything secured" })
	testenv.Eventually(t, 2*time.Minute, func() string {
		h, code := allHistory(t, sys, "bob", conv)
		if code != 200 || len(h.Messages) != 1 || h.Messages[0].Text != "over everything secured" {
			return fmt.Sprintf("bob's history: status %d, %+v", code, h.Messages)
		}
		if last, n, ok := inboxEntry(t, sys, "bob", conv); !ok || last != 1 || n != 1 {
			return fmt.Sprintf("bob's inbox: present %v, last_seq %d, unread %d; want 1, 1", ok, last, n)
		}
		return ""
	})

	// A group of three, alice on one gateway and carol on the other, both
	// sending while the decider is SIGKILLed and started again.
	carol := connect(t, sys, 1, "carol", "phone")
	group := accepted(t, alice.MustDo("", &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP,
		Title: "secured", MemberUserIds: []string{"bob", "carol"}}))
	const perSender = 40
	var acked atomic.Int64
	sendErrs := make(chan error, 2)
	for _, d := range []*testenv.WSClient{alice, carol} {
		go func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer scancel()
			for j := range perSender {
				if _, err := d.Send(sctx, group, send(fmt.Sprintf("%s-%d", d.Name(), j), "x")); err != nil {
					sendErrs <- fmt.Errorf("%s's send %d: %w", d.Name(), j, err)
					return
				}
				acked.Add(1)
			}
			sendErrs <- nil
		}()
	}
	ackedAtLeast := func(n int64) func() string {
		return func() string {
			if a := acked.Load(); a < n {
				return fmt.Sprintf("%d of %d group sends acked", a, n)
			}
			return ""
		}
	}
	testenv.Eventually(t, 2*time.Minute, ackedAtLeast(perSender/2))
	decider.kill()
	// The gateways go on accepting with the decider down.
	testenv.Eventually(t, 2*time.Minute, ackedAtLeast(perSender))
	decider.start()
	for range 2 {
		if err := <-sendErrs; err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, d := range []*testenv.WSClient{alice, carol} {
		for j := range perSender {
			want[fmt.Sprintf("%s-%d", d.Name(), j)] = true
		}
	}
	for _, m := range []string{"alice", "bob", "carol"} {
		testenv.Eventually(t, 2*time.Minute, func() string {
			h, code := allHistory(t, sys, m, group)
			if code != 200 || len(h.Messages) != len(want) {
				return fmt.Sprintf("%s's group history: status %d, %d of %d messages", m, code, len(h.Messages), len(want))
			}
			seen := map[string]bool{}
			for i, it := range h.Messages {
				if it.Seq != int64(i+1) || !want[it.ClientMsgID] || seen[it.ClientMsgID] {
					return fmt.Sprintf("%s's group history: item %d is seq %d, %q (gap, duplicate or stranger)", m, i, it.Seq, it.ClientMsgID)
				}
				seen[it.ClientMsgID] = true
			}
			return ""
		})
	}

	// Resume from nothing on a new device: everything, once.
	laptop := connect(t, sys, 1, "bob", "laptop")
	events, _ := resume(t, laptop, map[string]int64{conv: 0, group: 0})
	got := map[string]int{}
	for _, e := range events {
		if id := e.GetMessageSent().GetClientMsgId(); id != "" {
			got[id]++
		}
	}
	if got["d-1"] != 1 {
		t.Errorf("bob's laptop resumed the direct message %d times, want 1", got["d-1"])
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("bob's laptop resumed %s %d times, want 1", id, got[id])
		}
	}

	// replay verify as its own read-only principal; Cassandra as the
	// operator's role.
	rep, err := replay.Verify(ctx, replay.Config{Seeds: k.Seeds, KafkaOptions: k.Opts(k.SCRAM("replay"))[1:], Topics: sys.Topics,
		Cassandra: c.Superuser(), Keyspace: ks}, replay.VerifyOptions{Conversations: []string{conv, group}})
	if err != nil || !rep.OK() {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("verify: %v\n%s", err, b.String())
	}
	if !decider.logged("restored partition state") {
		t.Error("the decider's log has no partition restore: its password check below would prove nothing")
	}
	for _, s := range secrets {
		if decider.logged(s) {
			t.Error("the decider logged a password")
		}
	}
}

// securedDecider is the decider's main as a process of its own on a
// secured Kafka, with its settings in the environment as a deployment
// gives them.
type securedDecider struct {
	mainProc
	mu  sync.Mutex
	out bytes.Buffer // every run's stderr
}

func newSecuredDecider(t *testing.T, dir string, sys *system.System, k *testenv.SecureKafka) *securedDecider {
	t.Helper()
	password := filepath.Join(dir, "decider.password")
	if err := os.WriteFile(password, []byte(k.Password("decider")), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &securedDecider{mainProc: mainProc{t: t, bin: buildMains(t, "ingest")["ingest"], env: append(os.Environ(),
		"PARLEY_KAFKA_SEEDS="+strings.Join(k.Seeds, ","),
		"PARLEY_TOPIC_PREFIX="+sys.Options().TopicPrefix,
		"PARLEY_INGEST_GROUP="+sys.GroupOf("ingest"),
		"PARLEY_INGEST_TRANSACTIONAL_ID="+sys.TxnIDOf("ingest"),
		"PARLEY_HTTP_ADDR=127.0.0.1:0",
		"PARLEY_KAFKA_TLS_CA="+k.CAFile,
		"PARLEY_KAFKA_SASL_MECHANISM="+deploy.SASLScramSHA512,
		"PARLEY_KAFKA_SASL_USERNAME=decider",
		"PARLEY_KAFKA_SASL_PASSWORD_FILE="+password,
	)}}
	t.Cleanup(d.kill)
	return d
}

func (d *securedDecider) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if testing.Verbose() {
		_, _ = os.Stderr.Write(p)
	}
	return d.out.Write(p)
}

// start runs the binary (again).
func (d *securedDecider) start() {
	d.t.Helper()
	d.run(d)
}

// logged reports whether s appears in anything the decider wrote.
func (d *securedDecider) logged(s string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Contains(d.out.Bytes(), []byte(s))
}
