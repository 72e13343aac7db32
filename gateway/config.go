package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/gateway/web"
	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/token"
)

// Config configures a Server. Defaults() fills what is unset.
type Config struct {
	// Addr is where Run listens (default 127.0.0.1:8080).
	Addr string
	// TLS serves HTTPS and WSS from these certificate files, read again
	// when they change (deploy.ServerTLS); empty: plain HTTP, as behind a
	// reverse proxy that ends TLS.
	TLS deploy.ServerTLS
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (deploy.TrustedProxies); from any
	// other peer those headers are dropped.
	TrustedProxies deploy.TrustedProxies
	// Seeds are Kafka bootstrap addresses.
	Seeds []string
	// Kafka secures every Kafka client of the gateway (TLS, SASL:
	// deploy.Env.Kafka); the zero value is plaintext without SASL.
	Kafka deploy.Kafka
	// CommandsTopic, EventsTopic, SignalsTopic, RepairsTopic and BansTopic
	// default to the schemas contract.
	CommandsTopic, EventsTopic, SignalsTopic, RepairsTopic, BansTopic string
	// AdminKeys are the admin API's service credentials (README.md, "Admin
	// API"; LoadAdminKeys reads PARLEY_GATEWAY_ADMIN_KEYS_FILE). Without
	// keys every admin call is refused 401.
	AdminKeys AdminKeys
	// WebhookSigningKey derives the signing secret the admin API hands out
	// for each webhook it creates (notify.WebhookSecret); the webhook
	// dispatcher holds the same key (PARLEY_WEBHOOK_SIGNING_KEY_FILE).
	// Without it the webhook endpoints answer 503.
	WebhookSigningKey []byte
	// Auth says how device tokens are verified.
	Auth token.Config
	// DevTokens serves /v1/dev/token, which mints a token for any user and
	// device. Local development only: it needs Auth.HMACSecret.
	DevTokens bool
	// Web is the browser client the gateway serves at / (package web).
	Web    Web
	Limits Limits
	// Cassandra and Keyspace locate the projector's views, read for member
	// fan-out and Resume. Without hosts the gateway knows no membership
	// (events reach only their actor's devices) and refuses Resume with
	// ERROR_CODE_UNAVAILABLE. Cassandra carries authentication and TLS;
	// its timeout defaults to 5 s and its consistency to LOCAL_QUORUM, so
	// reads see every write the projector made at LOCAL_QUORUM.
	Cassandra deploy.Cassandra
	// CassandraHosts is shorthand for Cassandra.Hosts, used when that is
	// empty.
	CassandraHosts []string
	Keyspace       string // default "parley"
	Fanout         Fanout
	Signals        Signals
	// Attachments configures uploads and downloads; without a Store (or
	// without Cassandra) the attachment endpoints answer 503.
	Attachments Attachments
	// Logger defaults to one that discards.
	Logger *slog.Logger
	// Registerer receives the gateway's metrics. When nil the gateway uses a
	// private registry. /metrics serves the Registerer when it is also a
	// prometheus.Gatherer (a *prometheus.Registry is), else the private one.
	Registerer prometheus.Registerer
}

// Web configures the browser client (gateway/web/README.md).
type Web struct {
	// Off serves no client: /, /config.json and the built files answer 404.
	Off bool
	// QueryURL is query's origin as a browser reaches it; query must list
	// the gateway's origin in its CORS origins. Empty: the gateway's own
	// origin, for a reverse proxy that routes query's paths to query.
	QueryURL string
	// SignInURL is the deployer's sign-in page (an OIDC redirect) that
	// sends a person back with #access_token=…; empty: dev tokens or a
	// pasted token only.
	SignInURL string
	// VAPIDPublicKey is the notifier's Web Push application server key
	// (PARLEY_WEBPUSH_VAPID_PUBLIC_KEY, the same value the notifier is
	// given), which the client subscribes with; empty: the client offers no
	// notifications.
	VAPIDPublicKey string
}

func (c Config) webConfig() web.Config {
	return web.Config{QueryURL: c.Web.QueryURL, DevTokens: c.DevTokens, SignInURL: c.Web.SignInURL, VAPIDPublicKey: c.Web.VAPIDPublicKey}
}

// Fanout tunes live delivery and Resume; see README.md.
type Fanout struct {
	// MembershipCacheSize caps the conversations whose membership a gateway
	// keeps (least recently used evicted; default 100,000).
	MembershipCacheSize int
	// ReceiptFanoutMaxMembers: ReadUpTo and DeliveredUpTo reach every
	// member of a conversation up to this size, above it only the actor's
	// own devices (default 100).
	ReceiptFanoutMaxMembers int
	// MaxResumeEvents caps the events one Resume sends from the views;
	// beyond it Resumed says more (default 10,000).
	MaxResumeEvents int
	// MaxResumeGap: a conversation more than this many versions behind is
	// not replayed; Resumed lists it in refetch and the device fetches its
	// state instead (default 5,000).
	MaxResumeGap int64
	// ResumeGapWait bounds how long one Resume waits, in all, for the views
	// to catch up with the log (a cursor beyond the view's last seq, rows
	// missing below it); a conversation still waiting then is reported in
	// Resumed.failed and the others resume (default 5s).
	ResumeGapWait time.Duration
}

