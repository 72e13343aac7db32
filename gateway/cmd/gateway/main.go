// Command gateway runs one WebSocket gateway. Configuration is by
// environment; every setting, with its default, is in gateway/README.md
// ("Running it") and the top-level README ("Settings"). A malformed value
// stops the start with every bad setting named.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/gateway/scan"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/token"
)

func main() {
	env := deploy.NewEnv()
	var level slog.Level
	if err := level.UnmarshalText([]byte(env.String("PARLEY_LOG_LEVEL", "info"))); err != nil {
		fmt.Fprintln(os.Stderr, "gateway: PARLEY_LOG_LEVEL: want debug, info, warn or error")
		os.Exit(1)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(env, log); err != nil {
		log.Error("gateway stopped", "err", err)
		os.Exit(1)
	}
}

func run(env *deploy.Env, log *slog.Logger) error {
	cfg, blobs, clamd, err := config(env)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Attachments.Store, err = blob.New(ctx, blobs); err != nil {
		return fmt.Errorf("attachment storage: %w", err)
	}
	if clamd.Enabled() {
		c := clamd.Clamd()
		cfg.Attachments.Scanner = c
		// A clamd that does not answer yet does not stop the start: the
		// uploads are refused UNAVAILABLE until it does.
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		version, err := c.Version(vctx)
		cancel()
		if err != nil {
			log.Warn("virus scanning: clamd does not answer; uploads are refused until it does", "clamd", clamd.Network+":"+clamd.Address, "err", err)
		} else {
			log.Info("virus scanning on", "clamd", clamd.Network+":"+clamd.Address, "version", version, "timeout", clamd.Timeout.String())
		}
	}
	cfg.Logger, cfg.Registerer = log, deploy.Registry()
	srv, err := gateway.New(cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// config reads the gateway's settings; /metrics and /healthz are served on
// the gateway's own listener.
func config(e *deploy.Env) (gateway.Config, blob.Config, scan.Config, error) {
	auth, err := token.FromEnv(e)
	if err != nil {
		return gateway.Config{}, blob.Config{}, scan.Config{}, err
	}
	topics := schemas.Prefixed(e.String("PARLEY_TOPIC_PREFIX", ""))
	l, f, s, a := gateway.DefaultLimits, gateway.DefaultFanout, gateway.DefaultSignals, gateway.DefaultAttachments
	cfg := gateway.Config{
		Addr:           e.String("PARLEY_GATEWAY_ADDR", "127.0.0.1:8080"),
		TLS:            e.ServerTLS("PARLEY_GATEWAY"),
		TrustedProxies: e.TrustedProxies("PARLEY_GATEWAY_TRUSTED_PROXIES"),
		Seeds:          e.List("PARLEY_KAFKA_SEEDS", "127.0.0.1:9092"),
		Kafka:          e.Kafka(),
		CommandsTopic:  topics.Commands.Name,
		EventsTopic:    topics.Events.Name,
		SignalsTopic:   topics.Signals.Name,
		RepairsTopic:   topics.Repairs.Name,
		BansTopic:      topics.Bans.Name,
		Auth:           auth,
		DevTokens:      e.Bool("PARLEY_DEV_TOKENS", false),
		Web: gateway.Web{
			Off:       !e.Bool("PARLEY_GATEWAY_WEB", true),
			QueryURL:  e.String("PARLEY_GATEWAY_WEB_QUERY_URL", ""),
			SignInURL: e.String("PARLEY_GATEWAY_WEB_SIGN_IN_URL", ""),
			// the notifier's setting: one value for both
			VAPIDPublicKey: e.String("PARLEY_WEBPUSH_VAPID_PUBLIC_KEY", ""),
		},
		Cassandra: e.Cassandra(),
		Keyspace:  e.String("PARLEY_KEYSPACE", "parley"),
		Limits: gateway.Limits{
			MaxFrameBytes:      e.Int("PARLEY_GATEWAY_MAX_FRAME_BYTES", l.MaxFrameBytes),
			MaxMessageBytes:    e.Int("PARLEY_GATEWAY_MAX_MESSAGE_BYTES", l.MaxMessageBytes),
			RatePerSecond:      e.Float("PARLEY_GATEWAY_RATE_PER_SECOND", l.RatePerSecond),
			Burst:              e.Int("PARLEY_GATEWAY_BURST", l.Burst),
			UserRatePerSecond:  e.Float("PARLEY_GATEWAY_USER_SEND_RATE", l.UserRatePerSecond),
			UserBurst:          e.Int("PARLEY_GATEWAY_USER_SEND_BURST", l.UserBurst),
			UserMaxConnections: e.Int("PARLEY_GATEWAY_USER_MAX_CONNECTIONS", l.UserMaxConnections),
			OutboundQueue:      e.Int("PARLEY_GATEWAY_OUTBOUND_QUEUE", l.OutboundQueue),
			PingInterval:       e.Duration("PARLEY_GATEWAY_PING_INTERVAL", l.PingInterval),
			IdleTimeout:        e.Duration("PARLEY_GATEWAY_IDLE_TIMEOUT", l.IdleTimeout),
			WriteTimeout:       e.Duration("PARLEY_GATEWAY_WRITE_TIMEOUT", l.WriteTimeout),
		},
		Fanout: gateway.Fanout{
			MembershipCacheSize:     e.Int("PARLEY_GATEWAY_MEMBERSHIP_CACHE", f.MembershipCacheSize),
			ReceiptFanoutMaxMembers: e.Int("PARLEY_GATEWAY_RECEIPT_FANOUT_MAX_MEMBERS", f.ReceiptFanoutMaxMembers),
			MaxResumeEvents:         e.Int("PARLEY_GATEWAY_MAX_RESUME_EVENTS", f.MaxResumeEvents),
			MaxResumeGap:            int64(e.Int("PARLEY_GATEWAY_MAX_RESUME_GAP", int(f.MaxResumeGap))),
			ResumeGapWait:           e.Duration("PARLEY_GATEWAY_RESUME_GAP_WAIT", f.ResumeGapWait),
		},
		Signals: gateway.Signals{
			PresenceTTL:      e.Duration("PARLEY_GATEWAY_PRESENCE_TTL", s.PresenceTTL),
			PresenceRefresh:  e.Duration("PARLEY_GATEWAY_PRESENCE_REFRESH", s.PresenceRefresh),
			PresenceForget:   e.Duration("PARLEY_GATEWAY_PRESENCE_FORGET", s.PresenceForget),
			TypingTTL:        e.Duration("PARLEY_GATEWAY_TYPING_TTL", s.TypingTTL),
			MaxPresenceWatch: e.Int("PARLEY_GATEWAY_MAX_PRESENCE_WATCH", s.MaxPresenceWatch),
		},
		Attachments: gateway.Attachments{
			Namespace:       e.String("PARLEY_BLOB_NAMESPACE", a.Namespace),
			StagingDir:      e.String("PARLEY_GATEWAY_UPLOAD_DIR", ""),
			MaxFileBytes:    int64(e.Int("PARLEY_GATEWAY_MAX_FILE_BYTES", int(a.MaxFileBytes))),
			QuotaBytes:      int64(e.Int("PARLEY_GATEWAY_QUOTA_BYTES", int(a.QuotaBytes))),
			AllowedTypes:    e.List("PARLEY_GATEWAY_ALLOWED_TYPES", a.AllowedTypes...),
			KeepLocation:    e.Bool("PARLEY_GATEWAY_KEEP_LOCATION", false),
			ThumbnailPixels: e.Int("PARLEY_GATEWAY_THUMBNAIL_PIXELS", a.ThumbnailPixels),
			URLTTL:          e.Duration("PARLEY_GATEWAY_URL_TTL", a.URLTTL),
			UploadTTL:       e.Duration("PARLEY_GATEWAY_ATTACHMENT_TTL", a.UploadTTL),
			ResumeTTL:       e.Duration("PARLEY_GATEWAY_RESUME_TTL", a.ResumeTTL),
			CollectGrace:    e.Duration("PARLEY_GATEWAY_BLOB_GRACE", a.CollectGrace),
			JanitorInterval: e.Duration("PARLEY_GATEWAY_JANITOR_INTERVAL", a.JanitorInterval),
			CollectInterval: e.Duration("PARLEY_GATEWAY_COLLECT_INTERVAL", a.CollectInterval),
			JanitorOff:      !e.Bool("PARLEY_GATEWAY_JANITOR", true),
		},
	}
	if k := e.Secret("PARLEY_GATEWAY_URL_KEY"); k != nil {
		key, err := hex.DecodeString(string(k))
		if err != nil || len(key) < 32 {
			return cfg, blob.Config{}, scan.Config{}, fmt.Errorf("PARLEY_GATEWAY_URL_KEY: want at least 64 hex digits (32 bytes), the same on every gateway")
		}
		cfg.Attachments.URLKey = key
	}
	if f := e.String("PARLEY_GATEWAY_ADMIN_KEYS_FILE", ""); f != "" {
		keys, err := gateway.LoadAdminKeys(f)
		if err != nil {
			return cfg, blob.Config{}, scan.Config{}, fmt.Errorf("PARLEY_GATEWAY_ADMIN_KEYS_FILE: %w", err)
		}
		cfg.AdminKeys = keys
	}
	if k := e.Secret("PARLEY_WEBHOOK_SIGNING_KEY"); k != nil {
		if len(k) < schemas.MinWebhookSigningKeyBytes {
			return cfg, blob.Config{}, scan.Config{}, fmt.Errorf("PARLEY_WEBHOOK_SIGNING_KEY(_FILE): want at least %d bytes, the webhook dispatcher's key",
				schemas.MinWebhookSigningKeyBytes)
		}
		cfg.WebhookSigningKey = k
	}
	blobs, err := blob.FromEnv(e)
	clamd, cerr := scan.FromEnv(e)
	return cfg, blobs, clamd, errors.Join(e.Err(), err, cerr)
}
