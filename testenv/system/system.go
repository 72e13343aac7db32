// Package system runs a whole Parley — gateways, the ingest decider, the
// projector and query — in one process, against a Kafka and a Cassandra
// given by address. `go tool task dev` and the end-to-end tests use it.
// Each component can be stopped and started again on its own, which is how
// the tests simulate a component going away.
package system

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/projector/notify"
	"github.com/parley-im/parley/projector/repair"
	"github.com/parley-im/parley/query"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/provision"
	"github.com/parley-im/parley/schemas/token"
	"github.com/parley-im/parley/testenv"
)

// Options says where the infrastructure is and how to name things.
type Options struct {
	Seeds    []string // Kafka
	Hosts    []string // Cassandra
	Keyspace string   // created and migrated if missing (default "parley")
	// KeyspaceReplication is the replication factor the keyspace is created
	// with (default 1; 3 on a cluster env, testenv.StartCluster).
	KeyspaceReplication int
	// Cassandra, by component ("projector", "query", "gateway",
	// "notifier", "webhooks", and "provision" for Start's provisioning),
	// is how that component reaches Cassandra: its role and TLS (Hosts
	// filled in from Hosts when empty). A component without an entry
	// connects to Hosts with neither.
	Cassandra map[string]deploy.Cassandra
	// TopicPrefix prefixes every topic name (tests use a unique one).
	TopicPrefix string
	// Gateways is how many gateway instances to run (default 1).
	Gateways int
	// Ports: 0 listens on a port the kernel picks, handed over to the
	// server as the open listener (never picked, closed and bound again).
	// With GatewayPort set, gateway i listens on GatewayPort+i.
	GatewayPort, QueryPort int
	// Secret is the HMAC secret for tokens; nil generates one.
	Secret []byte
	// DevTokens serves /v1/dev/token on the gateways.
	DevTokens bool
	// GatewayLimits overrides the gateways' limits (zero fields keep defaults).
	GatewayLimits gateway.Limits
	// IngestLimits overrides the decider's limits (zero fields keep
	// defaults), e.g. short edit and recall windows.
	IngestLimits ingest.Limits
	// GatewayFanout overrides the gateways' fan-out and resume settings.
	GatewayFanout gateway.Fanout
	// GatewaySignals overrides the gateways' typing and presence settings.
	GatewaySignals gateway.Signals
	// GatewayAttachments configures the gateways' attachment endpoints
	// (off without a Store). Every gateway shares the Store and the URL
	// key (one is generated when none is set).
	GatewayAttachments gateway.Attachments
	// Notifier, when set, runs the push notifier as component "notifier"
	// with these settings; the system fills in where Kafka, Cassandra and
	// the topics are, and the groups.
	Notifier *notify.Config
	// WebPushVAPIDPublicKey is given to the gateways' web client (its
	// config.json), as PARLEY_WEBPUSH_VAPID_PUBLIC_KEY gives it: the key
	// of the notifier's Web Push sender.
	WebPushVAPIDPublicKey string
	// Webhooks, when set, runs the webhook dispatcher as component
	// "webhooks" with these settings (SigningKey required; the gateways'
	// admin API gets the same key); the system fills in where Kafka,
	// Cassandra and the topics are, and the groups.
	Webhooks *notify.DispatcherConfig
	// QueryRatePerSecond and QueryBurst are query's per-user request
	// limit; 0: none (tests poll query as fast as they like).
	QueryRatePerSecond float64
	QueryBurst         int
	// TLS: the gateways and query serve HTTPS (and WSS) with this
	// certificate; ClientTLS trusts it.
	TLS *testenv.CertFiles
	// GatewayAdminKeys are the gateways' admin API keys (none: every admin
	// call is refused).
	GatewayAdminKeys gateway.AdminKeys
	// Registerer, when set, receives every component's metrics (each
	// gateway's with a gateway="<n>" label). A component started again
	// with StartComponent registers again and fails: leave it nil then.
	Registerer prometheus.Registerer
	// External names components the caller runs itself, e.g. as separate
	// processes it can kill ("ingest", "projector"); Start skips them.
	// Their group and transactional id must then be GroupOf and TxnIDOf.
	External []string
	Logger   *slog.Logger
	// Kafka, when set, secures the Kafka clients of each component: the
	// settings of "provision", "ingest", "projector" (with its repairer),
	// "gateway", "notifier" and "webhooks", as each main's PARLEY_KAFKA_*
	// give them (deploy.Env.Kafka). Nil: plaintext.
	Kafka func(component string) deploy.Kafka
}

