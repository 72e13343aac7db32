// Command replay rebuilds the views from parley.events into a new keyspace,
// verifies the live views and the log, and switches query to another
// keyspace (see projector/README.md, "Rebuild, verify, switch").
//
//	replay rebuild -to parley_v2 [-from start|OFFSET|P:OFFSET,…|RFC3339] [-follow] [-group G]
//	replay verify [-conversations id,id] [-live KS] [-keep]
//	replay switch -to parley_v2 [-max-lag 1000] [-force]
//
// Configuration is by environment, as for the other mains:
//
//	PARLEY_KAFKA_SEEDS      comma-separated Kafka bootstrap addresses (required)
//	PARLEY_CASSANDRA_HOSTS  comma-separated Cassandra contact points, host or host:port (required)
//	PARLEY_CASSANDRA_*      timeout (default 20s here), consistency, password and TLS, as for the other mains
//	PARLEY_KEYSPACE         base keyspace: the live projector's, holding the serving pointer (default parley)
//	PARLEY_TOPIC_PREFIX     prefix of every topic name (default none)
//
// Exit status: 0 done (verify: no difference), 1 verify found differences,
// 2 failed, 3 interrupted (run the same rebuild again to resume).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley/projector/replay"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// A rebuild allocates much and briefly (decoded events, statements):
		// trading memory for less GC work leaves more CPU to Cassandra.
		debug.SetGCPercent(400)
	}
	os.Exit(run(os.Args[1:]))
}

const usage = `usage: replay rebuild|verify|switch [flags]  (replay <command> -h for its flags)`

func run(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	e := deploy.NewEnv()
	seeds := e.Required("PARLEY_KAFKA_SEEDS")
	e.Required("PARLEY_CASSANDRA_HOSTS") // no default here: read by e.Cassandra
	cass := e.Cassandra()
	if os.Getenv("PARLEY_CASSANDRA_TIMEOUT") == "" {
		cass.Timeout = 0 // replay's own default (20 s): a rebuild writes large batches
	}
	cfg := replay.Config{
		Seeds:        deploy.SplitList(seeds),
		KafkaOptions: e.KafkaOpts(log),
		Cassandra:    cass,
		Keyspace:     e.String("PARLEY_KEYSPACE", "parley"),
		Topics:       schemas.Prefixed(e.String("PARLEY_TOPIC_PREFIX", "")),
		Logger:       log,
		Progress:     os.Stderr,
	}
	if err := e.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "replay: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fs := flag.NewFlagSet("replay "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "rebuild":
		var o replay.RebuildOptions
		fs.StringVar(&o.To, "to", "", "keyspace to rebuild into (created and migrated if missing; required)")
		fs.StringVar(&o.From, "from", "", "without committed offsets, start at: start, an offset, partition:offset pairs, or an RFC 3339 time")
		fs.StringVar(&o.Group, "group", "", "consumer group recording the progress (default <prefix>parley-projector-<to>)")
		fs.BoolVar(&o.Follow, "follow", false, "keep applying new events after reaching the end, until interrupted")
		fs.StringVar(&o.Replication, "replication", "", "CQL replication map of a new keyspace (default SimpleStrategy, RF 1)")
		fs.IntVar(&o.MaxBatch, "batch", 5000, "records of a partition written together")
		fs.IntVar(&o.WriteParallelism, "parallel", 32, "concurrent writes per partition")
		fs.BoolVar(&o.MixedBatches, "mixed-batches", false, "UNLOGGED BATCHes across partitions: fewer requests; for a single node or a small cluster")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		if o.To == "" {
			fmt.Fprintln(os.Stderr, "replay rebuild: -to is required")
			return 2
		}
		res, err := replay.Rebuild(ctx, cfg, o)
		switch {
		case errors.Is(err, context.Canceled):
			fmt.Fprintf(os.Stderr, "interrupted after %d events; run the same command again to resume (group %s)\n", res.Events, res.Group)
			return 3
		case err != nil:
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Printf("rebuilt %s: %d events in %s (%.0f events/s), %d skipped as poison\n",
			res.Keyspace, res.Events, res.Elapsed.Round(time.Millisecond), res.Rate(), res.Poison)
		fmt.Printf("to keep it current: run the projector with PARLEY_KEYSPACE=%s PARLEY_PROJECTOR_GROUP=%s\n", res.Keyspace, res.Group)
		return 0

	case "verify":
		var o replay.VerifyOptions
		var convs string
		fs.StringVar(&convs, "conversations", "", "comma-separated conversation ids to check (default all)")
		fs.StringVar(&o.Live, "live", "", "keyspace to check (default the one query serves)")
		fs.StringVar(&o.LiveGroup, "live-group", "", "group of the projector writing it, to wait for (default by keyspace; - does not wait)")
		fs.StringVar(&o.IngestGroup, "ingest-group", "", "decider's group (default <prefix>parley-ingest)")
		fs.StringVar(&o.Scratch, "scratch", "", "keyspace to recompute into (default <base>_verify; emptied first, dropped after unless -keep)")
		fs.BoolVar(&o.Keep, "keep", false, "keep the scratch keyspace")
		fs.DurationVar(&o.Wait, "wait", time.Minute, "how long to wait for the live projector to catch up")
		fs.BoolVar(&o.MixedBatches, "mixed-batches", false, "as for rebuild")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		o.Conversations = deploy.SplitList(convs)
		rep, err := replay.Verify(ctx, cfg, o)
		if err != nil && !errors.Is(err, replay.ErrDifferences) {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		rep.Write(os.Stdout)
		if err != nil {
			return 1
		}
		return 0

	case "switch":
		var o replay.SwitchOptions
		fs.StringVar(&o.To, "to", "", "keyspace query should serve (required; the base keyspace undoes a switch)")
		fs.StringVar(&o.Group, "group", "", "group whose checkpoints in it say how current it is (default by keyspace)")
		fs.Int64Var(&o.MaxLag, "max-lag", 1000, "offsets it may be behind the end of the log")
		fs.BoolVar(&o.Force, "force", false, "switch however far behind it is")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		if o.To == "" {
			fmt.Fprintln(os.Stderr, "replay switch: -to is required")
			return 2
		}
		prev, err := replay.Switch(ctx, cfg, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Printf("query serves %s (was %s) from its next refresh\n", strings.ToLower(o.To), prev)
		return 0
	}
	fmt.Fprintln(os.Stderr, usage)
	return 2
}
