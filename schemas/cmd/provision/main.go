// Command provision prepares a deployment: it creates Parley's Kafka topics
// and the Cassandra keyspace of the views, and migrates it. Run it once
// before the first start of the components, and again after an upgrade (it
// applies new migrations). It is safe to run twice; it refuses, changing
// nothing, when what exists differs from what it is asked for.
//
//	go run ./schemas/cmd/provision -partitions 24 -replication-factor 3 -min-insync-replicas 2 \
//	    -keyspace parley -cassandra-dcs dc1:3
//
// With -cassandra-roles it also creates a login role per component that
// reaches Cassandra, granted only what that component does (the projector
// writes the views, the others read them); run it then as a superuser.
//
// Every flag has an environment variable (shown by -h), so the same
// settings the components read work here too. See the top-level README,
// "Deploying".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/provision"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, provision.ErrMismatch) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	env := deploy.NewEnv()
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	seeds := fs.String("kafka-seeds", strings.Join(env.List("PARLEY_KAFKA_SEEDS", "127.0.0.1:9092"), ","), "Kafka bootstrap addresses (PARLEY_KAFKA_SEEDS)")
	prefix := fs.String("topic-prefix", env.String("PARLEY_TOPIC_PREFIX", ""), "prefix of every topic name (PARLEY_TOPIC_PREFIX)")
	partitions := fs.Int("partitions", env.Int("PARLEY_PARTITIONS", int(schemas.DefaultPartitions)),
		"partitions of commands, events, the ingest changelog and signals (PARLEY_PARTITIONS); caps the decider's and projector's parallelism; cannot change later without re-keying")
	rf := fs.Int("replication-factor", env.Int("PARLEY_REPLICATION_FACTOR", 0), "replication factor of every topic; 0 takes the broker default (PARLEY_REPLICATION_FACTOR); production: 3")
	minISR := fs.Int("min-insync-replicas", env.Int("PARLEY_MIN_INSYNC_REPLICAS", 0), "min.insync.replicas of every topic; 0 takes the broker default (PARLEY_MIN_INSYNC_REPLICAS); production: 2")
	cmdRetention := fs.Duration("commands-retention", env.Duration("PARLEY_COMMANDS_RETENTION", 0), "retention of parley.commands; 0 keeps the contract's 7 days (PARLEY_COMMANDS_RETENTION)")
	cass := env.Cassandra()
	kopts := env.KafkaOpts(nil)
	hosts := fs.String("cassandra-hosts", strings.Join(cass.Hosts, ","), "Cassandra contact points (PARLEY_CASSANDRA_HOSTS)")
	keyspace := fs.String("keyspace", env.String("PARLEY_KEYSPACE", "parley"), "keyspace of the views (PARLEY_KEYSPACE)")
	strategy := fs.String("cassandra-strategy", env.String("PARLEY_CASSANDRA_STRATEGY", ""), "SimpleStrategy or NetworkTopologyStrategy (PARLEY_CASSANDRA_STRATEGY); default: NetworkTopologyStrategy with -cassandra-dcs, else SimpleStrategy")
	crf := fs.Int("cassandra-rf", env.Int("PARLEY_CASSANDRA_RF", 1), "SimpleStrategy replication factor (PARLEY_CASSANDRA_RF)")
	dcs := fs.String("cassandra-dcs", env.String("PARLEY_CASSANDRA_DCS", ""), "NetworkTopologyStrategy factors, e.g. dc1:3,dc2:3 (PARLEY_CASSANDRA_DCS)")
	roles := fs.String("cassandra-roles", env.String("PARLEY_CASSANDRA_ROLES", ""),
		"components whose Cassandra roles to create (or whose passwords to set) with their grants: all, or some of "+
			strings.Join(provision.Components(), ",")+" (PARLEY_CASSANDRA_ROLES); each password from PARLEY_CASSANDRA_<COMPONENT>_PASSWORD or _FILE, or from the file named like the component in -cassandra-role-password-dir; run as a superuser")
	rolePrefix := fs.String("cassandra-role-prefix", env.String("PARLEY_CASSANDRA_ROLE_PREFIX", provision.DefaultRolePrefix), "prefix of the role names (PARLEY_CASSANDRA_ROLE_PREFIX)")
	passwordDir := fs.String("cassandra-role-password-dir", env.String("PARLEY_CASSANDRA_ROLE_PASSWORD_DIR", ""), "a directory of one file per component (projector, query, …) holding its role's password (PARLEY_CASSANDRA_ROLE_PASSWORD_DIR)")
	grantKeyspaces := fs.String("cassandra-grant-keyspaces", env.String("PARLEY_CASSANDRA_GRANT_KEYSPACES", ""), "more keyspaces (rebuilt ones) the roles are granted on besides -keyspace (PARLEY_CASSANDRA_GRANT_KEYSPACES)")
	envPasswords := map[string]string{}
	for _, c := range provision.Components() {
		if pw := env.Secret("PARLEY_CASSANDRA_" + strings.ToUpper(c) + "_PASSWORD"); pw != nil {
			envPasswords[c] = string(pw)
		}
	}
	acls := fs.String("kafka-acls", "", "create each component's least-privilege ACLs for its Kafka user: component=user pairs, e.g. "+
		"gateway=parley-gateway,decider=parley-ingest,projector=parley-projector,notifier=parley-notifier,webhooks=parley-webhooks,replay=parley-replay "+
		"(the brokers need an authorizer; the provisioning user must be allowed to create ACLs)")
	skipKafka := fs.Bool("skip-kafka", false, "leave the topics (and ACLs) alone")
	skipCassandra := fs.Bool("skip-cassandra", false, "leave the keyspace alone")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := env.Err(); err != nil {
		return err
	}
	principals, err := provision.ParsePrincipals(*acls)
	if err != nil {
		return err
	}
	if *partitions < 1 || *partitions > 10_000 {
		return fmt.Errorf("-partitions %d: want 1 to 10000", *partitions)
	}
	if *rf < 0 || *rf > 32_767 {
		return fmt.Errorf("-replication-factor %d: want 0 (broker default) or more", *rf)
	}
	ks := provision.Keyspace{Name: *keyspace, Strategy: *strategy, ReplicationFactor: *crf}
	if *dcs != "" {
		ks.DataCenters = map[string]int{}
		for item := range strings.SplitSeq(*dcs, ",") {
			dc, n, ok := strings.Cut(strings.TrimSpace(item), ":")
			v, err := strconv.Atoi(n)
			if !ok || err != nil {
				return fmt.Errorf("-cassandra-dcs %q: want dc:factor pairs such as dc1:3,dc2:3", *dcs)
			}
			ks.DataCenters[dc] = v
		}
		if ks.Strategy == "" {
			ks.Strategy = "NetworkTopologyStrategy"
		}
	}
	if *skipCassandra && *roles != "" {
		return errors.New("-cassandra-roles with -skip-cassandra: the roles are made in Cassandra; drop one of them")
	}
	rs, err := roleSettings(*roles, *rolePrefix, *passwordDir, *keyspace, *grantKeyspaces, envPasswords)
	if err != nil {
		return err
	}
	topicRF := int16(*rf)
	if topicRF == 0 {
		topicRF = -1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var report provision.Report
	defer func() {
		for _, l := range report.Lines {
			fmt.Fprintln(stdout, l)
		}
	}()
	if !*skipKafka {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(deploy.SplitList(*seeds)...)}, kopts...)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		t := provision.Topics{Prefix: *prefix, Partitions: int32(*partitions), ReplicationFactor: topicRF,
			MinInsyncReplicas: *minISR, CommandsRetention: *cmdRetention}
		if err := provision.Kafka(ctx, cl, t, &report); err != nil {
			return err
		}
		if !principals.Empty() {
			if err := provision.KafkaACLs(ctx, cl, t, principals, &report); err != nil {
				return err
			}
		}
	}
	if !*skipCassandra {
		cass.Hosts = deploy.SplitList(*hosts)
		cass.Timeout = 30 * time.Second // schema changes wait for agreement
		cass.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		s, err := cass.Session()
		if err != nil {
			return err
		}
		defer s.Close()
		if err := provision.Cassandra(ctx, s, ks, &report); err != nil {
			return err
		}
		if err := provision.CassandraRoles(ctx, s, rs, &report); err != nil {
			return err
		}
	}
	return nil
}

