// Command gateway runs a Parley WebSocket gateway.
//
// Configuration is by environment (see gateway/README.md):
//
//	PARLEY_KAFKA_SEEDS          comma-separated bootstrap addresses (required)
//	PARLEY_GATEWAY_ADDR         listen address (default 127.0.0.1:8080)
//	PARLEY_TOPIC_PREFIX         prefix of every topic name (default none)
//	PARLEY_JWT_HMAC_SECRET      HMAC secret (at least 32 bytes), or
//	PARLEY_JWT_PUBLIC_KEY_FILE  PEM file of the public key verifying tokens
//	PARLEY_JWT_ISSUER           required iss claim (optional)
//	PARLEY_JWT_AUDIENCE         required aud claim (optional)
//	PARLEY_CASSANDRA_HOSTS      comma-separated Cassandra hosts of the views (member
//	                            fan-out and Resume; without it events reach only
//	                            their actor and Resume is UNAVAILABLE)
//	PARLEY_KEYSPACE             keyspace of the views (default parley)
//	PARLEY_DEV_TOKENS=1         serve /v1/dev/token (local development only)
//	PARLEY_LOG_LEVEL            debug, info (default), warn or error
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/token"
)

func main() {
	var level slog.Level
	if err := level.UnmarshalText([]byte(envOr("PARLEY_LOG_LEVEL", "info"))); err != nil {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(log); err != nil {
		log.Error("gateway stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	authCfg := token.Config{
		HMACSecret: []byte(os.Getenv("PARLEY_JWT_HMAC_SECRET")),
		Issuer:     os.Getenv("PARLEY_JWT_ISSUER"),
		Audience:   os.Getenv("PARLEY_JWT_AUDIENCE"),
	}
	if f := os.Getenv("PARLEY_JWT_PUBLIC_KEY_FILE"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("PARLEY_JWT_PUBLIC_KEY_FILE: %w", err)
		}
		authCfg.PublicKeyPEM = pem
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	topics := schemas.Prefixed(os.Getenv("PARLEY_TOPIC_PREFIX"))
	srv, err := gateway.New(gateway.Config{
		Addr:           os.Getenv("PARLEY_GATEWAY_ADDR"),
		Seeds:          splitList(os.Getenv("PARLEY_KAFKA_SEEDS")),
		CommandsTopic:  topics.Commands.Name,
		EventsTopic:    topics.Events.Name,
		SignalsTopic:   topics.Signals.Name,
		Auth:           authCfg,
		DevTokens:      os.Getenv("PARLEY_DEV_TOKENS") == "1",
		CassandraHosts: splitList(os.Getenv("PARLEY_CASSANDRA_HOSTS")),
		Keyspace:       os.Getenv("PARLEY_KEYSPACE"),
		Logger:         log,
		Registerer:     reg,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
