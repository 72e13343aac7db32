package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms a component may authenticate to Kafka with.
const (
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLPlain       = "PLAIN"
)

// Kafka is how a component is secured towards Kafka: TLS (a CA to verify the
// brokers, optionally a client certificate) and SASL (SCRAM-SHA-512,
// SCRAM-SHA-256, or PLAIN, which is refused without TLS since it sends the
// password as it is). The zero value is a plaintext, unauthenticated client,
// what a local broker needs. Opts turns it into franz-go options that every
// Kafka client of a component takes, after its own.
type Kafka struct {
	// TLS turns TLS on with the system's roots when CAFile is empty; a CA
	// file or a client certificate turns it on by itself.
	TLS bool
	// CAFile verifies the brokers' certificates; CertFile and KeyFile are
	// the client's own, when the brokers require one (mutual TLS).
	// ServerName overrides the name checked in the brokers' certificates
	// (default: the host of the address dialled).
	CAFile, CertFile, KeyFile, ServerName string
	// Mechanism is the SASL mechanism ("" for none; a Username alone
	// means SCRAM-SHA-512).
	Mechanism string
	// Username and Password authenticate the component: its principal is
	// User:<Username>.
	Username string
	Password []byte
	// Logger gets one error line per client, topic and kind of refusal when
	// Kafka refuses an authorisation (default slog.Default()).
	Logger *slog.Logger
}

// Kafka reads the Kafka security settings shared by every main:
// PARLEY_KAFKA_TLS, PARLEY_KAFKA_TLS_CA, _TLS_CERT, _TLS_KEY,
// _TLS_SERVER_NAME, PARLEY_KAFKA_SASL_MECHANISM, _SASL_USERNAME and
// _SASL_PASSWORD (or _SASL_PASSWORD_FILE). An inconsistent combination is an
// error of Err.
func (e *Env) Kafka() Kafka {
	k := Kafka{
		TLS:        e.Bool("PARLEY_KAFKA_TLS", false),
		CAFile:     e.String("PARLEY_KAFKA_TLS_CA", ""),
		CertFile:   e.String("PARLEY_KAFKA_TLS_CERT", ""),
		KeyFile:    e.String("PARLEY_KAFKA_TLS_KEY", ""),
		ServerName: e.String("PARLEY_KAFKA_TLS_SERVER_NAME", ""),
		Mechanism:  e.String("PARLEY_KAFKA_SASL_MECHANISM", ""),
		Username:   e.String("PARLEY_KAFKA_SASL_USERNAME", ""),
		Password:   e.Secret("PARLEY_KAFKA_SASL_PASSWORD"),
	}
	if err := k.Validate(); err != nil {
		e.errs = append(e.errs, err)
	}
	return k
}

// KafkaOpts reads the Kafka security settings (Kafka) and returns their
// franz-go options for every Kafka client of a main, refusals logged to log;
// an unreadable CA, certificate or key is an error of Err.
func (e *Env) KafkaOpts(log *slog.Logger) []kgo.Opt {
	k := e.Kafka()
	k.Logger = log
	if k.Validate() != nil {
		return nil // already an error of Err
	}
	opts, err := k.Opts()
	if err != nil {
		e.errs = append(e.errs, err)
	}
	return opts
}

// TLSOn reports whether the client dials the brokers over TLS.
func (k Kafka) TLSOn() bool { return k.TLS || k.CAFile != "" || k.CertFile != "" || k.KeyFile != "" }

// mechanism is the SASL mechanism in use, "" for none.
func (k Kafka) mechanism() string {
	m := strings.ToUpper(strings.TrimSpace(k.Mechanism))
	if m == "" && k.Username != "" {
		m = SASLScramSHA512
	}
	return m
}

// Principal is the Kafka principal the client authenticates as
// ("User:name"), or "ANONYMOUS" without SASL.
func (k Kafka) Principal() string {
	if k.mechanism() == "" {
		return "ANONYMOUS"
	}
	return "User:" + k.Username
}

// Validate reports every inconsistent setting at once. It never quotes the
// password.
func (k Kafka) Validate() error {
	var errs []error
	switch m := k.mechanism(); m {
	case "":
		if len(k.Password) > 0 {
			errs = append(errs, errors.New("kafka: PARLEY_KAFKA_SASL_PASSWORD is set without PARLEY_KAFKA_SASL_USERNAME"))
		}
	case SASLScramSHA512, SASLScramSHA256, SASLPlain:
		if k.Username == "" || len(k.Password) == 0 {
			errs = append(errs, fmt.Errorf("kafka: SASL %s needs PARLEY_KAFKA_SASL_USERNAME and PARLEY_KAFKA_SASL_PASSWORD (or _FILE)", m))
		}
		if m == SASLPlain && !k.TLSOn() {
			errs = append(errs, errors.New("kafka: PARLEY_KAFKA_SASL_MECHANISM=PLAIN sends the password as it is: "+
				"it is refused without TLS (set PARLEY_KAFKA_TLS_CA or PARLEY_KAFKA_TLS=true), or use SCRAM-SHA-512"))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka: PARLEY_KAFKA_SASL_MECHANISM=%q: want %s, %s or %s", k.Mechanism, SASLScramSHA512, SASLScramSHA256, SASLPlain))
	}
	if (k.CertFile == "") != (k.KeyFile == "") {
		errs = append(errs, errors.New("kafka: PARLEY_KAFKA_TLS_CERT and PARLEY_KAFKA_TLS_KEY go together"))
	}
	return errors.Join(errs...)
}

// Opts are the franz-go options of the security settings, for every Kafka
// client of a component, appended after the client's own: TLS, SASL, and a
// hook that turns Kafka's authorisation refusals into an error log line and
// the parley_kafka_authorization_failures_total counter (see
// KafkaAuthorizationFailures). The zero Kafka gives only the hook.
func (k Kafka) Opts() ([]kgo.Opt, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	log := k.Logger
	if log == nil {
		log = slog.Default()
	}
	opts := []kgo.Opt{kgo.WithHooks(&authzHook{principal: k.Principal(), log: log})}
	if k.TLSOn() {
		tc, err := k.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.Dialer((&tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}).DialContext))
	}
	user, pass := k.Username, string(k.Password)
	switch k.mechanism() {
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	}
	return opts, nil
}

