package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// serveVar switches this binary into the child that runs Parley.
const serveVar = "PARLEY_LOAD_SERVE"

type serveInfo struct {
	Gateways []string `json:"gateways"`
	Query    string   `json:"query"`
	Keyspace string   `json:"keyspace"`
	// Debug serves /debug/pprof and every component's /metrics.
	Debug string `json:"debug"`
}

// serve runs all of Parley (fresh topics, the parley_bench keyspace) until
// SIGTERM, after printing its URLs as one JSON line on stdout.
func serve() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := testenv.Load(os.Getenv("PARLEY_LOAD_ENV"))
	if err != nil {
		return err
	}
	secret, err := hex.DecodeString(os.Getenv("PARLEY_LOAD_SECRET"))
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go func() { _ = http.Serve(ln, mux) }()
	sys, err := system.Start(ctx, system.Options{Registerer: reg,
		Seeds: env.KafkaSeeds, Hosts: env.CassandraHosts, Keyspace: "parley_bench",
		TopicPrefix: os.Getenv("PARLEY_LOAD_PREFIX"), Secret: secret,
		// The benchmark's senders exceed a device's default rate limit on purpose.
		GatewayLimits: gateway.Limits{RatePerSecond: 1e6, Burst: 1_000_000},
	})
	if err != nil {
		return err
	}
	defer sys.Close()
	if err := json.NewEncoder(os.Stdout).Encode(serveInfo{Gateways: sys.GatewayURLs, Query: sys.QueryURL,
		Keyspace: "parley_bench", Debug: ln.Addr().String()}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func randRead(b []byte) (int, error) { return rand.Read(b) }

func numCPU() int { return runtime.NumCPU() }
