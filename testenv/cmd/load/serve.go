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
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// benchKeyspace is where the benchmark's views go.
const benchKeyspace = "parley_bench"

// serveVar switches this binary into the child that runs Parley.
const serveVar = "PARLEY_LOAD_SERVE"

type serveInfo struct {
	Gateways []string `json:"gateways"`
	Query    string   `json:"query"`
	Keyspace string   `json:"keyspace"`
	// Debug serves /debug/pprof and every component's /metrics.
	Debug string `json:"debug"`
}

// clusterVar holds, for the child, a cluster env's Kafka seeds and
// Cassandra hosts: "seed,seed,seed;host,host,host".
const clusterVar = "PARLEY_LOAD_CLUSTER"

// serve runs all of Parley (fresh topics, the parley_bench keyspace) until
// SIGTERM, after printing its URLs as one JSON line on stdout.
func serve() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := system.Options{Keyspace: benchKeyspace, TopicPrefix: os.Getenv("PARLEY_LOAD_PREFIX"),
		// The benchmark's senders exceed a device's default rate limit on purpose.
		GatewayLimits: gateway.Limits{RatePerSecond: 1e6, Burst: 1_000_000}}
	if path := os.Getenv(securedVar); path != "" {
		s, err := loadSecured(path)
		if err != nil {
			return err
		}
		if opts.TLS, err = s.edge(); err != nil {
			return err
		}
		opts.Seeds, opts.Hosts, opts.Kafka, opts.Cassandra = s.KafkaSeeds, s.Hosts, s.kafka, s.cassandra()
	} else if cl := os.Getenv(clusterVar); cl != "" {
		seeds, hosts, _ := strings.Cut(cl, ";")
		opts.Seeds, opts.Hosts = strings.Split(seeds, ","), strings.Split(hosts, ",")
		opts.KeyspaceReplication = testenv.ClusterSize
	} else {
		env, err := testenv.Load(os.Getenv("PARLEY_LOAD_ENV"))
		if err != nil {
			return err
		}
		opts.Seeds, opts.Hosts = env.KafkaSeeds, env.CassandraHosts
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
	opts.Registerer, opts.Secret = reg, secret
	sys, err := system.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer sys.Close()
	if err := json.NewEncoder(os.Stdout).Encode(serveInfo{Gateways: sys.GatewayURLs, Query: sys.QueryURL,
		Keyspace: benchKeyspace, Debug: ln.Addr().String()}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func randRead(b []byte) (int, error) { return rand.Read(b) }

func numCPU() int { return runtime.NumCPU() }
