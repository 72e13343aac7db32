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
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// SupervisorEnv names the pid of the process that runs `dev` on someone's
// behalf (the task runner: `go tool task dev`). dev stops when that process
// is gone and, when dev stops first, tells it to end.
//
// Why: go-task catches SIGINT and SIGTERM and passes neither on, trusting
// that the signal went to the whole process group, as Ctrl-C in a terminal
// does. A `kill -TERM` aimed at `go tool task dev` alone (a script, a
// process manager) therefore never reached dev, and Parley kept serving.
// The dev task runs in go-task's watch mode, in which a signal ends go-task
// at once; dev sees its supervisor go and shuts down as on Ctrl-C.
const SupervisorEnv = "PARLEY_DEV_SUPERVISOR"

// supervisorPoll is how often dev checks that its supervisor still runs.
const supervisorPoll = 200 * time.Millisecond

// dev runs the whole of Parley in this process on top of the background
// env (started if needed) until interrupted, or until its supervisor (see
// SupervisorEnv) is gone. The env stays up afterwards; `testenv down`
// stops it.
func dev(ctx context.Context, env *testenv.Env, dir string, gatewayPort, queryPort int) error {
	ctx, stopWatch := watchSupervisor(ctx, os.Getenv(SupervisorEnv))
	defer stopWatch()
	secret, err := devSecret(filepath.Join(dir, "dev-jwt-secret"))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	blobs, err := blob.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	sys, err := system.Start(ctx, system.Options{
		Seeds: env.KafkaSeeds, Hosts: env.CassandraHosts, Keyspace: devKeyspace,
		GatewayPort: gatewayPort, QueryPort: queryPort, Secret: secret, DevTokens: true, Logger: log,
		GatewayAttachments: gateway.Attachments{Store: blobs, StagingDir: filepath.Join(dir, "uploads")},
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
  attachments:         %[5]s/blobs (local files)

Get a dev token (dev only: signed with a secret kept in %[5]s):
  curl -s '%[1]s/v1/dev/token?user=alice&device=laptop'

The README's walkthrough shows a conversation end to end. Ctrl-C (or SIGTERM to
'go tool task dev') stops Parley; 'go tool task env:down' then stops Kafka and
Cassandra.
`, gw, sys.QueryURL, topicNames(sys), devKeyspace, dir)
	<-ctx.Done()
	fmt.Println("stopping Parley (Kafka and Cassandra keep running)")
	return nil
}

// watchSupervisor returns a context that also ends when the process pid
// (decimal; "" or "0" means none) is gone. Its stop function ends the
// watch and, when the supervisor still runs (dev stopped on its own, e.g.
// on an error or a signal of its own), sends it SIGTERM so it does not wait
// for a dev that has ended.
func watchSupervisor(ctx context.Context, pid string) (context.Context, func()) {
	n, err := strconv.Atoi(strings.TrimSpace(pid))
	if err != nil || n <= 0 || n == os.Getpid() {
		return ctx, func() {}
	}
	alive := func() bool {
		err := syscall.Kill(n, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
	if !alive() {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var gone atomic.Bool
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(supervisorPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-t.C:
				if !alive() {
					gone.Store(true)
					fmt.Fprintf(os.Stderr, "testenv: the task runner (pid %d) has ended\n", n)
					cancel()
					return
				}
			}
		}
	}()
	return ctx, func() {
		close(done)
		cancel()
		if !gone.Load() && alive() {
			_ = syscall.Kill(n, syscall.SIGTERM)
		}
	}
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
