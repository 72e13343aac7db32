// Command query serves Parley's HTTP JSON read API from the Cassandra views.
// Configuration is by environment; see query/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/query"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/token"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("query failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg, err := configFromEnv()
	if err != nil {
		return err
	}
	cfg.Logger = log
	cfg.Registerer = prometheus.DefaultRegisterer
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := query.New(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run(ctx)
}

// configFromEnv reads query's settings (query/README.md, Configuration);
// a malformed value stops the start with every bad setting named.
func configFromEnv() (query.Config, error) {
	e := deploy.NewEnv()
	cfg := query.Config{
		Addr:      e.String("PARLEY_QUERY_ADDR", "127.0.0.1:8081"),
		TLS:       e.ServerTLS("PARLEY_QUERY"),
		Keyspace:  e.String("PARLEY_KEYSPACE", "parley"),
		Cassandra: e.Cassandra(),
		Auth: token.Config{
			Issuer:   e.String("PARLEY_JWT_ISSUER", ""),
			Audience: e.String("PARLEY_JWT_AUDIENCE", ""),
		},
		ServingRefresh: e.Duration("PARLEY_QUERY_SERVING_REFRESH", 0),
		MaxPageSize:    e.Int("PARLEY_QUERY_MAX_PAGE_SIZE", 0),
		CORSOrigins:    e.List("PARLEY_QUERY_CORS_ORIGINS"),
	}
	secret, keyFile := e.String("PARLEY_JWT_HMAC_SECRET", ""), e.String("PARLEY_JWT_PUBLIC_KEY_FILE", "")
	if err := e.Err(); err != nil {
		return cfg, err
	}
	switch {
	case secret != "" && keyFile != "":
		return cfg, errors.New("set only one of PARLEY_JWT_HMAC_SECRET and PARLEY_JWT_PUBLIC_KEY_FILE")
	case secret != "":
		cfg.Auth.HMACSecret = []byte(secret)
	case keyFile != "":
		pem, err := os.ReadFile(keyFile)
		if err != nil {
			return cfg, fmt.Errorf("PARLEY_JWT_PUBLIC_KEY_FILE: %w", err)
		}
		cfg.Auth.PublicKeyPEM = pem
	default:
		return cfg, errors.New("set PARLEY_JWT_HMAC_SECRET or PARLEY_JWT_PUBLIC_KEY_FILE")
	}
	return cfg, nil
}
