package testenv

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas/deploy"
)

// KafkaAdminUser is the super user of a SecureKafka: the broker's own
// inter-broker login, and who provisions topics and ACLs.
const KafkaAdminUser = "parley-admin"

// SecureKafka is a Kafka of one test's own, secured as a deployment's:
// one SASL_SSL client listener (TLS with a certificate made at start,
// SCRAM-SHA-512 and PLAIN), users whose SCRAM credentials are written at
// format time, and KRaft's StandardAuthorizer with
// allow.everyone.if.no.acl.found=false, so a user may do only what an ACL
// grants (KafkaAdminUser is a super user). The controller listener stays
// PLAINTEXT on loopback; its ANONYMOUS principal (the broker registering
// with its own controller) is a super user too, and no client reaches it
// (it is not advertised). It is stopped at the test's cleanup.
type SecureKafka struct {
	Seeds []string
	// CAFile is the PEM certificate the broker presents (self-signed, for
	// 127.0.0.1 and localhost): what a client's PARLEY_KAFKA_TLS_CA names.
	CAFile string
	// ClientCert is the client certificate the broker requires with
	// SecureKafkaOptions.RequireClientCert (zero otherwise); SCRAM and
	// Plain then present it.
	ClientCert CertFiles
	passwords  map[string]string
	t          testing.TB // nil for StartSecureKafkaIn
	p          *proc
}

// SecureKafkaOptions configures StartSecureKafkaWith.
type SecureKafkaOptions struct {
	// Users besides KafkaAdminUser, each with a random password.
	Users []string
	// RequireClientCert makes the broker require a client certificate it
	// trusts (ssl.client.auth=required), besides SASL: mutual TLS.
	RequireClientCert bool
}

// kafkaSecurity is what startKafka needs to secure its client listener.
type kafkaSecurity struct {
	keystore, truststore string
	passwords            map[string]string // user -> password, KafkaAdminUser among them
	clientAuth           string            // ssl.client.auth: none or required
	// ca verifies the broker; cert and key are the client's (mutual TLS).
	ca, cert, key string
}

func (s *kafkaSecurity) props(port, ctrlPort int) string {
	admin := s.passwords[KafkaAdminUser]
	names := make([]string, 0, len(s.passwords))
	for u := range s.passwords {
		names = append(names, u)
	}
	sort.Strings(names)
	var plainUsers strings.Builder
	for _, u := range names {
		fmt.Fprintf(&plainUsers, " user_%s=%q", u, s.passwords[u])
	}
	return fmt.Sprintf(`listeners=SASL_SSL://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=SASL_SSL://127.0.0.1:%[1]d
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=%[3]q password=%[4]q;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=%[3]q password=%[4]q%[5]s;
ssl.keystore.type=PEM
ssl.keystore.location=%[6]s
ssl.truststore.type=PEM
ssl.truststore.location=%[7]s
# A SASL_SSL listener takes ssl.client.auth only with its listener prefix.
listener.name.sasl_ssl.ssl.client.auth=%[8]s
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:%[3]s;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
`, port, ctrlPort, KafkaAdminUser, admin, plainUsers.String(), s.keystore, s.truststore, s.clientAuth)
}

// scramArgs create every user's SCRAM-SHA-512 credential at format time.
func (s *kafkaSecurity) scramArgs() []string {
	var args []string
	for u, p := range s.passwords {
		args = append(args, "--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", u, p))
	}
	return args
}

func (s *kafkaSecurity) adminOpts() ([]kgo.Opt, error) {
	return deploy.Kafka{CAFile: s.ca, CertFile: s.cert, KeyFile: s.key, Mechanism: deploy.SASLScramSHA512, Username: KafkaAdminUser,
		Password: []byte(s.passwords[KafkaAdminUser])}.Opts()
}

// StartSecureKafka starts a SecureKafka with the given users (besides
// KafkaAdminUser), each with a random password; they may do nothing until
// ACLs are created for them. Skipped with -short.
func StartSecureKafka(t testing.TB, users ...string) *SecureKafka {
	t.Helper()
	return StartSecureKafkaWith(t, SecureKafkaOptions{Users: users})
}

