package query

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/testenv"
)

// TestServingKeyspace: the base keyspace's pointer moves the views to
// another keyspace and back; a pointer to a keyspace without views, or no
// serving table at all, leaves what is served alone.
func TestServingKeyspace(t *testing.T) {
	base, other := newFixture(t), newFixture(t)
	base.conversation(gid("1"), "group", "in the base", "alice", "bob")
	other.conversation(gid("1"), "group", "in the other", "alice", "bob")
	title := func() string {
		t.Helper()
		var c struct{ Title string }
		base.getJSON("alice", "/v1/conversations/"+gid("1"), &c)
		return c.Title
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	refresh := func() error { return base.srv.serving.refresh(ctx) }
	if got := title(); got != "in the base" || base.srv.Keyspace() != base.cass.Keyspace {
		t.Fatalf("before any pointer: %q from %s", got, base.srv.Keyspace())
	}

	pinned := context.WithValue(ctx, storeKey{}, base.srv.serving.current())
	base.exec("INSERT INTO serving (name, keyspace_name) VALUES ('views', ?)", strings.ToUpper(other.cass.Keyspace))
	if err := refresh(); err != nil {
		t.Fatal(err)
	}
	if got := title(); got != "in the other" || base.srv.Keyspace() != other.cass.Keyspace {
		t.Errorf("after the pointer: %q from %s", got, base.srv.Keyspace())
	}
	if base.srv.db(pinned).keyspace != base.cass.Keyspace {
		t.Error("a request that started before the switch moved keyspace")
	}

	// A keyspace without views is not followed.
	bare := testenv.Cassandra(t).Keyspace
	base.exec("INSERT INTO serving (name, keyspace_name) VALUES ('views', ?)", bare)
	if err := refresh(); err == nil || base.srv.Keyspace() != other.cass.Keyspace {
		t.Errorf("pointer to %s without views: %v, serving %s", bare, err, base.srv.Keyspace())
	}
	if _, err := New(Config{Hosts: base.cass.Hosts, Keyspace: base.cass.Keyspace, Auth: base.authCfg}); err == nil {
		t.Error("New followed a pointer to a keyspace without views")
	}

	// No row, then no table: the base itself.
	base.exec("DELETE FROM serving WHERE name = 'views'")
	if err := refresh(); err != nil || title() != "in the base" {
		t.Errorf("pointer deleted: %v, %q", err, title())
	}
	base.exec("DROP TABLE serving")
	if err := refresh(); err != nil || base.srv.Keyspace() != base.cass.Keyspace {
		t.Errorf("no serving table: %v, serving %s", err, base.srv.Keyspace())
	}
	var health map[string]string
	code, body := base.get("", "/healthz")
	if _ = json.Unmarshal(body, &health); code != 200 || health["status"] != "ok" {
		t.Errorf("healthz: %d %s", code, body)
	}
}