// roleSettings are the roles -cassandra-roles asks for, each with its
// password: from the environment (PARLEY_CASSANDRA_<COMPONENT>_PASSWORD or
// _FILE), else from the password directory. A role asked for without a
// password is an error naming where it was looked for.
func roleSettings(list, prefix, dir, keyspace, more string, envPasswords map[string]string) (provision.Roles, error) {
	r := provision.Roles{Prefix: prefix, Passwords: map[string]string{}, Keyspaces: append([]string{keyspace}, deploy.SplitList(more)...)}
	comps := deploy.SplitList(list)
	if len(comps) == 1 && comps[0] == "all" {
		comps = provision.Components()
	}
	var missing []string
	for _, c := range comps {
		if !slices.Contains(provision.Components(), c) {
			return r, fmt.Errorf("-cassandra-roles %q: no role for %q (want all, or some of %s; ingest never reaches Cassandra)", list, c, strings.Join(provision.Components(), ","))
		}
		if pw, ok := envPasswords[c]; ok {
			r.Passwords[c] = pw
			continue
		}
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, c))
			if err == nil && strings.TrimSpace(string(b)) != "" {
				r.Passwords[c] = strings.TrimRight(string(b), "\r\n")
				continue
			}
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return r, fmt.Errorf("-cassandra-role-password-dir: %w", err)
			}
		}
		missing = append(missing, c)
	}
	if len(missing) > 0 {
		where := "PARLEY_CASSANDRA_<COMPONENT>_PASSWORD or _FILE"
		if dir != "" {
			where += " or a file in " + dir
		}
		return r, fmt.Errorf("-cassandra-roles: no password for %s (%s)", strings.Join(missing, ", "), where)
	}
	return r, nil
}