// DefaultFanout is used for every zero field of Fanout.
var DefaultFanout = Fanout{
	MembershipCacheSize:     100_000,
	ReceiptFanoutMaxMembers: 100,
	MaxResumeEvents:         10_000,
	MaxResumeGap:            5_000,
	ResumeGapWait:           5 * time.Second,
}

// Signals tunes typing and presence; see README.md "Typing and presence".
type Signals struct {
	// PresenceTTL is how long a gateway's statement of a device's presence
	// holds: a gateway that crashes leaves its devices online elsewhere
	// for at most this long (default 60s).
	PresenceTTL time.Duration
	// PresenceRefresh is how often a gateway restates all of its devices;
	// shorter than PresenceTTL (default 20s).
	PresenceRefresh time.Duration
	// PresenceForget: an offline user's last-seen time is kept this long
	// (default 1h); after a gateway restart it is known only for users seen
	// within PresenceTTL.
	PresenceForget time.Duration
	// TypingTTL is how long a typing indicator holds unless renewed
	// (default 6s); clients renew it every few seconds while typing.
	TypingTTL time.Duration
	// MaxPresenceWatch caps the users one WatchPresence names (default 500).
	MaxPresenceWatch int
}

// DefaultSignals is used for every zero field of Signals.
var DefaultSignals = Signals{
	PresenceTTL:      60 * time.Second,
	PresenceRefresh:  20 * time.Second,
	PresenceForget:   time.Hour,
	TypingTTL:        6 * time.Second,
	MaxPresenceWatch: 500,
}

// Limits are the edge limits of one session; each refusal has its ErrorCode
// or close code (see README.md).
type Limits struct {
	// MaxFrameBytes caps one incoming WebSocket message (FRAME_TOO_LARGE, close 1009).
	MaxFrameBytes int
	// MaxMessageBytes caps SendMessage.text (MESSAGE_TOO_LARGE); the same
	// limit as ingest.DefaultLimits, checked here so nothing is appended.
	MaxMessageBytes int
	// RatePerSecond and Burst are a token bucket per session, one token per
	// command frame (RATE_LIMITED). Pings are not counted.
	RatePerSecond float64
	Burst         int
	// UserRatePerSecond and UserBurst are a token bucket per user, over
	// all of its sessions on all gateways (each gateway enforces its share:
	// userlimits.go), one token per command frame (RATE_LIMITED). Negative:
	// no per-user rate limit.
	UserRatePerSecond float64
	UserBurst         int
	// UserMaxConnections caps a user's devices connected at once over all
	// gateways; one more is refused (429 TOO_MANY_CONNECTIONS). Negative:
	// no cap.
	UserMaxConnections int
	// OutboundQueue is how many frames may wait for one session's writer;
	// a session whose queue is full is closed (1008 "slow consumer"). A
	// quarter of it again is kept beyond it for the answers to appended
	// commands (also the most appends one session has in flight), and the
	// reader waits while the queue is half full.
	OutboundQueue int
	// PingInterval is how often the server sends a WebSocket ping.
	PingInterval time.Duration
	// IdleTimeout closes a session that sent neither a frame nor a pong for
	// that long.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a device.
	WriteTimeout time.Duration
}

// DefaultLimits are the limits used for every zero field.
var DefaultLimits = Limits{
	MaxFrameBytes:   64 << 10,
	MaxMessageBytes: ingest.DefaultLimits.MaxMessageBytes,
	RatePerSecond:   50,
	Burst:           100,
	OutboundQueue:   1024,
	// A user's devices together: twice one session's rate.
	UserRatePerSecond:  100,
	UserBurst:          200,
	UserMaxConnections: 32,
	PingInterval:       20 * time.Second,
	IdleTimeout:        60 * time.Second,
	WriteTimeout:       10 * time.Second,
}

