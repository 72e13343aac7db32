// Command ingest runs the decider: the only writer of parley.events.
//
// Configuration is by environment (see ingest/README.md):
//
//	PARLEY_KAFKA_SEEDS            comma-separated bootstrap addresses (required)
//	PARLEY_INGEST_GROUP           consumer group (default <prefix>parley-ingest)
//	PARLEY_INGEST_TRANSACTIONAL_ID  unique per instance, stable across restarts (default <prefix>parley-ingest-<hostname>)
//	PARLEY_TOPIC_PREFIX           prefix of every topic name (default none)
//	PARLEY_HTTP_ADDR              /metrics and /healthz (default 127.0.0.1:9101)
package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("ingest stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	prefix := os.Getenv("PARLEY_TOPIC_PREFIX")
	topics := schemas.Prefixed(prefix)
	// Deployments sharing a Kafka cluster (the prefix) never share a group
	// or a transactional id (they would fence each other).
	group, txnID := os.Getenv("PARLEY_INGEST_GROUP"), os.Getenv("PARLEY_INGEST_TRANSACTIONAL_ID")
	if group == "" {
		group = prefix + "parley-ingest"
	}
	if txnID == "" {
		h, _ := os.Hostname()
		txnID = prefix + "parley-ingest-" + h
	}
	d, err := ingest.NewDecider(ingest.DeciderConfig{
		Seeds:           splitList(os.Getenv("PARLEY_KAFKA_SEEDS")),
		CommandsTopic:   topics.Commands.Name,
		EventsTopic:     topics.Events.Name,
		StateTopic:      topics.IngestState.Name,
		DeadLetterTopic: topics.DeadLetters.Name,
		Group:           group,
		TransactionalID: txnID,
		Logger:          log,
		Registerer:      reg,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := os.Getenv("PARLEY_HTTP_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9101"
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener", "err", err)
		}
	}()
	defer srv.Close()
	log.Info("ingest decider running", "metrics", addr)
	return d.Run(ctx)
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
