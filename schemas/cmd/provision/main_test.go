package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas/provision"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func password(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "it's-" + hex.EncodeToString(b) // a quote, as CQL literals must escape
}

// TestRolesOnSecuredCassandra runs the command as the superuser of a node
// that requires passwords and TLS, twice, with -cassandra-roles all: every
// component logs in with its own role over TLS; only the projector writes
// the views, the others only read them; nobody changes the schema; a
// wrong password and a plain connection are refused; a role holding more
// than its row of the grants table, or a superuser under a component's
// name, is refused and left as it is; a new password replaces the old.
func TestRolesOnSecuredCassandra(t *testing.T) {
	c := testenv.SecureCassandra(t)
	dir := t.TempDir()
	pw := map[string]string{}
	for _, comp := range provision.Components() {
		pw[comp] = password(t)
	}
	// Three ways in: a _FILE, the variable itself, the password directory.
	projectorFile := filepath.Join(dir, "projector-secret")
	superFile := filepath.Join(dir, "superuser")
	pwDir := filepath.Join(dir, "roles")
	if err := os.Mkdir(pwDir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{projectorFile: pw["projector"] + "\n", superFile: testenv.DefaultCassandraPassword}
	for _, comp := range []string{"gateway", "notifier", "webhooks"} {
		files[filepath.Join(pwDir, comp)] = pw[comp] + "\n"
	}
	for f, v := range files {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PARLEY_CASSANDRA_USERNAME", testenv.DefaultCassandraSuperuser)
	t.Setenv("PARLEY_CASSANDRA_PASSWORD_FILE", superFile)
	t.Setenv("PARLEY_CASSANDRA_TLS_CA", c.CAFile)
	t.Setenv("PARLEY_CASSANDRA_PROJECTOR_PASSWORD_FILE", projectorFile)
	t.Setenv("PARLEY_CASSANDRA_QUERY_PASSWORD", pw["query"])
	const ks = "parley_sec"
	args := []string{"-skip-kafka", "-cassandra-hosts", c.Hosts[0], "-keyspace", ks,
		"-cassandra-roles", "all", "-cassandra-role-password-dir", pwDir, "-timeout", "5m"}
	provisionRun := func() (string, error) {
		var out bytes.Buffer
		err := run(args, &out)
		for _, p := range pw {
			if strings.Contains(out.String(), p) || (err != nil && strings.Contains(err.Error(), p)) {
				t.Fatalf("a password is in the report or the error:\n%s\n%v", out.String(), err)
			}
		}
		return out.String(), err
	}
	for i, want := range []string{"created:", "ok:"} {
		out, err := provisionRun()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out)
		}
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "role ") && strings.Contains(l, want) {
				n++
			}
		}
		if n != len(pw) {
			t.Fatalf("run %d: want %d roles %q, report:\n%s", i+1, len(pw), want, out)
		}
		if !strings.Contains(out, "role parley_projector") || !strings.Contains(out, "SELECT and MODIFY on "+ks) {
			t.Errorf("run %d: report lacks the projector's grants:\n%s", i+1, out)
		}
	}

	session := func(comp, password string) (*gocql.Session, error) {
		return c.Client("parley_"+comp, password).Session()
	}
	insert := "INSERT INTO " + ks + ".checkpoints (projector, partition, applied_offset, updated_at) VALUES (?, ?, ?, ?)"
	sessions := map[string]*gocql.Session{}
	for _, comp := range provision.Components() {
		s, err := session(comp, pw[comp])
		if err != nil {
			t.Fatalf("%s logs in over TLS: %v", comp, err)
		}
		t.Cleanup(s.Close)
		sessions[comp] = s
	}
	if err := sessions["projector"].Query(insert, "t", 0, int64(42), time.Now()).Exec(); err != nil {
		t.Fatalf("the projector writes: %v", err)
	}
	for _, comp := range provision.Components() {
		s := sessions[comp]
		var off int64
		if err := s.Query("SELECT applied_offset FROM "+ks+".checkpoints WHERE projector = ? AND partition = ?", "t", 0).Scan(&off); err != nil || off != 42 {
			t.Errorf("%s reads the projector's row: %d, %v", comp, off, err)
		}
		if comp != "projector" {
			err := s.Query(insert, "t", 1, int64(1), time.Now()).Exec()
			wantUnauthorized(t, comp+" INSERT", err, "has no MODIFY permission")
		}
		wantUnauthorized(t, comp+" DROP TABLE", s.Query("DROP TABLE "+ks+".checkpoints").Exec(), "has no DROP permission")
		wantUnauthorized(t, comp+" CREATE TABLE", s.Query("CREATE TABLE "+ks+".extra (k int PRIMARY KEY)").Exec(), "has no CREATE permission")
	}
	if _, err := session("query", pw["projector"]); err == nil || !strings.Contains(err.Error(), "password are incorrect") {
		t.Errorf("query with the projector's password: want refused, got %v", err)
	}
	plain := c.Client("parley_query", pw["query"])
	plain.CAFile = ""
	if _, err := plain.Session(); err == nil || !strings.Contains(err.Error(), "requires TLS") {
		t.Errorf("plain connection: want refused with a TLS hint, got %v", err)
	}

	// More than the table allows: refused, named, nothing changed.
	super, err := c.Superuser().Session()
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	if err := super.Query("GRANT MODIFY ON KEYSPACE " + ks + " TO parley_query").Exec(); err != nil {
		t.Fatal(err)
	}
	_, err = provisionRun()
	if !errors.Is(err, provision.ErrMismatch) || !strings.Contains(err.Error(), "role parley_query has MODIFY on <keyspace "+ks+">") {
		t.Fatalf("query with MODIFY: want ErrMismatch naming it, got %v", err)
	}
	if err := super.Query("REVOKE MODIFY ON KEYSPACE " + ks + " FROM parley_query").Exec(); err != nil {
		t.Fatal(err)
	}
	if err := super.Query("CREATE ROLE evil_query WITH PASSWORD = 'x' AND LOGIN = true AND SUPERUSER = true").Exec(); err != nil {
		t.Fatal(err)
	}
	err = run([]string{"-skip-kafka", "-cassandra-hosts", c.Hosts[0], "-keyspace", ks, "-cassandra-roles", "query", "-cassandra-role-prefix", "evil_"}, &bytes.Buffer{})
	if !errors.Is(err, provision.ErrMismatch) || !strings.Contains(err.Error(), "role evil_query is a superuser") {
		t.Fatalf("a superuser under a component's name: want ErrMismatch, got %v", err)
	}

	// A new password replaces the old (rotation: set it, run, restart).
	old := pw["query"]
	pw["query"] = password(t)
	t.Setenv("PARLEY_CASSANDRA_QUERY_PASSWORD", pw["query"])
	// Cassandra refuses a second change of a role's password within 5 s.
	testenv.Eventually(t, time.Minute, func() string {
		out, err := provisionRun()
		if err != nil {
			return "rotation: " + err.Error()
		}
		if !strings.Contains(out, "role parley_query                  password changed:") {
			return "rotation report: " + out
		}
		return ""
	})
	if s, err := session("query", pw["query"]); err != nil {
		t.Errorf("the new password: %v", err)
	} else {
		s.Close()
	}
	// The node caches credentials for credentials_validity (2 s).
	testenv.Eventually(t, time.Minute, func() string {
		s, err := session("query", old)
		if err == nil {
			s.Close()
			return "the old password still logs in"
		}
		if !strings.Contains(err.Error(), "password are incorrect") {
			return "the old password: " + err.Error()
		}
		return ""
	})
}

// TestRoleSettingsRefused: role settings that cannot work are refused
// before anything is reached, naming what is wrong.
func TestRoleSettingsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "query"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PARLEY_CASSANDRA_GATEWAY_PASSWORD", "set")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-cassandra-roles", "ingest"}, "ingest never reaches Cassandra"},
		{[]string{"-cassandra-roles", "all"}, "no password for projector, query, notifier, webhooks"},
		{[]string{"-cassandra-roles", "gateway,query", "-cassandra-role-password-dir", dir}, "no password for query (PARLEY_CASSANDRA_<COMPONENT>_PASSWORD or _FILE or a file in " + dir + ")"},
		{[]string{"-cassandra-roles", "gateway", "-skip-cassandra"}, "-cassandra-roles with -skip-cassandra"},
	} {
		err := run(append([]string{"-skip-kafka"}, tc.args...), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want an error saying %q, got %v", tc.args, tc.want, err)
		}
	}
}

func wantUnauthorized(t *testing.T, what string, err error, msg string) {
	t.Helper()
	var re gocql.RequestError
	if !errors.As(err, &re) || re.Code() != gocql.ErrCodeUnauthorized || !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: want Unauthorized (%s), got %v", what, msg, err)
	}
}
