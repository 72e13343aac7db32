package query

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/token"
)

// Page sizes. A limit above the cap is refused (INVALID_ARGUMENT) rather than
// clamped, so a client never mistakes a short page for the end.
const (
	// HardMaxPageSize is the largest page any endpoint serves; MaxPageSize
	// may lower it, never raise it.
	HardMaxPageSize = 200
	// DefaultInboxPageSize is the inbox page size when limit is omitted.
	DefaultInboxPageSize = 50
)

// Config configures a Server. Zero values take the defaults of Defaults.
type Config struct {
	// Addr is the listen address of Run (default 127.0.0.1:8081).
	Addr string
	// TLS serves HTTPS from these certificate files, read again when they
	// change; empty: plain HTTP.
	TLS deploy.ServerTLS
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (deploy.TrustedProxies); from any
	// other peer those headers are dropped.
	TrustedProxies deploy.TrustedProxies
	// Cassandra is how to reach Cassandra (contact points, authentication,
	// TLS). Its timeout defaults to 5 s and its consistency to LOCAL_QUORUM,
	// so reads see every write the projector made at LOCAL_QUORUM.
	Cassandra deploy.Cassandra
	// Hosts is shorthand for Cassandra.Hosts, used when that is empty
	// (default 127.0.0.1:9042).
	Hosts []string
	// Keyspace holds the views (default "parley").
	Keyspace string
	// Auth says how bearer JWTs are verified (sub = user id).
	Auth token.Config
	// Logger defaults to discarding everything.
	Logger *slog.Logger
	// Registerer receives the request metrics; /metrics serves it when it is
	// also a prometheus.Gatherer (as *prometheus.Registry is), else the
	// default gatherer. Default: a fresh registry.
	Registerer prometheus.Registerer
	// MaxPageSize caps limit on every paginated endpoint and is the history
	// page size when limit is omitted (default and at most 200). The inbox
	// page size when limit is omitted is min(50, MaxPageSize).
	MaxPageSize int
	// ServingRefresh is how often the serving pointer of Keyspace is read
	// again (default 5s; negative: only at start). See serving.go.
	ServingRefresh time.Duration
	// CORSOrigins are the origins (scheme://host[:port]) whose pages may
	// call the API from a browser, as the gateway's web client does when
	// query has an origin of its own; "*" allows any. Empty: none, and no
	// CORS header is sent (cors.go).
	CORSOrigins []string
	// RatePerSecond and Burst bound each user's requests on this process,
	// all devices together: a token bucket (ratelimit.go); over it, 429
	// RATE_LIMITED with Retry-After. Defaults 50/s and 200; a negative
	// RatePerSecond turns the limit off.
	RatePerSecond float64
	Burst         int
}

// The default per-user request limit (Config.RatePerSecond, Burst).
const (
	DefaultRatePerSecond = 50
	DefaultBurst         = 200
)

// Defaults fills in every unset field.
func (c *Config) Defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8081"
	}
	if len(c.Hosts) == 0 && len(c.Cassandra.Hosts) == 0 {
		c.Hosts = []string{"127.0.0.1:9042"}
	}
	if c.Keyspace == "" {
		c.Keyspace = "parley"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Cassandra = c.Cassandra.Or(c.Hosts, 5*time.Second, "LOCAL_QUORUM", c.Logger)
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = HardMaxPageSize
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = DefaultRatePerSecond
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.ServingRefresh == 0 {
		c.ServingRefresh = 5 * time.Second
	}
}

// Validate reports every invalid setting at once. Call it after Defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("query: Addr is empty"))
	}
	if len(c.Cassandra.Hosts) == 0 {
		errs = append(errs, errors.New("query: no Cassandra hosts"))
	}
	for _, h := range c.Cassandra.Hosts {
		if h == "" {
			errs = append(errs, errors.New("query: Cassandra hosts have an empty entry"))
		}
	}
	if err := schemas.CheckKeyspace(c.Keyspace); err != nil {
		errs = append(errs, fmt.Errorf("query: Keyspace: %w", err))
	}
	if c.MaxPageSize < 1 || c.MaxPageSize > HardMaxPageSize {
		errs = append(errs, fmt.Errorf("query: MaxPageSize %d is outside 1..%d", c.MaxPageSize, HardMaxPageSize))
	}
	if c.Burst < 1 {
		errs = append(errs, fmt.Errorf("query: Burst %d: want at least 1", c.Burst))
	}
	if err := checkOrigins(c.CORSOrigins); err != nil {
		errs = append(errs, err)
	}
	if c.Auth.Sources() != 1 {
		errs = append(errs, errors.New("query: set exactly one of Auth.HMACSecret, Auth.PublicKeyPEM, Auth.JWKSURL and Auth.OIDCIssuer"))
	}
	return errors.Join(errs...)
}

func (c *Config) inboxDefaultLimit() int { return min(DefaultInboxPageSize, c.MaxPageSize) }