// System is a running Parley.
type System struct {
	opts        Options
	Topics      schemas.TopicSet
	GatewayURLs []string // http://127.0.0.1:port (https with Options.TLS); WebSocket at ws://…/v1/ws (wss)
	QueryURL    string
	// ClientTLS trusts Options.TLS (nil without it).
	ClientTLS  *tls.Config
	Issuer     *token.DevIssuer
	AuthConfig token.Config

	mu      sync.Mutex
	client  *http.Client // HTTPClient's, with ClientTLS
	running map[string]*component
	// bound holds the listeners opened by Start until their component first
	// runs. A component started again binds its address anew, as a
	// restarted server does.
	bound map[string]net.Listener
}

type component struct {
	cancel context.CancelFunc
	done   chan error
}

// Start provisions topics and keyspace, then starts every component.
func Start(ctx context.Context, opts Options) (*System, error) {
	if opts.Keyspace == "" {
		opts.Keyspace = "parley"
	}
	if opts.Gateways == 0 {
		opts.Gateways = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.GatewayAttachments.Store != nil && len(opts.GatewayAttachments.URLKey) == 0 {
		opts.GatewayAttachments.URLKey = make([]byte, 32)
		_, _ = rand.Read(opts.GatewayAttachments.URLKey)
	}
	if opts.Secret == nil {
		opts.Secret = make([]byte, 32)
		_, _ = rand.Read(opts.Secret)
	}
	s := &System{opts: opts, Topics: schemas.Prefixed(opts.TopicPrefix), running: map[string]*component{},
		bound: map[string]net.Listener{}, AuthConfig: token.Config{HMACSecret: opts.Secret}}
	var err error
	if s.Issuer, err = token.NewDevIssuer(s.AuthConfig); err != nil {
		return nil, err
	}
	if err := s.provision(ctx); err != nil {
		return nil, err
	}
	scheme := "http://"
	if opts.TLS != nil {
		scheme = "https://"
		s.ClientTLS = &tls.Config{RootCAs: opts.TLS.Pool, MinVersion: tls.VersionTLS12}
	}
	listen := func(name string, port int) (string, error) {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return "", fmt.Errorf("system: %s: %w", name, err)
		}
		s.bound[name] = ln
		return scheme + ln.Addr().String(), nil
	}
	if s.QueryURL, err = listen("query", opts.QueryPort); err != nil {
		s.Close()
		return nil, err
	}
	for i := 0; i < opts.Gateways; i++ {
		p := 0
		if opts.GatewayPort != 0 {
			p = opts.GatewayPort + i
		}
		u, err := listen(fmt.Sprintf("gateway-%d", i), p)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.GatewayURLs = append(s.GatewayURLs, u)
	}
	for _, name := range s.Components() {
		if slices.Contains(opts.External, name) {
			continue
		}
		if err := s.StartComponent(name); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.WaitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// WaitReady waits until query and every gateway answer /healthz with 200
// (after Start, or after StartComponent of one of them).
func (s *System) WaitReady(ctx context.Context) error {
	for _, u := range append([]string{s.QueryURL}, s.GatewayURLs...) {
		if err := waitHTTP(ctx, s.HTTPClient(), u+"/healthz"); err != nil {
			return err
		}
	}
	return nil
}

// Components names what StartComponent and StopComponent take.
func (s *System) Components() []string {
	names := []string{"ingest", "projector", "query"}
	if s.opts.Notifier != nil {
		names = append(names, "notifier")
	}
	if s.opts.Webhooks != nil {
		names = append(names, "webhooks")
	}
	for i := range s.GatewayURLs {
		names = append(names, fmt.Sprintf("gateway-%d", i))
	}
	return names
}

// kafkaOpts are component's Kafka security options (Options.Kafka).
func (s *System) kafkaOpts(component string, log *slog.Logger) ([]kgo.Opt, error) {
	if s.opts.Kafka == nil {
		return nil, nil
	}
	k := s.opts.Kafka(component)
	k.Logger = log
	return k.Opts()
}

func (s *System) provision(ctx context.Context) error {
	kopts, err := s.kafkaOpts("provision", s.opts.Logger)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.opts.Seeds...)}, kopts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	// The deployment's provisioning (schemas/cmd/provision), with the
	// contract's partition counts and the broker's replication.
	var r provision.Report
	if err := provision.Kafka(ctx, cl, provision.Topics{Prefix: s.opts.TopicPrefix, ReplicationFactor: -1}, &r); err != nil {
		return err
	}
	pc := s.cassandra("provision")
	pc.Timeout = cmp.Or(pc.Timeout, 30*time.Second)
	sess, err := pc.Session()
	if err != nil {
		return fmt.Errorf("system: %w", err)
	}
	defer sess.Close()
	return provision.Cassandra(ctx, sess, provision.Keyspace{Name: s.opts.Keyspace, ReplicationFactor: s.opts.KeyspaceReplication}, &r)
}

