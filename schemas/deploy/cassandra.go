package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// Cassandra is how a component reaches Cassandra. Session builds the one
// kind of session every component uses: not bound to a keyspace (statements
// name their tables in full), with the port of host:port contact points
// applied to the discovered nodes too, bounded timeouts, the configured
// consistency, and optional password authentication and TLS.
type Cassandra struct {
	// Hosts are contact points, "host" or "host:port" (default port 9042).
	Hosts []string
	// Timeout bounds one request and one connection attempt (default 10 s).
	Timeout time.Duration
	// Consistency of every request: a CQL level name such as LOCAL_QUORUM
	// (default), QUORUM or ONE. On one node every level above ONE is the
	// same; on a cluster, writes and reads at (LOCAL_)QUORUM overlap, so a
	// read sees every acknowledged write.
	Consistency string
	// Username and Password enable PasswordAuthenticator.
	Username, Password string
	// CAFile verifies the nodes' certificates (enables TLS); CertFile and
	// KeyFile are the client's certificate, when the nodes require one.
	// ServerName overrides the name checked in the node certificates.
	CAFile, CertFile, KeyFile, ServerName string
	// Logger gets the driver's warnings and errors (its info and debug
	// lines, one per connection event, are dropped).
	Logger *slog.Logger
}

// Or returns c with its unset Hosts, Timeout, Consistency and Logger taken
// from the arguments: how a component's shorthand fields (a Config's Hosts,
// say) and its own defaults fill in what the deployment left open.
func (c Cassandra) Or(hosts []string, timeout time.Duration, consistency string, logger *slog.Logger) Cassandra {
	if len(c.Hosts) == 0 {
		c.Hosts = hosts
	}
	if c.Timeout == 0 {
		c.Timeout = timeout
	}
	if c.Consistency == "" {
		c.Consistency = consistency
	}
	if c.Logger == nil {
		c.Logger = logger
	}
	return c
}

// Session connects.
func (c Cassandra) Session() (*gocql.Session, error) {
	cl, err := c.Cluster()
	if err != nil {
		return nil, err
	}
	s, err := cl.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("cassandra session (hosts %v): %w%s", c.Hosts, err, c.hint(err))
	}
	return s, nil
}

// hint explains the one refusal whose driver error says nothing: a node
// that requires TLS resets a plain connection.
func (c Cassandra) hint(err error) string {
	if c.CAFile != "" || c.CertFile != "" {
		return ""
	}
	msg := err.Error()
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) ||
		strings.Contains(msg, "connection reset by peer") || strings.HasSuffix(msg, "EOF") {
		return " (the node closed a plain connection: if it requires TLS, give its CA in PARLEY_CASSANDRA_TLS_CA)"
	}
	return ""
}

// Cluster is the driver configuration Session uses, for callers that adjust
// it further (a test that binds a keyspace, say).
func (c Cassandra) Cluster() (*gocql.ClusterConfig, error) {
	if len(c.Hosts) == 0 {
		return nil, errors.New("cassandra: no hosts")
	}
	cl := gocql.NewCluster(c.Hosts...)
	if p := commonPort(c.Hosts); p != 0 {
		// Contact points given as host:port all on one port: the driver
		// would assume 9042 for the nodes it discovers.
		cl.Port = p
	} else if hasPort(c.Hosts) {
		return nil, fmt.Errorf("cassandra: hosts %v name different ports; every node must listen on the same port", c.Hosts)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cl.Timeout, cl.ConnectTimeout = timeout, timeout
	cons := c.Consistency
	if cons == "" {
		cons = "LOCAL_QUORUM"
	}
	level, err := ParseConsistency(cons)
	if err != nil {
		return nil, err
	}
	cl.Consistency = level
	if c.Username != "" || c.Password != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: c.Username, Password: c.Password}
	}
	if c.CAFile != "" || c.CertFile != "" {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		cl.SslOpts = &gocql.SslOptions{Config: tc, EnableHostVerification: true}
	}
	if c.Logger != nil {
		cl.Logger = slogCQL{c.Logger.With("component", "gocql")}
	}
	return cl, nil
}

func (c Cassandra) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cassandra: TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cassandra: TLS CA %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cassandra: TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// ParseConsistency parses a CQL consistency level name (any case).
func ParseConsistency(s string) (gocql.Consistency, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "ONE":
		return gocql.One, nil
	case "TWO":
		return gocql.Two, nil
	case "THREE":
		return gocql.Three, nil
	case "QUORUM":
		return gocql.Quorum, nil
	case "ALL":
		return gocql.All, nil
	case "LOCAL_QUORUM":
		return gocql.LocalQuorum, nil
	case "EACH_QUORUM":
		return gocql.EachQuorum, nil
	case "LOCAL_ONE":
		return gocql.LocalOne, nil
	}
	return 0, fmt.Errorf("cassandra: unknown consistency %q (want ONE, QUORUM, LOCAL_QUORUM, ALL, …)", s)
}

func hasPort(hosts []string) bool {
	for _, h := range hosts {
		if _, _, err := net.SplitHostPort(h); err == nil {
			return true
		}
	}
	return false
}

func commonPort(hosts []string) int {
	port := 0
	for _, h := range hosts {
		_, ps, err := net.SplitHostPort(h)
		if err != nil {
			return 0
		}
		p, err := strconv.Atoi(ps)
		if err != nil || (port != 0 && p != port) {
			return 0
		}
		port = p
	}
	return port
}

// slogCQL passes the driver's warnings and errors to slog.
type slogCQL struct{ log *slog.Logger }

func (l slogCQL) attrs(fields []gocql.LogField) []any {
	out := make([]any, 0, len(fields))
	for _, f := range fields {
		out = append(out, slog.Any(f.Name, f.Value.Any()))
	}
	return out
}

func (l slogCQL) Error(msg string, fields ...gocql.LogField) { l.log.Error(msg, l.attrs(fields)...) }
func (l slogCQL) Warning(msg string, fields ...gocql.LogField) {
	l.log.Warn(msg, l.attrs(fields)...)
}
func (slogCQL) Info(string, ...gocql.LogField)  {}
func (slogCQL) Debug(string, ...gocql.LogField) {}
