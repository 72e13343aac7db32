// Command projector builds the Cassandra views from parley.events.
//
// Configuration is by environment (see projector/README.md):
//
//	PARLEY_KAFKA_SEEDS      comma-separated Kafka bootstrap addresses (required)
//	PARLEY_CASSANDRA_HOSTS  comma-separated Cassandra contact points, host or host:port (required)
//	PARLEY_KEYSPACE         keyspace of the views, migrated beforehand (default parley)
//	PARLEY_PROJECTOR_GROUP  consumer group (default <prefix>parley-projector)
//	PARLEY_TOPIC_PREFIX     prefix of every topic name (default none)
//	PARLEY_HTTP_ADDR        /metrics and /healthz (default 127.0.0.1:9102)
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

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("projector stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	seeds, hosts := splitList(os.Getenv("PARLEY_KAFKA_SEEDS")), splitList(os.Getenv("PARLEY_CASSANDRA_HOSTS"))
	if len(seeds) == 0 || len(hosts) == 0 {
		return errors.New("PARLEY_KAFKA_SEEDS and PARLEY_CASSANDRA_HOSTS must be set")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	prefix := os.Getenv("PARLEY_TOPIC_PREFIX")
	topics := schemas.Prefixed(prefix)
	// Deployments sharing a Kafka cluster (the prefix) never share a group.
	group := os.Getenv("PARLEY_PROJECTOR_GROUP")
	if group == "" {
		group = prefix + "parley-projector"
	}
	p, err := projector.New(projector.Config{
		Seeds:           seeds,
		EventsTopic:     topics.Events.Name,
		DeadLetterTopic: topics.DeadLetters.Name,
		Group:           group,
		Hosts:           hosts,
		Keyspace:        os.Getenv("PARLEY_KEYSPACE"),
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
		addr = "127.0.0.1:9102"
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener", "err", err)
		}
	}()
	defer srv.Close()
	log.Info("projector starting", "metrics", addr)
	return p.Run(ctx)
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