// cassandra is Options.Cassandra[component] with Hosts filled in.
func (s *System) cassandra(component string) deploy.Cassandra {
	c := s.opts.Cassandra[component]
	if len(c.Hosts) == 0 {
		c.Hosts = s.opts.Hosts
	}
	return c
}

// listener returns the listener Start opened for name, or binds addr again
// for a component that runs once more. Called with s.mu held.
func (s *System) listener(name, url string) (net.Listener, error) {
	if ln := s.bound[name]; ln != nil {
		delete(s.bound, name)
		return ln, nil
	}
	return net.Listen("tcp", hostPort(url))
}

// runner builds the Run function of one component.
func (s *System) runner(name string) (func(context.Context) error, error) {
	log := s.opts.Logger.With("component", name)
	kname := name
	if strings.HasPrefix(name, "gateway-") {
		kname = "gateway"
	}
	var kopts []kgo.Opt
	if name != "query" { // query reads Cassandra only
		var err error
		if kopts, err = s.kafkaOpts(kname, log); err != nil {
			return nil, err
		}
	}
	switch {
	case name == "ingest":
		d, err := ingest.NewDecider(ingest.DeciderConfig{Seeds: s.opts.Seeds,
			Group: s.GroupOf("ingest"), TransactionalID: s.TxnIDOf("ingest"),
			CommandsTopic: s.Topics.Commands.Name, EventsTopic: s.Topics.Events.Name,
			StateTopic: s.Topics.IngestState.Name, DeadLetterTopic: s.Topics.DeadLetters.Name, BansTopic: s.Topics.Bans.Name,
			WebhooksTopic: s.Topics.Webhooks.Name, Logger: log, KafkaOptions: kopts,
			Registerer: s.opts.Registerer, Limits: s.opts.IngestLimits})
		if err != nil {
			return nil, err
		}
		return d.Run, nil
	case name == "projector":
		p, err := projector.New(projector.Config{Seeds: s.opts.Seeds, EventsTopic: s.Topics.Events.Name,
			Group: s.GroupOf("projector"), DeadLetterTopic: s.Topics.DeadLetters.Name,
			Hosts: s.opts.Hosts, Cassandra: s.cassandra("projector"), Keyspace: s.opts.Keyspace, Logger: log, Registerer: s.opts.Registerer, KafkaOptions: kopts})
		if err != nil {
			return nil, err
		}
		// The repairer runs beside the projector, as in the projector main.
		r, err := repair.New(repair.Config{Seeds: s.opts.Seeds, RepairsTopic: s.Topics.Repairs.Name,
			EventsTopic: s.Topics.Events.Name, Group: s.GroupOf("repair"),
			Cassandra: s.cassandra("projector"), Keyspace: s.opts.Keyspace, Logger: log,
			Registerer: s.opts.Registerer, KafkaOptions: kopts})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			repaired := make(chan error, 1)
			go func() { repaired <- r.Run(ctx) }()
			err := p.Run(ctx)
			cancel()
			return errors.Join(err, <-repaired)
		}, nil
	case name == "notifier" && s.opts.Notifier != nil:
		c := s.NotifierConfig()
		c.KafkaOptions = append(c.KafkaOptions, kopts...)
		n, err := notify.New(c)
		if err != nil {
			return nil, err
		}
		return n.Run, nil
	case name == "webhooks" && s.opts.Webhooks != nil:
		c := s.WebhooksConfig()
		c.KafkaOptions = append(c.KafkaOptions, kopts...)
		d, err := notify.NewDispatcher(c)
		if err != nil {
			return nil, err
		}
		return d.Run, nil
	case name == "query":
		// The gateways' web client reads query from their origins, as
		// 127.0.0.1 or as localhost.
		var origins []string
		for _, u := range s.GatewayURLs {
			origins = append(origins, u, strings.Replace(u, "127.0.0.1", "localhost", 1))
		}
		q, err := query.New(query.Config{Addr: hostPort(s.QueryURL), Hosts: s.opts.Hosts, Cassandra: s.cassandra("query"), Keyspace: s.opts.Keyspace,
			Auth: s.AuthConfig, Logger: log, CORSOrigins: origins, TLS: s.serverTLS(log),
			RatePerSecond: cmp.Or(s.opts.QueryRatePerSecond, -1), Burst: s.opts.QueryBurst})
		if err != nil {
			return nil, err
		}
		ln, err := s.listener(name, s.QueryURL)
		if err != nil {
			q.Close()
			return nil, err
		}
		return func(ctx context.Context) error { defer q.Close(); return q.Serve(ctx, ln) }, nil
	default:
		var i int
		if _, err := fmt.Sscanf(name, "gateway-%d", &i); err != nil || i >= len(s.GatewayURLs) {
			return nil, fmt.Errorf("system: no component %q", name)
		}
		var reg prometheus.Registerer
		if s.opts.Registerer != nil {
			reg = prometheus.WrapRegistererWith(prometheus.Labels{"gateway": strconv.Itoa(i)}, s.opts.Registerer)
		}
		var gk deploy.Kafka
		if s.opts.Kafka != nil {
			gk = s.opts.Kafka("gateway")
		}
		g, err := gateway.New(gateway.Config{Addr: hostPort(s.GatewayURLs[i]), Seeds: s.opts.Seeds, Kafka: gk, Registerer: reg,
			CommandsTopic: s.Topics.Commands.Name, EventsTopic: s.Topics.Events.Name, SignalsTopic: s.Topics.Signals.Name,
			RepairsTopic: s.Topics.Repairs.Name, BansTopic: s.Topics.Bans.Name, AdminKeys: s.opts.GatewayAdminKeys, WebhookSigningKey: s.webhookKey(), Signals: s.opts.GatewaySignals, Auth: s.AuthConfig, DevTokens: s.opts.DevTokens, Limits: s.opts.GatewayLimits, Logger: log,
			CassandraHosts: s.opts.Hosts, Cassandra: s.cassandra("gateway"), Keyspace: s.opts.Keyspace, Fanout: s.opts.GatewayFanout, Attachments: s.opts.GatewayAttachments,
			Web: gateway.Web{QueryURL: s.QueryURL, VAPIDPublicKey: s.opts.WebPushVAPIDPublicKey}, TLS: s.serverTLS(log)})
		if err != nil {
			return nil, err
		}
		ln, err := s.listener(name, s.GatewayURLs[i])
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return g.Serve(ctx, ln) }, nil
	}
}

