// Command notifier pushes new messages to the devices of recipients that
// are not connected (projector/notify).
//
// Configuration is by environment (see projector/notify/README.md, "Settings"):
//
//	PARLEY_KAFKA_SEEDS                  comma-separated Kafka bootstrap addresses (default 127.0.0.1:9092)
//	PARLEY_CASSANDRA_HOSTS, _*          the views, read only (schemas/deploy)
//	PARLEY_KEYSPACE                     keyspace of the views (default parley)
//	PARLEY_TOPIC_PREFIX                 prefix of every topic name (default none)
//	PARLEY_NOTIFIER_GROUP               the planner's consumer group (default <prefix>parley-notifier)
//	PARLEY_NOTIFIER_PROJECTOR           the projector's group it waits for (default <prefix>parley-projector)
//	PARLEY_NOTIFIER_FROM_START          a new planner group reads the log from the start, not the end (default false)
//	PARLEY_NOTIFIER_PREVIEW             full, sender or none (default full)
//	PARLEY_NOTIFIER_RATE                pushes per second per provider (default 1000)
//	PARLEY_NOTIFIER_MAX_RETRIES         tries after a temporary failure (default 8)
//	PARLEY_NOTIFIER_RETRY_INITIAL, _MAX backoff (default 250ms, 30s)
//	PARLEY_NOTIFIER_CA_FILE             extra PEM CAs trusted for provider endpoints (default: the system's)
//	PARLEY_FCM_CREDENTIALS_FILE         FCM: service-account JSON key; FCM is off without it
//	PARLEY_FCM_ENDPOINT, _TOKEN_URL     FCM: API base URL and token URL (default Google's)
//	PARLEY_APNS_KEY_FILE                APNs: .p8 key; APNs is off without it
//	PARLEY_APNS_KEY_ID, _TEAM_ID        APNs: the key's id and the team id
//	PARLEY_APNS_PRODUCTION, _SANDBOX    APNs: gateway URLs (default Apple's)
//	PARLEY_WEBPUSH_VAPID_PUBLIC_KEY     Web Push: VAPID key pair, base64url; Web Push is off without them
//	PARLEY_WEBPUSH_VAPID_PRIVATE_KEY_FILE (or PARLEY_WEBPUSH_VAPID_PRIVATE_KEY)
//	PARLEY_WEBPUSH_SUBSCRIBER           Web Push: mailto: or https contact
//	PARLEY_WEBHOOK_SECRET_FILE          webhook: HMAC key file (or PARLEY_WEBHOOK_SECRET); webhook is off without it
//	PARLEY_WEBHOOK_ALLOW_PRIVATE        webhook: endpoints on private addresses (default false)
//	PARLEY_HTTP_ADDR                    /metrics and /healthz (default 127.0.0.1:9104)
//
// "notifier vapid-keys" prints a new Web Push VAPID key pair as the two
// PARLEY_WEBPUSH_VAPID_* lines and exits.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/parley-im/parley/projector/notify"
	"github.com/parley-im/parley/projector/push"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
)

