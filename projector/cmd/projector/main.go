// Command projector builds the Cassandra views from parley.events.
//
// Configuration is by environment (see projector/README.md, "Configuration"):
//
//	PARLEY_KAFKA_SEEDS               comma-separated Kafka bootstrap addresses (default 127.0.0.1:9092)
//	PARLEY_CASSANDRA_HOSTS           comma-separated Cassandra contact points, host or host:port (default 127.0.0.1:9042)
//	PARLEY_CASSANDRA_*               timeout, consistency, username/password, TLS (schemas/deploy)
//	PARLEY_KEYSPACE                  keyspace of the views, migrated beforehand (default parley)
//	PARLEY_PROJECTOR_GROUP           consumer group (default <prefix>parley-projector)
//	PARLEY_INSTANCE_ID               static group member id (default <group>-<hostname>)
//	PARLEY_GROUP_SESSION_TIMEOUT     (default 6s) and PARLEY_GROUP_HEARTBEAT_INTERVAL
//	PARLEY_PROJECTOR_MAX_BATCH       records of a partition applied together (default 1000)
//	PARLEY_PROJECTOR_BATCH_INTERVAL  least time between two batches of a partition (default 250ms)
//	PARLEY_PROJECTOR_PER_PARTITION_BATCHES  true: one UNLOGGED BATCH per Cassandra partition (default false; large clusters)
//	PARLEY_PROJECTOR_MAX_LAG         records behind the log end /healthz accepts (default 10000)
//	PARLEY_TOPIC_PREFIX              prefix of every topic name (default none)
//	PARLEY_HTTP_ADDR                 /metrics and /healthz (default 127.0.0.1:9102)
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/projector/repair"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("projector stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	env := deploy.NewEnv()
	prefix := env.String("PARLEY_TOPIC_PREFIX", "")
	topics := schemas.Prefixed(prefix)
	cass := env.Cassandra()
	cass.Logger = log
	cfg := projector.Config{
		Seeds:           env.List("PARLEY_KAFKA_SEEDS", "127.0.0.1:9092"),
		KafkaOptions:    env.KafkaOpts(log),
		EventsTopic:     topics.Events.Name,
		DeadLetterTopic: topics.DeadLetters.Name,
		// Deployments sharing a Kafka cluster (the prefix) never share a group.
		Group:               env.String("PARLEY_PROJECTOR_GROUP", deploy.GroupName(prefix, "projector")),
		Membership:          env.Membership(deploy.InstanceName(prefix, "projector", deploy.Hostname())),
		Cassandra:           cass,
		Hosts:               cass.Hosts,
		Keyspace:            env.String("PARLEY_KEYSPACE", "parley"),
		MaxBatch:            env.Int("PARLEY_PROJECTOR_MAX_BATCH", 1000),
		MaxLag:              int64(env.Int("PARLEY_PROJECTOR_MAX_LAG", 10000)),
		BatchInterval:       env.Duration("PARLEY_PROJECTOR_BATCH_INTERVAL", projector.DefaultBatchInterval),
		PerPartitionBatches: env.Bool("PARLEY_PROJECTOR_PER_PARTITION_BATCHES", false),
		Logger:              log,
	}
	addr := env.String("PARLEY_HTTP_ADDR", "127.0.0.1:9102")
	if err := env.Err(); err != nil {
		return err
	}
	reg := deploy.Registry()
	cfg.Registerer = reg
	p, err := projector.New(cfg)
	if err != nil {
		return err
	}
	ops, err := deploy.ListenOps(addr, log, reg, p.Checks(), nil)
	if err != nil {
		return err
	}
	defer ops.Close()
	// The repairer re-applies conversations whose views lost rows, on
	// request (projector/repair); it runs beside the projector, in its own group.
	r, err := repair.New(repair.Config{Seeds: cfg.Seeds, RepairsTopic: topics.Repairs.Name, EventsTopic: topics.Events.Name,
		Group: deploy.GroupName(prefix, "repair"), Cassandra: cass, Keyspace: cfg.Keyspace, KafkaOptions: cfg.KafkaOptions, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("projector starting", "ops", ops.Addr(), "group", cfg.Group, "instance", cfg.Membership.InstanceID)
	repaired := make(chan error, 1)
	go func() { repaired <- r.Run(ctx) }()
	err = p.Run(ctx)
	stop()
	return errors.Join(err, <-repaired)
}
