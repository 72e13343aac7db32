package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/provision"
	"github.com/parley-im/parley/testenv"
)

// devKeyspace is the keyspace `go tool task dev` migrates.
const devKeyspace = "parley"

// provisionDev runs the deployment's provisioning (schemas/provision, as
// schemas/cmd/provision does) with dev's settings: the contract's partition
// counts, replication 1, the parley keyspace. Idempotent, so `dev` runs it
// on every start.
func provisionDev(ctx context.Context, env *testenv.Env) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.KafkaSeeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	var r provision.Report
	if err := provision.Kafka(ctx, cl, provision.Topics{ReplicationFactor: -1}, &r); err != nil {
		return err
	}
	s, err := deploy.Cassandra{Hosts: env.CassandraHosts, Timeout: 30 * time.Second}.Session()
	if err != nil {
		return err
	}
	defer s.Close()
	if err := provision.Cassandra(ctx, s, provision.Keyspace{Name: devKeyspace}, &r); err != nil {
		return err
	}
	for _, l := range r.Lines {
		fmt.Println(l)
	}
	return nil
}
