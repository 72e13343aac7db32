package testenv

import (
	"strings"
	"testing"
)

// TestSecureCassandra: the secured node, here also requiring a client
// certificate, lets the superuser in over TLS, and refuses, each with an
// error that says why, a plain connection, a wrong password, no password,
// a node certificate the client's CA did not sign, no client certificate,
// and a server name (PARLEY_CASSANDRA_TLS_SERVER_NAME) the node's
// certificate does not hold.
func TestSecureCassandra(t *testing.T) {
	c := SecureCassandraWith(t, SecureCassandraOptions{ClientCertificates: true})
	t.Logf("secured node on %s ready in %s", c.Hosts[0], c.StartTime.Round(1e6))
	s, err := c.Superuser().Session()
	if err != nil {
		t.Fatalf("superuser over TLS: %v", err)
	}
	defer s.Close()
	var v string
	if err := s.Query("SELECT release_version FROM system.local").Scan(&v); err != nil || v != CassandraVersion {
		t.Fatalf("system.local: %q %v", v, err)
	}
	plain := c.Superuser()
	plain.CAFile, plain.CertFile, plain.KeyFile = "", "", ""
	wrong := c.Client(DefaultCassandraSuperuser, "not-the-password")
	otherCA := c.Superuser()
	otherCA.CAFile = WriteCert(t, t.TempDir(), "other").CertFile
	noCert := c.Superuser()
	noCert.CertFile, noCert.KeyFile = "", ""
	// The node's certificate names localhost: checked instead of the
	// address dialled when the server name is set, so a wrong one fails.
	named := c.Superuser()
	named.ServerName = "localhost"
	if s, err := named.Session(); err != nil {
		t.Errorf("server name localhost: %v", err)
	} else {
		s.Close()
	}
	misnamed := c.Superuser()
	misnamed.ServerName = "cassandra.invalid"
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"plain", func() error { _, err := plain.Session(); return err }, "PARLEY_CASSANDRA_TLS_CA"},
		{"wrong password", func() error { _, err := wrong.Session(); return err }, "password are incorrect"},
		{"no password", func() error { _, err := c.Client("", "").Session(); return err }, "authentication required"},
		{"a CA that did not sign the node's certificate", func() error { _, err := otherCA.Session(); return err }, "certificate signed by unknown authority"},
		{"no client certificate", func() error { _, err := noCert.Session(); return err }, "certificate required"},
		{"a server name the node's certificate does not hold", func() error { _, err := misnamed.Session(); return err }, "cassandra.invalid"},
	} {
		err := tc.err()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error saying %q, got %v", tc.name, tc.want, err)
		}
	}
}
