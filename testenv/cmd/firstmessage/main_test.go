package main

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// TestFirstMessage runs the measurement against a system of its own (what
// `go tool task dev` runs, without the background env's fixed ports) and
// logs the figure.
func TestFirstMessage(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("no chromium: run 'go tool task tools:chromium' (Debian's chromium package)")
	}
	k, c := testenv.Kafka(t), testenv.MigratedCassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys, err := system.Start(ctx, system.Options{Seeds: k.Seeds, Hosts: c.Hosts, Keyspace: c.Keyspace,
		TopicPrefix: k.Name("first") + ".", DevTokens: true, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	run5, cancelRun := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelRun()
	r, err := run(run5, sys.GatewayURLs[0], "")
	if err != nil {
		t.Fatal(err)
	}
	if r.seen <= 0 || r.seen < r.signedIn || r.seenInChat < r.seen {
		t.Fatalf("steps out of order: %+v", r)
	}
	t.Log(r)
}
