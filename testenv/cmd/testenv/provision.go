package main

import (
	"context"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/testenv"
)

// devKeyspace is the keyspace `go tool task dev` migrates.
const devKeyspace = "parley"

// provision creates every topic of the contract and the migrated dev
// keyspace. Both steps are idempotent, so `dev` can run it on every start.
func provision(ctx context.Context, env *testenv.Env) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.KafkaSeeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := ingest.Provision(ctx, cl, -1, schemas.AllTopics()...); err != nil {
		return err
	}
	c := gocql.NewCluster(env.CassandraHosts...)
	c.Timeout, c.ConnectTimeout = 30*time.Second, 10*time.Second
	c.Logger = gocql.NewLogger(gocql.LogLevelNone)
	s, err := c.CreateSession()
	if err != nil {
		return fmt.Errorf("cassandra: %w", err)
	}
	defer s.Close()
	if err := schemas.CreateKeyspace(ctx, s, devKeyspace, ""); err != nil {
		return err
	}
	if err := schemas.Migrate(ctx, s, devKeyspace); err != nil {
		return err
	}
	for _, t := range schemas.AllTopics() {
		fmt.Printf("topic:     %-22s %2d partitions  %s\n", t.Name, t.Partitions, t.Doc)
	}
	fmt.Printf("keyspace:  %s (migrated)\n", devKeyspace)
	return nil
}