func main() {
	if len(os.Args) > 1 {
		if err := command(os.Stdout, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "notifier:", err)
			os.Exit(2)
		}
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("notifier stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	env := deploy.NewEnv()
	prefix := env.String("PARLEY_TOPIC_PREFIX", "")
	topics := schemas.Prefixed(prefix)
	cass := env.Cassandra()
	cass.Logger = log
	preview, err := notify.ParsePreview(env.String("PARLEY_NOTIFIER_PREVIEW", "full"))
	if err != nil {
		return err
	}
	cfg := notify.Config{
		Seeds:        env.List("PARLEY_KAFKA_SEEDS", "127.0.0.1:9092"),
		KafkaOptions: env.KafkaOpts(log),
		EventsTopic:  topics.Events.Name, SignalsTopic: topics.Signals.Name, PushTopic: topics.Push.Name,
		CommandsTopic: topics.Commands.Name, DeadLetterTopic: topics.DeadLetters.Name,
		Group:        env.String("PARLEY_NOTIFIER_GROUP", deploy.GroupName(prefix, "notifier")),
		Projector:    env.String("PARLEY_NOTIFIER_PROJECTOR", deploy.GroupName(prefix, "projector")),
		Cassandra:    cass,
		Keyspace:     env.String("PARLEY_KEYSPACE", "parley"),
		FromStart:    env.Bool("PARLEY_NOTIFIER_FROM_START", false),
		Preview:      preview,
		Rate:         env.Int("PARLEY_NOTIFIER_RATE", 1000),
		MaxRetries:   env.Int("PARLEY_NOTIFIER_MAX_RETRIES", 8),
		RetryInitial: env.Duration("PARLEY_NOTIFIER_RETRY_INITIAL", 0),
		RetryMax:     env.Duration("PARLEY_NOTIFIER_RETRY_MAX", 0),
		Logger:       log,
	}
	addr := env.String("PARLEY_HTTP_ADDR", "127.0.0.1:9104")
	senders, err := providers(env)
	if err != nil {
		return err
	}
	if err := env.Err(); err != nil {
		return err
	}
	cfg.Senders = senders
	reg := deploy.Registry()
	cfg.Registerer = reg
	n, err := notify.New(cfg)
	if err != nil {
		return err
	}
	ops, err := deploy.ListenOps(addr, log, reg, n.Checks(), nil)
	if err != nil {
		return err
	}
	defer ops.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	names := make([]string, len(senders))
	for i, s := range senders {
		names[i] = schemas.ProviderName(s.Provider())
	}
	log.Info("notifier starting", "ops", ops.Addr(), "group", cfg.Group, "providers", strings.Join(names, ","), "preview", preview.String())
	return n.Run(ctx)
}

// command runs the subcommand args name.
func command(w io.Writer, args []string) error {
	if args[0] != "vapid-keys" || len(args) != 1 {
		return fmt.Errorf("unknown arguments %q (the only command is vapid-keys; without arguments it runs)", args)
	}
	pub, priv, err := push.GenerateVAPIDKeys()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "PARLEY_WEBPUSH_VAPID_PUBLIC_KEY=%s\nPARLEY_WEBPUSH_VAPID_PRIVATE_KEY=%s\n", pub, priv)
	return err
}

// providers builds a sender for each provider whose settings are given.
func providers(env *deploy.Env) ([]push.Sender, error) {
	var roots *x509.CertPool
	if f := env.String("PARLEY_NOTIFIER_CA_FILE", ""); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("PARLEY_NOTIFIER_CA_FILE: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("PARLEY_NOTIFIER_CA_FILE %s holds no PEM certificate", f)
		}
	}
	var out []push.Sender
	var errs []error
	add := func(s push.Sender, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		out = append(out, s)
	}
	if f := env.String("PARLEY_FCM_CREDENTIALS_FILE", ""); f != "" {
		add(push.NewFCM(push.FCMConfig{CredentialsFile: f, Endpoint: env.String("PARLEY_FCM_ENDPOINT", ""),
			TokenURL: env.String("PARLEY_FCM_TOKEN_URL", ""), RootCAs: roots}))
	}
	if f := env.String("PARLEY_APNS_KEY_FILE", ""); f != "" {
		add(push.NewAPNs(push.APNsConfig{KeyFile: f, KeyID: env.String("PARLEY_APNS_KEY_ID", ""), TeamID: env.String("PARLEY_APNS_TEAM_ID", ""),
			Production: env.String("PARLEY_APNS_PRODUCTION", ""), Sandbox: env.String("PARLEY_APNS_SANDBOX", ""), RootCAs: roots}))
	}
	if pub := env.String("PARLEY_WEBPUSH_VAPID_PUBLIC_KEY", ""); pub != "" {
		priv, err := secret(env, "PARLEY_WEBPUSH_VAPID_PRIVATE_KEY")
		if err != nil {
			errs = append(errs, err)
		} else {
			add(push.NewWebPush(push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: strings.TrimSpace(string(priv)),
				Subscriber: env.String("PARLEY_WEBPUSH_SUBSCRIBER", ""), RootCAs: roots}))
		}
	}
	if s, err := secret(env, "PARLEY_WEBHOOK_SECRET"); err != nil {
		errs = append(errs, err)
	} else if len(s) > 0 {
		add(push.NewWebhook(push.WebhookConfig{Secret: s, AllowPrivate: env.Bool("PARLEY_WEBHOOK_ALLOW_PRIVATE", false), RootCAs: roots}))
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no push provider is configured: set PARLEY_FCM_CREDENTIALS_FILE, PARLEY_APNS_KEY_FILE, "+
			"PARLEY_WEBPUSH_VAPID_PUBLIC_KEY or PARLEY_WEBHOOK_SECRET(_FILE)"))
	}
	return out, errors.Join(errs...)
}

// secret reads name_FILE (trailing newline dropped) or else name.
func secret(env *deploy.Env, name string) ([]byte, error) {
	if f := env.String(name+"_FILE", ""); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s_FILE: %w", name, err)
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	return []byte(env.String(name, "")), nil
}
