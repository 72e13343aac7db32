package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/provision"
	"github.com/parley-im/parley/testenv"
)

// -secured runs the benchmark the way a production deployment runs: the
// gateways and query behind TLS (wss://, https://), Kafka with only a
// SASL_SSL listener (SCRAM-SHA-512) and ACLs, each component its own
// principal, and Cassandra with a password role per component over TLS.
// Everything else (the workload, the JVM heaps, the figures) is the plain
// run's, so the two runs' ratio is the cost of the security.

// securedVar names the file of the secured settings, for the child.
const securedVar = "PARLEY_LOAD_SECURED"

// securedSetup is what the child needs to reach the secured Kafka and
// Cassandra and to serve TLS. It holds passwords: the file is 0600 in the
// run's own temporary directory, removed with it.
type securedSetup struct {
	KafkaSeeds []string `json:"kafka_seeds"`
	KafkaCA    string   `json:"kafka_ca"`
	// Kafka is the login of each component that reaches Kafka ("provision",
	// "ingest", "projector", "gateway").
	Kafka     map[string]login `json:"kafka"`
	Hosts     []string         `json:"cassandra_hosts"`
	CassCA    string           `json:"cassandra_ca"`
	Cassandra map[string]login `json:"cassandra"` // "provision", "projector", "query", "gateway"
	EdgeCert  string           `json:"edge_cert"`
	EdgeKey   string           `json:"edge_key"`
}

// login is a Kafka user or a Cassandra role, with its password.
type login struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// kafkaUsers: the principal of each component that reaches Kafka in the
// benchmark (the bench runs no notifier or webhooks).
var kafkaUsers = map[string]string{"ingest": "decider", "projector": "projector", "gateway": "gateway"}

// startSecured starts the secured Kafka and Cassandra in dir (tied to this
// process), creates the ACLs and the roles, makes the edge certificate and
// writes the child's settings file. stop ends both.
func startSecured(ctx context.Context, dir, prefix string, logf func(string, ...any)) (env *testenv.Env, settings string, stop func(), err error) {
	users := []string{}
	for _, u := range kafkaUsers {
		users = append(users, u)
	}
	type started struct {
		c   *testenv.SecureCassandraEnv
		err error
	}
	cassStarted := make(chan started, 1)
	go func() {
		c, err := testenv.StartSecureCassandra(ctx, filepath.Join(dir, "cassandra"), testenv.SecureCassandraOptions{})
		cassStarted <- started{c, err}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "kafka"), 0o755); err != nil {
		return nil, "", nil, err
	}
	k, kerr := testenv.StartSecureKafkaIn(ctx, filepath.Join(dir, "kafka"), testenv.SecureKafkaOptions{Users: users}, func(string, ...any) {})
	cs := <-cassStarted
	stop = func() {
		if k != nil {
			k.Stop()
		}
		if cs.c != nil {
			cs.c.Stop()
		}
	}
	if err := errors.Join(kerr, cs.err); err != nil {
		stop()
		return nil, "", nil, err
	}
	c := cs.c
	logf("secured kafka on %v, secured cassandra on %v (up in %v)", k.Seeds, c.Hosts, c.StartTime.Round(time.Millisecond))
	defer func() {
		if err != nil {
			stop()
		}
	}()

	admin, err := kgo.NewClient(k.Opts(k.SCRAM(testenv.KafkaAdminUser))...)
	if err != nil {
		return nil, "", nil, err
	}
	defer admin.Close()
	var r provision.Report
	if err := provision.KafkaACLs(ctx, admin, provision.Topics{Prefix: prefix},
		provision.Principals{Gateway: kafkaUsers["gateway"], Decider: kafkaUsers["ingest"], Projector: kafkaUsers["projector"]}, &r); err != nil {
		return nil, "", nil, err
	}
	super, err := c.Superuser().Session()
	if err != nil {
		return nil, "", nil, err
	}
	defer super.Close()
	if err := provision.Cassandra(ctx, super, provision.Keyspace{Name: benchKeyspace}, &r); err != nil {
		return nil, "", nil, err
	}
	roles := provision.Roles{Passwords: map[string]string{}, Keyspaces: []string{benchKeyspace}}
	s := securedSetup{KafkaSeeds: k.Seeds, KafkaCA: k.CAFile, Hosts: c.Hosts, CassCA: c.CAFile,
		Kafka:     map[string]login{"provision": {testenv.KafkaAdminUser, k.Password(testenv.KafkaAdminUser)}},
		Cassandra: map[string]login{"provision": {testenv.DefaultCassandraSuperuser, testenv.DefaultCassandraPassword}}}
	for comp, u := range kafkaUsers {
		s.Kafka[comp] = login{u, k.Password(u)}
	}
	for _, comp := range []string{"projector", "query", "gateway"} {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		roles.Passwords[comp] = hex.EncodeToString(b)
		s.Cassandra[comp] = login{roles.RoleName(comp), roles.Passwords[comp]}
	}
	if err := provision.CassandraRoles(ctx, super, roles, &r); err != nil {
		return nil, "", nil, err
	}
	edge, err := testenv.WriteCertIn(dir, "edge")
	if err != nil {
		return nil, "", nil, err
	}
	s.EdgeCert, s.EdgeKey = edge.CertFile, edge.KeyFile
	b, err := json.Marshal(s)
	if err != nil {
		return nil, "", nil, err
	}
	settings = filepath.Join(dir, "secured.json")
	if err := os.WriteFile(settings, b, 0o600); err != nil {
		return nil, "", nil, err
	}
	if err := useClientTLS(edge.CertFile); err != nil {
		return nil, "", nil, err
	}
	env = &testenv.Env{Dir: dir, KafkaSeeds: k.Seeds, CassandraHosts: c.Hosts, KafkaPID: k.PID(), CassandraPID: c.PID()}
	return env, settings, stop, nil
}

// loadSecured reads the child's settings file.
func loadSecured(path string) (securedSetup, error) {
	var s securedSetup
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// kafka is component's Kafka settings (a component without a user gets
// none, and Kafka refuses it at once).
func (s securedSetup) kafka(component string) deploy.Kafka {
	l := s.Kafka[component]
	return deploy.Kafka{CAFile: s.KafkaCA, Mechanism: deploy.SASLScramSHA512, Username: l.User, Password: []byte(l.Password)}
}

// cassandra is each component's Cassandra settings.
func (s securedSetup) cassandra() map[string]deploy.Cassandra {
	out := map[string]deploy.Cassandra{}
	for comp, l := range s.Cassandra {
		out[comp] = deploy.Cassandra{Hosts: s.Hosts, CAFile: s.CassCA, Username: l.User, Password: l.Password, Timeout: 30 * time.Second}
	}
	return out
}

// edge is the certificate the gateways and query serve.
func (s securedSetup) edge() (*testenv.CertFiles, error) {
	pool, leaf, err := readCA(s.EdgeCert)
	if err != nil {
		return nil, err
	}
	return &testenv.CertFiles{CertFile: s.EdgeCert, KeyFile: s.EdgeKey, Pool: pool, Leaf: leaf}, nil
}

// clientTLS is what the load's clients trust with -secured (nil: plain).
var clientTLS *tls.Config

// httpClient is the load's client of query (and of the gateways' HTTP).
var httpClient = http.DefaultClient

func useClientTLS(caFile string) error {
	pool, _, err := readCA(caFile)
	if err != nil {
		return err
	}
	clientTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = clientTLS
	httpClient = &http.Client{Transport: t}
	return nil
}

func readCA(file string) (*x509.CertPool, *x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("load: %s holds no PEM certificate", file)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("load: %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return pool, leaf, nil
}
