// Command ingest runs the decider: the only writer of parley.events.
//
// Configuration is by environment; every setting, its default and what it
// bounds is in the settings table of ingest/README.md. A malformed value
// stops the start with every bad setting named.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("ingest stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg, addr, err := config(deploy.NewEnv())
	if err != nil {
		return err
	}
	reg := deploy.Registry()
	cfg.Logger, cfg.Registerer = log, reg
	d, err := ingest.NewDecider(cfg)
	if err != nil {
		return err
	}
	ops, err := deploy.ListenOps(addr, log, reg, d.Health(), nil)
	if err != nil {
		return err
	}
	defer ops.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("ingest decider running", "ops", ops.Addr(), "group", cfg.Group, "instance", cfg.Membership.InstanceID,
		"transactional_id", cfg.TransactionalID)
	return d.Run(ctx)
}

// config reads the decider's settings. Deployments sharing a Kafka cluster
// (PARLEY_TOPIC_PREFIX) never share a group or a transactional id (they
// would fence each other).
func config(e *deploy.Env) (ingest.DeciderConfig, string, error) {
	seeds := e.List("PARLEY_KAFKA_SEEDS", "127.0.0.1:9092")
	prefix := e.String("PARLEY_TOPIC_PREFIX", "")
	topics := schemas.Prefixed(prefix)
	instance := deploy.InstanceName(prefix, "ingest", deploy.Hostname())
	m := e.Membership(instance)
	if !e.Bool("PARLEY_INGEST_STATIC_MEMBERSHIP", true) {
		m.InstanceID = "" // dynamic: a restart waits for the session timeout
	}
	// The transactional id follows the instance: one name that is unique
	// per process and stable across its restarts does for both.
	txnDefault := m.InstanceID
	if txnDefault == "" {
		txnDefault = instance
	}
	d := ingest.DefaultLimits
	cfg := ingest.DeciderConfig{
		Seeds:              seeds,
		KafkaOptions:       e.KafkaOpts(nil),
		CommandsTopic:      topics.Commands.Name,
		EventsTopic:        topics.Events.Name,
		StateTopic:         topics.IngestState.Name,
		DeadLetterTopic:    topics.DeadLetters.Name,
		BansTopic:          topics.Bans.Name,
		WebhooksTopic:      topics.Webhooks.Name,
		Group:              e.String("PARLEY_INGEST_GROUP", deploy.GroupName(prefix, "ingest")),
		TransactionalID:    e.String("PARLEY_INGEST_TRANSACTIONAL_ID", txnDefault),
		Membership:         m,
		TransactionTimeout: e.Duration("PARLEY_INGEST_TRANSACTION_TIMEOUT", ingest.DefaultTransactionTimeout),
		MaxPollRecords:     e.Int("PARLEY_INGEST_MAX_POLL_RECORDS", ingest.DefaultMaxPollRecords),
		MaxHealthyLag:      int64(e.Int("PARLEY_INGEST_MAX_HEALTHY_LAG", ingest.DefaultMaxHealthyLag)),
		KafkaLogLevel:      e.String("PARLEY_KAFKA_LOG_LEVEL", "warn"),
		Limits: ingest.Limits{
			MaxGroupMembers:        e.Int("PARLEY_INGEST_MAX_GROUP_MEMBERS", d.MaxGroupMembers),
			MaxMessageBytes:        e.Int("PARLEY_INGEST_MAX_MESSAGE_BYTES", d.MaxMessageBytes),
			MaxCustomBytes:         e.Int("PARLEY_INGEST_MAX_CUSTOM_BYTES", d.MaxCustomBytes),
			MaxTitleBytes:          e.Int("PARLEY_INGEST_MAX_TITLE_BYTES", d.MaxTitleBytes),
			MaxClientMsgIDBytes:    e.Int("PARLEY_INGEST_MAX_CLIENT_MSG_ID_BYTES", d.MaxClientMsgIDBytes),
			DedupWindow:            e.Duration("PARLEY_INGEST_DEDUP_WINDOW", d.DedupWindow),
			DedupPerSender:         e.Int("PARLEY_INGEST_DEDUP_PER_SENDER", d.DedupPerSender),
			EditWindow:             e.Duration("PARLEY_INGEST_EDIT_WINDOW", d.EditWindow),
			RecallWindow:           e.Duration("PARLEY_INGEST_RECALL_WINDOW", d.RecallWindow),
			MaxEditsPerMessage:     e.Int("PARLEY_INGEST_MAX_EDITS_PER_MESSAGE", d.MaxEditsPerMessage),
			MaxReactionsPerMessage: e.Int("PARLEY_INGEST_MAX_REACTIONS_PER_MESSAGE", d.MaxReactionsPerMessage),
			MaxPins:                e.Int("PARLEY_INGEST_MAX_PINS", d.MaxPins),
			MaxBlocksPerUser:       e.Int("PARLEY_INGEST_MAX_BLOCKS_PER_USER", d.MaxBlocksPerUser),
			MaxInvites:             e.Int("PARLEY_INGEST_MAX_INVITES", d.MaxInvites),
			MaxInviteUses:          e.Int("PARLEY_INGEST_MAX_INVITE_USES", d.MaxInviteUses),
			MaxJoinRequests:        e.Int("PARLEY_INGEST_MAX_JOIN_REQUESTS", d.MaxJoinRequests),
			MaxPendingAttachments:  e.Int("PARLEY_INGEST_MAX_PENDING_ATTACHMENTS", d.MaxPendingAttachments),
			AttachmentTTL:          e.Duration("PARLEY_INGEST_ATTACHMENT_TTL", d.AttachmentTTL),
			MaxPushTargets:         e.Int("PARLEY_INGEST_MAX_PUSH_TARGETS", d.MaxPushTargets),
		},
	}
	addr := e.String("PARLEY_HTTP_ADDR", "127.0.0.1:9101")
	if err := e.Err(); err != nil {
		return cfg, "", err
	}
	return cfg, addr, cfg.Defaults().Validate()
}
