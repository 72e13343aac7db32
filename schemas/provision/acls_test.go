package provision_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/schemas/provision"
)

// TestACLTable: the per-component grants, as the README's table lists
// them: only the decider writes events and its changelog, the projector
// writes nothing, and a prefix reaches every name.
func TestACLTable(t *testing.T) {
	p, err := provision.ParsePrincipals("gateway=gw, decider=User:dec,projector=proj,notifier=n,webhooks=w,replay=r")
	if err != nil {
		t.Fatal(err)
	}
	acls := provision.Topics{Prefix: "t1."}.ACLs(p)
	writers := map[string][]string{}
	for _, a := range acls {
		if !strings.HasPrefix(a.Name, "t1.") {
			t.Errorf("%s: not under the prefix", a)
		}
		if a.Operation == "WRITE" && a.Resource == "topic" {
			writers[a.Name] = append(writers[a.Name], a.Principal)
		}
		if a.Principal == "User:proj" && a.Operation == "WRITE" {
			t.Errorf("the projector may write: %s", a)
		}
		if a.Principal == "User:r" && a.Operation != "READ" {
			t.Errorf("replay may do more than read: %s", a)
		}
	}
	for _, topic := range []string{"t1.parley.events", "t1.parley.ingest.state"} {
		if got := strings.Join(writers[topic], ","); got != "User:dec" {
			t.Errorf("writers of %s: %s, want only the decider", topic, got)
		}
	}
	if got := strings.Join(writers["t1.parley.commands"], ","); !strings.Contains(got, "User:gw") {
		t.Errorf("writers of commands: %s", got)
	}
	for _, bad := range []string{"gateway", "cache=x", "gateway="} {
		if _, err := provision.ParsePrincipals(bad); err == nil {
			t.Errorf("ParsePrincipals(%q) accepted", bad)
		}
	}
	if p, _ := provision.ParsePrincipals(""); !p.Empty() {
		t.Error("empty")
	}
}
