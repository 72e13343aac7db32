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
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/query"
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

func configFromEnv() (query.Config, error) {
	cfg := query.Config{
		Addr:     os.Getenv("PARLEY_QUERY_ADDR"),
		Keyspace: os.Getenv("PARLEY_KEYSPACE"),
		Auth: token.Config{
			Issuer:   os.Getenv("PARLEY_JWT_ISSUER"),
			Audience: os.Getenv("PARLEY_JWT_AUDIENCE"),
		},
	}
	if v := os.Getenv("PARLEY_QUERY_SERVING_REFRESH"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return cfg, fmt.Errorf("PARLEY_QUERY_SERVING_REFRESH: %w", err)
		}
		cfg.ServingRefresh = d
	}
	for h := range strings.SplitSeq(os.Getenv("PARLEY_CASSANDRA_HOSTS"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Hosts = append(cfg.Hosts, h)
		}
	}
	secret, keyFile := os.Getenv("PARLEY_JWT_HMAC_SECRET"), os.Getenv("PARLEY_JWT_PUBLIC_KEY_FILE")
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
