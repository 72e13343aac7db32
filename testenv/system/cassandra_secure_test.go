package system_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/provision"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// TestE2ESecuredCassandra: Parley on a Cassandra node that requires TLS
// and a password, each component with the role the provisioning made for
// it — the projector writing the views, query and the gateway only reading
// them. A message goes from alice to bob live, reaches bob's history and
// inbox through query, and a device of bob's that resumes from nothing
// gets it from the gateway's reads; no log line holds a password.
func TestE2ESecuredCassandra(t *testing.T) {
	c := testenv.SecureCassandra(t)
	k := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ks = "parley"
	roles := provision.Roles{Passwords: map[string]string{}, Keyspaces: []string{ks}}
	log := testenv.Logger(t)
	cass := map[string]deploy.Cassandra{"provision": c.Superuser()}
	for _, comp := range []string{"projector", "query", "gateway"} {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		roles.Passwords[comp] = hex.EncodeToString(b)
		testenv.ForbidInLogs(log, roles.Passwords[comp])
		cass[comp] = c.Client(roles.RoleName(comp), roles.Passwords[comp])
	}
	super, err := c.Superuser().Session()
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	var r provision.Report
	if err := provision.Cassandra(ctx, super, provision.Keyspace{Name: ks}, &r); err != nil {
		t.Fatal(err)
	}
	if err := provision.CassandraRoles(ctx, super, roles, &r); err != nil {
		t.Fatal(err)
	}
	sys, err := system.Start(ctx, system.Options{Seeds: k.Seeds, Hosts: c.Hosts, Keyspace: ks,
		TopicPrefix: k.Name("seccass") + ".", Cassandra: cass, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)

	alice, bob := connect(t, sys, 0, "alice", "phone"), connect(t, sys, 0, "bob", "phone")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	accepted(t, alice.MustDo(conv, send("sec-1", "over a secured Cassandra")))
	bob.WaitEvent("alice's message", func(e *pb.Event) bool { return e.GetMessageSent().GetText() == "over a secured Cassandra" })
	testenv.Eventually(t, 2*time.Minute, func() string {
		h, code := allHistory(t, sys, "bob", conv)
		if code != 200 || len(h.Messages) != 1 || h.Messages[0].Text != "over a secured Cassandra" {
			return fmt.Sprintf("bob's history: status %d, %+v", code, h.Messages)
		}
		if last, n, ok := inboxEntry(t, sys, "bob", conv); !ok || last != 1 || n != 1 {
			return fmt.Sprintf("bob's inbox: present %v, last_seq %d, unread %d; want 1, 1", ok, last, n)
		}
		return ""
	})
	laptop := connect(t, sys, 0, "bob", "laptop")
	events, _ := resume(t, laptop, map[string]int64{conv: 0})
	found := false
	for _, e := range events {
		found = found || e.GetMessageSent().GetText() == "over a secured Cassandra"
	}
	if !found {
		t.Errorf("bob's laptop resumed from 0 without the message: %d events", len(events))
	}
}