// NotifierConfig is Options.Notifier with this system's Kafka, Cassandra,
// topics and groups filled in: what component "notifier" runs, and what a
// notifier run elsewhere (a separate process) must be given.
func (s *System) NotifierConfig() notify.Config {
	c := *s.opts.Notifier
	c.Seeds, c.Cassandra.Hosts, c.Keyspace = s.opts.Seeds, s.opts.Hosts, s.opts.Keyspace
	if _, ok := s.opts.Cassandra["notifier"]; ok {
		c.Cassandra = s.cassandra("notifier")
	}
	c.EventsTopic, c.SignalsTopic, c.PushTopic = s.Topics.Events.Name, s.Topics.Signals.Name, s.Topics.Push.Name
	c.CommandsTopic, c.DeadLetterTopic = s.Topics.Commands.Name, s.Topics.DeadLetters.Name
	c.Group, c.Projector = s.GroupOf("notifier"), s.GroupOf("projector")
	if c.Logger == nil {
		c.Logger = s.opts.Logger
	}
	// The topics are this system's own, created with it: every event of
	// the log is one the notifier must see.
	c.FromStart = true
	if c.Registerer == nil {
		c.Registerer = s.opts.Registerer
	}
	return c
}

// WebhooksConfig is Options.Webhooks with this system's Kafka, Cassandra,
// topics and groups filled in: what component "webhooks" runs, and what a
// dispatcher run elsewhere (Resend, a separate process) must be given.
func (s *System) WebhooksConfig() notify.DispatcherConfig {
	c := *s.opts.Webhooks
	c.Seeds, c.Cassandra.Hosts, c.Keyspace = s.opts.Seeds, s.opts.Hosts, s.opts.Keyspace
	if _, ok := s.opts.Cassandra["webhooks"]; ok {
		c.Cassandra = s.cassandra("webhooks")
	}
	c.EventsTopic, c.WebhooksTopic, c.DeliveriesTopic = s.Topics.Events.Name, s.Topics.Webhooks.Name, s.Topics.WebhookDeliveries.Name
	c.DeadLetterTopic = s.Topics.DeadLetters.Name
	c.Group, c.Projector = s.GroupOf("webhooks"), s.GroupOf("projector")
	if c.Logger == nil {
		c.Logger = s.opts.Logger
	}
	c.FromStart = true // the system's own topics: every event is one to match
	if c.Registerer == nil {
		c.Registerer = s.opts.Registerer
	}
	return c
}