// Defaults returns c with every unset field given its default.
func (c Config) Defaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.CommandsTopic == "" {
		c.CommandsTopic = schemas.Commands.Name
	}
	if c.EventsTopic == "" {
		c.EventsTopic = schemas.Events.Name
	}
	if c.SignalsTopic == "" {
		c.SignalsTopic = schemas.Signals.Name
	}
	if c.RepairsTopic == "" {
		c.RepairsTopic = schemas.Repairs.Name
	}
	if c.BansTopic == "" {
		c.BansTopic = schemas.Bans.Name
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Keyspace == "" {
		c.Keyspace = "parley"
	}
	c.Cassandra = c.Cassandra.Or(c.CassandraHosts, 5*time.Second, "LOCAL_QUORUM", c.Logger)
	if c.Kafka.Logger == nil {
		c.Kafka.Logger = c.Logger
	}
	c.Limits = c.Limits.Defaults()
	f, d := c.Fanout, DefaultFanout
	if f.MembershipCacheSize == 0 {
		f.MembershipCacheSize = d.MembershipCacheSize
	}
	if f.ReceiptFanoutMaxMembers == 0 {
		f.ReceiptFanoutMaxMembers = d.ReceiptFanoutMaxMembers
	}
	if f.MaxResumeEvents == 0 {
		f.MaxResumeEvents = d.MaxResumeEvents
	}
	if f.MaxResumeGap == 0 {
		f.MaxResumeGap = d.MaxResumeGap
	}
	if f.ResumeGapWait == 0 {
		f.ResumeGapWait = d.ResumeGapWait
	}
	c.Fanout = f
	g, dg := c.Signals, DefaultSignals
	for _, d := range []struct{ dst, def *time.Duration }{{&g.PresenceTTL, &dg.PresenceTTL},
		{&g.PresenceRefresh, &dg.PresenceRefresh}, {&g.PresenceForget, &dg.PresenceForget}, {&g.TypingTTL, &dg.TypingTTL}} {
		if *d.dst == 0 {
			*d.dst = *d.def
		}
	}
	if g.MaxPresenceWatch == 0 {
		g.MaxPresenceWatch = dg.MaxPresenceWatch
	}
	c.Signals = g
	c.Attachments = c.Attachments.Defaults()
	return c
}

// Defaults returns l with every zero field taken from DefaultLimits.
func (l Limits) Defaults() Limits {
	d := DefaultLimits
	set := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	setD := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	set(&d.MaxFrameBytes, l.MaxFrameBytes)
	set(&d.MaxMessageBytes, l.MaxMessageBytes)
	set(&d.Burst, l.Burst)
	set(&d.OutboundQueue, l.OutboundQueue)
	if l.RatePerSecond != 0 {
		d.RatePerSecond = l.RatePerSecond
	}
	if l.UserRatePerSecond != 0 {
		d.UserRatePerSecond = l.UserRatePerSecond
	}
	set(&d.UserBurst, l.UserBurst)
	set(&d.UserMaxConnections, l.UserMaxConnections)
	setD(&d.PingInterval, l.PingInterval)
	setD(&d.IdleTimeout, l.IdleTimeout)
	setD(&d.WriteTimeout, l.WriteTimeout)
	return d
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if err := c.Attachments.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Seeds) == 0 {
		errs = append(errs, errors.New("gateway: Config.Seeds is empty"))
	}
	if err := c.AdminKeys.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("gateway: %w", err))
	}
	if err := c.webConfig().Check(); err != nil && !c.Web.Off {
		errs = append(errs, fmt.Errorf("gateway: %w", err))
	}
	if c.DevTokens && len(c.Auth.HMACSecret) == 0 {
		errs = append(errs, errors.New("gateway: DevTokens needs Auth.HMACSecret"))
	}
	l := c.Limits
	if l.MaxFrameBytes < 0 || l.MaxMessageBytes < 0 || l.Burst < 0 || l.OutboundQueue < 0 || l.RatePerSecond < 0 {
		errs = append(errs, errors.New("gateway: Limits must not be negative"))
	}
	if l.UserRatePerSecond > 0 && l.UserBurst < 1 {
		errs = append(errs, errors.New("gateway: Limits.UserBurst must be at least 1 while UserRatePerSecond is on"))
	}
	if l.PingInterval < 0 || l.IdleTimeout < 0 || l.WriteTimeout < 0 {
		errs = append(errs, errors.New("gateway: Limits durations must not be negative"))
	}
	if l.MaxMessageBytes > l.MaxFrameBytes {
		errs = append(errs, errors.New("gateway: Limits.MaxMessageBytes must not exceed MaxFrameBytes"))
	}
	if l.PingInterval >= l.IdleTimeout {
		errs = append(errs, errors.New("gateway: Limits.PingInterval must be shorter than IdleTimeout"))
	}
	if f := c.Fanout; f.MembershipCacheSize < 0 || f.ReceiptFanoutMaxMembers < 0 || f.MaxResumeEvents < 0 || f.MaxResumeGap < 0 || f.ResumeGapWait < 0 {
		errs = append(errs, errors.New("gateway: Fanout must not be negative"))
	}
	if g := c.Signals; g.PresenceTTL < 0 || g.PresenceRefresh < 0 || g.PresenceForget < 0 || g.TypingTTL < 0 || g.MaxPresenceWatch < 0 {
		errs = append(errs, errors.New("gateway: Signals must not be negative"))
	} else if g.PresenceRefresh >= g.PresenceTTL && g.PresenceTTL > 0 {
		errs = append(errs, errors.New("gateway: Signals.PresenceRefresh must be shorter than PresenceTTL"))
	}
	return errors.Join(errs...)
}
