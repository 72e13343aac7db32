package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// dev runs the whole of Parley in this process on top of the background
// env (started if needed) until interrupted. The env stays up afterwards;
// `testenv down` stops it.
func dev(ctx context.Context, env *testenv.Env, dir string, gatewayPort, queryPort int) error {
	secret, err := devSecret(filepath.Join(dir, "dev-jwt-secret"))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sys, err := system.Start(ctx, system.Options{
		Seeds: env.KafkaSeeds, Hosts: env.CassandraHosts, Keyspace: devKeyspace,
		GatewayPort: gatewayPort, QueryPort: queryPort, Secret: secret, DevTokens: true, Logger: log,
	})
	if err != nil {
		return err
	}
	defer sys.Close()
	gw := sys.GatewayURLs[0]
	fmt.Printf(`
Parley is running.
  gateway (WebSocket): %[1]s/v1/ws        metrics: %[1]s/metrics
  query (HTTP JSON):   %[2]s/v1/inbox     metrics: %[2]s/metrics
  topics:              %[3]s
  keyspace:            %[4]s

Get a dev token (dev only: signed with a secret kept in %[5]s):
  curl -s '%[1]s/v1/dev/token?user=alice&device=laptop'

The README's walkthrough shows a conversation end to end. Ctrl-C stops Parley;
'go tool task env:down' then stops Kafka and Cassandra.
`, gw, sys.QueryURL, topicNames(sys), devKeyspace, dir)
	<-ctx.Done()
	fmt.Println("stopping Parley (Kafka and Cassandra keep running)")
	return nil
}

func topicNames(sys *system.System) string {
	var n []string
	for _, t := range sys.Topics.All() {
		n = append(n, t.Name)
	}
	return strings.Join(n, ", ")
}

// devSecret returns the dev HMAC secret, creating it on first use, so dev
// tokens survive a restart of `dev`. It never leaves the state directory.
func devSecret(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		return hex.DecodeString(strings.TrimSpace(string(b)))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	if err := os.WriteFile(file, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return secret, nil
}