// StartSecureKafkaWith is StartSecureKafka with options.
func StartSecureKafkaWith(t testing.TB, opts SecureKafkaOptions) *SecureKafka {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: integration test skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k, err := StartSecureKafkaIn(ctx, t.TempDir(), opts, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	k.t = t
	t.Cleanup(k.Stop)
	return k
}

// StartSecureKafkaIn is StartSecureKafkaWith without a test (the load
// benchmark's -secured): the broker lives in dir and is tied to this
// process (killed with it), until Stop.
func StartSecureKafkaIn(ctx context.Context, dir string, opts SecureKafkaOptions, logf func(string, ...any)) (*SecureKafka, error) {
	java, err := javaBinary(ctx)
	if err != nil {
		return nil, err
	}
	lib, err := fetch(ctx, "kafka", KafkaVersion, kafkaArtifacts)
	if err != nil {
		return nil, err
	}
	cert, err := writeCertFiles(dir, "kafka-broker")
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(cert.KeyFile)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw})
	keystore := filepath.Join(dir, "keystore.pem")
	if err := os.WriteFile(keystore, append(keyPEM, certPEM...), 0o600); err != nil {
		return nil, err
	}
	sec := &kafkaSecurity{keystore: keystore, truststore: cert.CertFile, passwords: map[string]string{KafkaAdminUser: randHex(16)},
		clientAuth: "none", ca: cert.CertFile}
	var client CertFiles
	if opts.RequireClientCert {
		// The broker trusts itself (inter-broker) and the client's certificate.
		if client, err = writeCertFiles(dir, "kafka-client"); err != nil {
			return nil, err
		}
		clientPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: client.Leaf.Raw})
		sec.truststore = filepath.Join(dir, "truststore.pem")
		if err := os.WriteFile(sec.truststore, append(certPEM, clientPEM...), 0o644); err != nil {
			return nil, err
		}
		sec.clientAuth, sec.cert, sec.key = "required", client.CertFile, client.KeyFile
	}
	for _, u := range opts.Users {
		sec.passwords[u] = randHex(16)
	}
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	p, err := startKafka(ctx, java, lib, filepath.Join(dir, "kafka"), ports[0], ports[1], 512, true, 3*time.Minute, logf, sec)
	if err != nil {
		return nil, fmt.Errorf("testenv: secured kafka: %w", err)
	}
	return &SecureKafka{Seeds: []string{fmt.Sprintf("127.0.0.1:%d", ports[0])}, CAFile: cert.CertFile, ClientCert: client,
		passwords: sec.passwords, p: p}, nil
}

// Stop stops the broker (SIGTERM, then SIGKILL after 10 s).
func (k *SecureKafka) Stop() { k.p.stop(10 * time.Second) }

// PID is the broker's process id.
func (k *SecureKafka) PID() int { return k.p.pid }

// fatalf fails the test the Kafka belongs to; without one (StartSecureKafkaIn) it panics.
func (k *SecureKafka) fatalf(format string, args ...any) {
	if k.t == nil {
		panic(fmt.Sprintf(format, args...))
	}
	k.t.Helper()
	k.t.Fatalf(format, args...)
}

// Password is user's password.
func (k *SecureKafka) Password(user string) string {
	p, ok := k.passwords[user]
	if !ok {
		k.fatalf("testenv: secured kafka has no user %q", user)
	}
	return p
}

// SCRAM is user's settings: SCRAM-SHA-512 over TLS, trusting the broker's
// certificate, as a deployment's PARLEY_KAFKA_* give them.
func (k *SecureKafka) SCRAM(user string) deploy.Kafka {
	return deploy.Kafka{CAFile: k.CAFile, CertFile: k.ClientCert.CertFile, KeyFile: k.ClientCert.KeyFile,
		Mechanism: deploy.SASLScramSHA512, Username: user, Password: []byte(k.Password(user))}
}

// Plain is user's settings with SASL PLAIN over TLS.
func (k *SecureKafka) Plain(user string) deploy.Kafka {
	s := k.SCRAM(user)
	s.Mechanism = deploy.SASLPlain
	return s
}

// Opts are the franz-go options of s, for a client of this Kafka.
func (k *SecureKafka) Opts(s deploy.Kafka) []kgo.Opt {
	opts, err := s.Opts()
	if err != nil {
		k.fatalf("testenv: secured kafka: %v", err)
	}
	return append([]kgo.Opt{kgo.SeedBrokers(k.Seeds...)}, opts...)
}

// Client is a client of user (SCRAM-SHA-512 over TLS), closed at the
// test's cleanup (a Kafka of StartSecureKafkaWith only).
func (k *SecureKafka) Client(user string, opts ...kgo.Opt) *kgo.Client {
	k.t.Helper()
	cl, err := kgo.NewClient(append(k.Opts(k.SCRAM(user)), opts...)...)
	if err != nil {
		k.t.Fatalf("testenv: secured kafka client: %v", err)
	}
	k.t.Cleanup(cl.Close)
	return cl
}