func (k Kafka) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: k.ServerName}
	if k.CAFile != "" {
		pem, err := os.ReadFile(k.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: TLS CA %s holds no PEM certificate", k.CAFile)
		}
		tc.RootCAs = pool
	}
	if k.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(k.CertFile, k.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// KafkaAuthorizationFailures counts Kafka's authorisation refusals seen by
// this process's clients, by principal, resource ("topic:<name>",
// "group", "transactional-id", "cluster") and Kafka error name. Registry
// registers it; a refusal is a deployment error (a missing ACL) that no
// retry mends, so it is worth an alert.
var KafkaAuthorizationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "parley_kafka_authorization_failures_total",
	Help: "Kafka authorisation refusals (a missing ACL), by principal, resource and Kafka error.",
}, []string{"principal", "resource", "error"})

// IsKafkaAuthorization reports whether err is one of Kafka's authorisation
// or authentication refusals, which no retry mends.
func IsKafkaAuthorization(err error) bool {
	return kafkaAuthzResource(err, "") != ""
}

func kafkaAuthzResource(err error, topic string) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		if topic == "" {
			return "topic"
		}
		return "topic:" + topic
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		return "group"
	case errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return "transactional-id"
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return "cluster"
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return "authentication"
	}
	return ""
}

// ReportKafkaAuthorization counts err as an authorisation refusal of
// principal on topic ("" when not known), when it is one, and logs it as an
// error line naming the principal, the resource and Kafka's error: the
// first time at once, then at most once a minute per principal, resource and
// error (a refused producer fails every record; a refused group member
// retries its join). It reports whether err was a refusal. Consumers call it
// with the errors their polls return; Kafka.Opts' hook covers produced
// records and group management.
func ReportKafkaAuthorization(log *slog.Logger, principal, topic string, err error) bool {
	res := kafkaAuthzResource(err, topic)
	if res == "" {
		return false
	}
	var ke *kerr.Error
	name := "AUTHORIZATION_FAILED"
	if errors.As(err, &ke) {
		name = ke.Message
	}
	KafkaAuthorizationFailures.WithLabelValues(principal, res, name).Inc()
	k := principal + "|" + res + "|" + name
	authzLogged.Lock()
	if authzLogged.at == nil {
		authzLogged.at = map[string]time.Time{}
	}
	quiet := time.Since(authzLogged.at[k]) < time.Minute
	if !quiet {
		authzLogged.at[k] = time.Now()
	}
	authzLogged.Unlock()
	if quiet {
		return true
	}
	if log == nil {
		log = slog.Default()
	}
	log.Error("kafka refused: not authorised (a missing ACL; no retry will succeed)",
		"principal", principal, "resource", res, "kafka_error", name, "err", err)
	return true
}

var authzLogged struct {
	sync.Mutex
	at map[string]time.Time
}

// KafkaPrincipalOf is the principal of a client built with Kafka.Opts
// ("User:name", "ANONYMOUS"), or "" for another client: what a consumer
// passes to ReportKafkaAuthorization with the errors of its polls.
func KafkaPrincipalOf(cl *kgo.Client) string {
	if cl == nil {
		return ""
	}
	v := reflect.ValueOf(cl.OptValue(kgo.WithHooks))
	if v.Kind() != reflect.Slice {
		return ""
	}
	for i := range v.Len() {
		if h, ok := v.Index(i).Interface().(*authzHook); ok {
			return h.principal
		}
	}
	return ""
}

// ReportKafkaFetch is ReportKafkaAuthorization for an error a poll of cl
// returned for topic.
func ReportKafkaFetch(log *slog.Logger, cl *kgo.Client, topic string, err error) bool {
	if kafkaAuthzResource(err, topic) == "" {
		return false
	}
	return ReportKafkaAuthorization(log, KafkaPrincipalOf(cl), topic, err)
}

// authzHook reports the refusals of one client's produced records and group
// management.
type authzHook struct {
	principal string
	log       *slog.Logger
}

func (h *authzHook) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	ReportKafkaAuthorization(h.log, h.principal, r.Topic, err)
}

func (h *authzHook) OnGroupManageError(err error) {
	ReportKafkaAuthorization(h.log, h.principal, "", err)
}
