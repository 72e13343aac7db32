package testenv

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas/deploy"
)

// The role Cassandra creates when it first starts with CassandraRoleManager
// and finds no roles: a superuser, the only way into a new node. A
// deployment creates its own superuser and drops this one; a test node
// keeps it.
const (
	DefaultCassandraSuperuser = "cassandra"
	DefaultCassandraPassword  = "cassandra"
)

// secureCassandraHeapMB is the heap of a node of a test's own: enough for
// a few keyspaces and the auth tables, half the shared node's.
const secureCassandraHeapMB = 512

// SecureCassandraEnv is a Cassandra node of a test's own that lets in only
// clients with a password, over TLS: PasswordAuthenticator,
// CassandraAuthorizer (every statement checked against the role's grants),
// CassandraRoleManager, and client_encryption_options enabled and not
// optional, with a certificate made at start. The shared node stays open
// (no password, no TLS); a test that needs the secured one starts it with
// SecureCassandra, which costs a JVM start (10–30 s on a loaded machine),
// so a package keeps its secured tests in one test function.
type SecureCassandraEnv struct {
	// Hosts is the node's CQL address, 127.0.0.1:<port>.
	Hosts []string
	// CAFile is the PEM certificate that verifies the node's (made for
	// the loopback names, valid a day): what a client's
	// PARLEY_CASSANDRA_TLS_CA names.
	CAFile string
	// Dir holds the node's configuration, data and logs.
	Dir string
	// ClientCert is the client certificate the node requires, when started
	// with SecureCassandraOptions.ClientCertificates: what a client's
	// PARLEY_CASSANDRA_TLS_CERT and _KEY name. Client presents it.
	ClientCert *CertFiles
	// StartTime is how long the start took, until the superuser could log in.
	StartTime time.Duration

	p *proc
}

// SecureCassandraOptions change how SecureCassandraWith secures the node.
type SecureCassandraOptions struct {
	// ClientCertificates makes the node require a client certificate too
	// (require_client_auth), trusting one made at start (ClientCert).
	ClientCertificates bool
}

// SecureCassandra starts a secured Cassandra node on free ports, ready once
// the default superuser logs in over TLS, and stops it at cleanup. It is
// skipped under -short like the other integration helpers.
func SecureCassandra(t testing.TB) *SecureCassandraEnv {
	t.Helper()
	return SecureCassandraWith(t, SecureCassandraOptions{})
}

// SecureCassandraWith is SecureCassandra with options.
func SecureCassandraWith(t testing.TB, opts SecureCassandraOptions) *SecureCassandraEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: integration test skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := StartSecureCassandra(ctx, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// StartSecureCassandra is SecureCassandra without a test: the node lives in
// dir and is tied to this process (killed with it), until Stop.
func StartSecureCassandra(ctx context.Context, dir string, opts SecureCassandraOptions) (*SecureCassandraEnv, error) {
	java, err := javaBinary(ctx)
	if err != nil {
		return nil, err
	}
	lib, err := fetch(ctx, "cassandra", CassandraVersion, cassandraArtifacts)
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cert, err := writeCertFiles(dir, "cassandra-node")
	if err != nil {
		return nil, err
	}
	// PEMBasedSslContextFactory reads the private key and its certificate
	// chain from one PEM file.
	key, err := os.ReadFile(cert.KeyFile)
	if err != nil {
		return nil, err
	}
	crt, err := os.ReadFile(cert.CertFile)
	if err != nil {
		return nil, err
	}
	keystore := filepath.Join(dir, "cassandra-node-keystore.pem")
	if err := os.WriteFile(keystore, append(key, crt...), 0o600); err != nil {
		return nil, err
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	c := &SecureCassandraEnv{Hosts: []string{fmt.Sprintf("127.0.0.1:%d", ports[0])}, CAFile: cert.CertFile, Dir: dir}
	clientAuth := ""
	if opts.ClientCertificates {
		cc, err := writeCertFiles(dir, "cassandra-client", x509.ExtKeyUsageClientAuth)
		if err != nil {
			return nil, err
		}
		c.ClientCert = &cc
		// The truststore is the PEM client certificate itself.
		clientAuth = "  truststore: " + cc.CertFile + "\n"
	}
	extra := cassandraExtra{
		yaml: fmt.Sprintf(`authenticator: PasswordAuthenticator
authorizer: CassandraAuthorizer
role_manager: CassandraRoleManager
client_encryption_options:
  enabled: true
  optional: false
  require_client_auth: %t
  keystore: %s
%s  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
`, opts.ClientCertificates, keystore, clientAuth),
		// Ready once the superuser logs in: the role is created a moment
		// after the native transport opens.
		probe: func(ctx context.Context, host string) error {
			return probeWith(ctx, c.Superuser())
		},
	}
	t0 := time.Now()
	c.p, err = startCassandraWith(ctx, java, lib, filepath.Join(dir, "node"), ports[0], ports[1], ports[2],
		secureCassandraHeapMB, true, 5*time.Minute, extra)
	if err != nil {
		return nil, err
	}
	c.StartTime = time.Since(t0)
	return c, nil
}

// Client is how a component reaches the node as role user: its address,
// the CA that verifies it, the role's password, and the client certificate
// when the node requires one.
func (c *SecureCassandraEnv) Client(user, password string) deploy.Cassandra {
	d := deploy.Cassandra{Hosts: c.Hosts, CAFile: c.CAFile, Username: user, Password: password, Timeout: 30 * time.Second}
	if c.ClientCert != nil {
		d.CertFile, d.KeyFile = c.ClientCert.CertFile, c.ClientCert.KeyFile
	}
	return d
}

// Superuser is Client for the default superuser (DefaultCassandraSuperuser).
func (c *SecureCassandraEnv) Superuser() deploy.Cassandra {
	return c.Client(DefaultCassandraSuperuser, DefaultCassandraPassword)
}

// Stop stops the node (SIGTERM, then SIGKILL after 10 s).
func (c *SecureCassandraEnv) Stop() { c.p.stop(10 * time.Second) }

// probeWith succeeds when a session opens with cfg and system.local answers.
func probeWith(ctx context.Context, cfg deploy.Cassandra) error {
	cfg.Timeout = 2 * time.Second
	cl, err := cfg.Cluster()
	if err != nil {
		return err
	}
	cl.DisableInitialHostLookup = true
	cl.Logger = gocql.NewLogger(gocql.LogLevelNone)
	s, err := cl.CreateSession()
	if err != nil {
		return err
	}
	defer s.Close()
	var v string
	return s.Query("SELECT release_version FROM system.local").ScanContext(ctx, &v)
}

// PID is the node's process id.
func (c *SecureCassandraEnv) PID() int { return c.p.pid }