func (s *System) webhookKey() []byte {
	if s.opts.Webhooks == nil {
		return nil
	}
	return s.opts.Webhooks.SigningKey
}

// Options are the options the system was started with, defaults filled in.
func (s *System) Options() Options { return s.opts }

// GroupOf is the consumer group of a component ("ingest" or "projector").
func (s *System) GroupOf(name string) string { return s.opts.TopicPrefix + "parley-" + name }

// TxnIDOf is the transactional id of the decider.
func (s *System) TxnIDOf(name string) string { return s.opts.TopicPrefix + "parley-" + name + "-0" }

// StartComponent starts one component (again).
func (s *System) StartComponent(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[name] != nil {
		return fmt.Errorf("system: %s is running", name)
	}
	run, err := s.runner(name)
	if err != nil {
		return fmt.Errorf("system: %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &component{cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx)
		if err != nil && ctx.Err() == nil {
			s.opts.Logger.Error("component stopped", "component", name, "err", err)
		}
		c.done <- err
	}()
	s.running[name] = c
	return nil
}

// StopComponent stops one component and waits for it.
func (s *System) StopComponent(name string) error {
	s.mu.Lock()
	c := s.running[name]
	delete(s.running, name)
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("system: %s is not running", name)
	}
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("system: %s did not stop in 30s", name)
	}
}

// Close stops every component.
func (s *System) Close() {
	s.mu.Lock()
	names := make([]string, 0, len(s.running))
	for n := range s.running {
		names = append(names, n)
	}
	for n, ln := range s.bound {
		_ = ln.Close()
		delete(s.bound, n)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.StopComponent(n) }()
	}
	wg.Wait()
}

func hostPort(url string) string { return url[strings.Index(url, "://")+3:] }

// serverTLS is the certificate the gateways and query serve (none: plain).
func (s *System) serverTLS(log *slog.Logger) deploy.ServerTLS {
	if s.opts.TLS == nil {
		return deploy.ServerTLS{}
	}
	return deploy.ServerTLS{CertFile: s.opts.TLS.CertFile, KeyFile: s.opts.TLS.KeyFile, Logger: log}
}

// HTTPClient calls the gateways and query, trusting Options.TLS.
func (s *System) HTTPClient() *http.Client {
	if s.ClientTLS == nil {
		return http.DefaultClient
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: s.ClientTLS}}
	}
	return s.client
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("system: %s not ready: %w", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
