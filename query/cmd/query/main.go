// Command query serves Parley's HTTP JSON read API from the Cassandra views.
// Configuration is by environment; see query/README.md.
package main

import (
	"context"
	"errors"
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
		Addr:           e.String("PARLEY_QUERY_ADDR", "127.0.0.1:8081"),
		TLS:            e.ServerTLS("PARLEY_QUERY"),
		TrustedProxies: e.TrustedProxies("PARLEY_QUERY_TRUSTED_PROXIES"),
		Keyspace:       e.String("PARLEY_KEYSPACE", "parley"),
		Cassandra:      e.Cassandra(),
		ServingRefresh: e.Duration("PARLEY_QUERY_SERVING_REFRESH", 0),
		MaxPageSize:    e.Int("PARLEY_QUERY_MAX_PAGE_SIZE", 0),
		CORSOrigins:    e.List("PARLEY_QUERY_CORS_ORIGINS"),
		RatePerSecond:  e.Float("PARLEY_QUERY_RATE_PER_SECOND", query.DefaultRatePerSecond),
		Burst:          e.Int("PARLEY_QUERY_BURST", query.DefaultBurst),
	}
	auth, err := token.FromEnv(e)
	if err := errors.Join(e.Err(), err); err != nil {
		return cfg, err
	}
	cfg.Auth = auth
	return cfg, nil
}
