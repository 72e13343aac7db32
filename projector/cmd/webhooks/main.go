// Command webhooks posts the events bots and integrations subscribed to,
// signed, to their webhooks (projector/notify, "Webhooks").
//
//	webhooks                         run the dispatcher
//	webhooks resend -user U -webhook W (-since RFC3339 | -offsets P:O,P:O…)
//	                                 plan again, for one webhook, every event from there to the log's end
//
// Configuration is by environment (see projector/notify/README.md, "Webhooks"):
//
//	PARLEY_KAFKA_SEEDS                 comma-separated Kafka bootstrap addresses (default 127.0.0.1:9092)
//	PARLEY_CASSANDRA_HOSTS, _*         the views, read only (schemas/deploy)
//	PARLEY_KEYSPACE                    keyspace of the views (default parley)
//	PARLEY_TOPIC_PREFIX                prefix of every topic name (default none)
//	PARLEY_WEBHOOKS_GROUP              the planner's consumer group; the sender's is <group>-send (default <prefix>parley-webhooks)
//	PARLEY_WEBHOOKS_PROJECTOR          the projector's group it waits for (default <prefix>parley-projector)
//	PARLEY_WEBHOOKS_FROM_START         a new planner group reads the log from the start, not the end (default false)
//	PARLEY_WEBHOOK_SIGNING_KEY_FILE    the key webhook secrets derive from, the gateways' too (or PARLEY_WEBHOOK_SIGNING_KEY); required
//	PARLEY_WEBHOOKS_MAX_RETRIES        tries after a temporary failure before the dead-letter topic (default 8)
//	PARLEY_WEBHOOKS_RETRY_INITIAL, _MAX backoff (default 500ms, 30s)
//	PARLEY_WEBHOOKS_TIMEOUT            bound of each request (default 10s)
//	PARLEY_WEBHOOKS_ALLOW_HTTP         accept plain http URLs (default false)
//	PARLEY_WEBHOOKS_ALLOW_PRIVATE      accept URLs on loopback and private addresses (default false)
//	PARLEY_WEBHOOKS_CA_FILE            extra PEM CAs trusted for webhook URLs (default: the system's)
//	PARLEY_HTTP_ADDR                   /metrics and /healthz (default 127.0.0.1:9105)
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley/projector/notify"
	"github.com/parley-im/parley/projector/push"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var err error
	if len(os.Args) > 1 && os.Args[1] == "resend" {
		err = resend(log, os.Args[2:])
	} else {
		err = run(log)
	}
	if err != nil {
		log.Error("webhooks stopped", "err", err)
		os.Exit(1)
	}
}

func config(log *slog.Logger) (notify.DispatcherConfig, string, error) {
	env := deploy.NewEnv()
	prefix := env.String("PARLEY_TOPIC_PREFIX", "")
	topics := schemas.Prefixed(prefix)
	cass := env.Cassandra()
	cass.Logger = log
	cfg := notify.DispatcherConfig{
		Seeds:        env.List("PARLEY_KAFKA_SEEDS", "127.0.0.1:9092"),
		KafkaOptions: env.KafkaOpts(log),
		EventsTopic:  topics.Events.Name, WebhooksTopic: topics.Webhooks.Name, DeliveriesTopic: topics.WebhookDeliveries.Name,
		DeadLetterTopic: topics.DeadLetters.Name,
		Group:           env.String("PARLEY_WEBHOOKS_GROUP", deploy.GroupName(prefix, "webhooks")),
		Projector:       env.String("PARLEY_WEBHOOKS_PROJECTOR", deploy.GroupName(prefix, "projector")),
		FromStart:       env.Bool("PARLEY_WEBHOOKS_FROM_START", false),
		Cassandra:       cass,
		Keyspace:        env.String("PARLEY_KEYSPACE", "parley"),
		SigningKey:      env.Secret("PARLEY_WEBHOOK_SIGNING_KEY"),
		MaxRetries:      env.Int("PARLEY_WEBHOOKS_MAX_RETRIES", 8),
		RetryInitial:    env.Duration("PARLEY_WEBHOOKS_RETRY_INITIAL", 0),
		RetryMax:        env.Duration("PARLEY_WEBHOOKS_RETRY_MAX", 0),
		Poster: push.PosterConfig{Timeout: env.Duration("PARLEY_WEBHOOKS_TIMEOUT", 0),
			AllowHTTP: env.Bool("PARLEY_WEBHOOKS_ALLOW_HTTP", false), AllowPrivate: env.Bool("PARLEY_WEBHOOKS_ALLOW_PRIVATE", false)},
		Logger: log,
	}
	if f := env.String("PARLEY_WEBHOOKS_CA_FILE", ""); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return cfg, "", fmt.Errorf("PARLEY_WEBHOOKS_CA_FILE: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return cfg, "", errors.New("PARLEY_WEBHOOKS_CA_FILE: no PEM certificate in it")
		}
		cfg.Poster.RootCAs = roots
	}
	addr := env.String("PARLEY_HTTP_ADDR", "127.0.0.1:9105")
	return cfg, addr, env.Err()
}

func run(log *slog.Logger) error {
	cfg, addr, err := config(log)
	if err != nil {
		return err
	}
	reg := deploy.Registry()
	cfg.Registerer = reg
	d, err := notify.NewDispatcher(cfg)
	if err != nil {
		return err
	}
	ops, err := deploy.ListenOps(addr, log, reg, d.Checks(), nil)
	if err != nil {
		return err
	}
	defer ops.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("webhooks starting", "ops", ops.Addr(), "group", cfg.Group)
	return d.Run(ctx)
}

func resend(log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("resend", flag.ContinueOnError)
	user := fs.String("user", "", "the webhook's owner (required)")
	id := fs.String("webhook", "", "the webhook id (required)")
	since := fs.String("since", "", "re-send the events from this time (RFC 3339)")
	offsets := fs.String("offsets", "", "re-send from these offsets of parley.events: partition:offset,…")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" || *id == "" || (*since == "") == (*offsets == "") {
		return errors.New("resend: want -user, -webhook, and one of -since or -offsets")
	}
	var from notify.ResendFrom
	if *since != "" {
		t, err := time.Parse(time.RFC3339, *since)
		if err != nil {
			return fmt.Errorf("resend: -since: %w", err)
		}
		from.Time = t
	} else {
		var err error
		if from.Offsets, err = parseOffsets(*offsets); err != nil {
			return err
		}
	}
	cfg, _, err := config(log)
	if err != nil {
		return err
	}
	d, err := notify.NewDispatcher(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := d.Resend(ctx, *user, *id, from)
	if err != nil {
		return err
	}
	fmt.Printf("%d deliveries appended for %s's webhook %s\n", n, *user, *id)
	return nil
}

func parseOffsets(s string) (map[int32]int64, error) {
	out := map[int32]int64{}
	for _, part := range strings.Split(s, ",") {
		p, o, ok := strings.Cut(strings.TrimSpace(part), ":")
		pn, err1 := strconv.ParseInt(p, 10, 32)
		on, err2 := strconv.ParseInt(o, 10, 64)
		if !ok || err1 != nil || err2 != nil || pn < 0 || on < 0 {
			return nil, fmt.Errorf("resend: -offsets: %q is not partition:offset", part)
		}
		out[int32(pn)] = on
	}
	return out, nil
}
