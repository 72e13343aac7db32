package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestEnv(t *testing.T) {
	e := deploy.EnvFrom(map[string]string{
		"A": " x ", "L": "a, b,,c", "N": "12", "BADN": "-3", "D": "250ms", "BADD": "soon", "B": "true", "F": "1.5",
	})
	if e.String("A", "d") != "x" || e.String("MISSING", "d") != "d" {
		t.Error("String")
	}
	if got := strings.Join(e.List("L"), "|"); got != "a|b|c" {
		t.Errorf("List: %s", got)
	}
	if e.Int("N", 1) != 12 || e.Int("BADN", 7) != 7 || e.Duration("D", 0) != 250*time.Millisecond ||
		e.Duration("BADD", time.Second) != time.Second || !e.Bool("B", false) || e.Float("F", 0) != 1.5 {
		t.Error("typed values")
	}
	e.Required("NEEDED")
	err := e.Err()
	for _, want := range []string{"BADN", "BADD", "NEEDED is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %v, want it to name %s", err, want)
		}
	}
	if n := len(e.Names()); n != 10 {
		t.Errorf("Names: %d settings", n)
	}
}

func TestNames(t *testing.T) {
	if g := deploy.GroupName("t1.", "projector"); g != "t1.parley-projector" {
		t.Error(g)
	}
	if g := deploy.InstanceName("", "ingest", "host-a"); g != "parley-ingest-host-a" {
		t.Error(g)
	}
}

func TestMembership(t *testing.T) {
	m := deploy.Membership{}.Defaults()
	if m.SessionTimeout != deploy.DefaultSessionTimeout || m.HeartbeatInterval != time.Second {
		t.Errorf("defaults: %+v", m)
	}
	if err := (deploy.Membership{SessionTimeout: time.Second, HeartbeatInterval: 2 * time.Second}).Validate(); err == nil {
		t.Error("heartbeat above session timeout accepted")
	}
	if len((deploy.Membership{InstanceID: "a"}).KafkaOptions()) != 3 || len((deploy.Membership{}).KafkaOptions()) != 2 {
		t.Error("KafkaOptions")
	}
}

func TestHealthz(t *testing.T) {
	healthy := true
	checks := []deploy.Check{
		{Name: "always", Fn: func(context.Context) error { return nil }},
		{Name: "flag", Fn: func(context.Context) error {
			if healthy {
				return nil
			}
			return errors.New("partitions not assigned")
		}},
		{Name: "slow", Fn: func(ctx context.Context) error {
			if healthy {
				return nil
			}
			<-ctx.Done() // answers only when the check's deadline passes
			return nil
		}},
	}
	ops, err := deploy.ListenOps("127.0.0.1:0", slog.New(slog.DiscardHandler), deploy.Registry(), checks, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	get := func() (int, deploy.HealthBody) {
		resp, err := http.Get("http://" + ops.Addr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b deploy.HealthBody
		if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	if code, b := get(); code != 200 || b.Status != "ok" || b.Checks["flag"] != "ok" {
		t.Errorf("healthy: %d %+v", code, b)
	}
	healthy = false
	code, b := get()
	if code != 503 || b.Status != "unavailable" || b.Checks["flag"] != "partitions not assigned" || b.Checks["always"] != "ok" ||
		!strings.Contains(b.Checks["slow"], "no answer") {
		t.Errorf("unhealthy: %d %+v", code, b)
	}
	resp, err := http.Get("http://" + ops.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "go_goroutines") {
		t.Error("/metrics lacks the Go collector")
	}
}

func TestCassandraSession(t *testing.T) {
	if _, err := (deploy.Cassandra{Hosts: []string{"a:1", "b:2"}}).Cluster(); err == nil {
		t.Error("different ports accepted")
	}
	if _, err := (deploy.Cassandra{Hosts: []string{"a"}, Consistency: "MOST"}).Cluster(); err == nil {
		t.Error("unknown consistency accepted")
	}
	if _, err := (deploy.Cassandra{Hosts: []string{"a"}, CAFile: "/nonexistent/ca.pem"}).Cluster(); err == nil {
		t.Error("missing CA file accepted")
	}
	c := testenv.Cassandra(t)
	s, err := deploy.Cassandra{Hosts: c.Hosts, Consistency: "quorum"}.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v string
	if err := s.Query("SELECT release_version FROM system.local").Scan(&v); err != nil || v == "" {
		t.Fatalf("query: %q %v", v, err)
	}
}

func TestEnvCassandraPasswordFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "cassandra-password")
	if err := os.WriteFile(f, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := deploy.EnvFrom(map[string]string{
		"PARLEY_CASSANDRA_USERNAME": "parley_query", "PARLEY_CASSANDRA_PASSWORD": "ignored",
		"PARLEY_CASSANDRA_PASSWORD_FILE": f,
	})
	if c := e.Cassandra(); c.Username != "parley_query" || c.Password != "s3cret-from-file" {
		t.Errorf("from the file: %q %q", c.Username, c.Password)
	}
	if c := deploy.EnvFrom(map[string]string{"PARLEY_CASSANDRA_PASSWORD": " direct "}).Cassandra(); c.Password != "direct" {
		t.Errorf("from the variable: %q", c.Password)
	}
	e = deploy.EnvFrom(map[string]string{"PARLEY_CASSANDRA_PASSWORD_FILE": filepath.Join(t.TempDir(), "missing")})
	if c := e.Cassandra(); c.Password != "" || e.Err() == nil || !strings.Contains(e.Err().Error(), "PARLEY_CASSANDRA_PASSWORD_FILE") {
		t.Errorf("missing file: password %q, err %v", c.Password, e.Err())
	}
}
