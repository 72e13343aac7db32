package replay

import (
	"context"
	"os"
	"testing"

	"github.com/parley-im/parley/testenv"
)

// BenchmarkRebuild measures a rebuild alone: b.N random commands on 2,000
// conversations (1,000 groups, 1,000 direct) go through the real decider
// (no projector runs), then the clock runs while Rebuild
// applies the whole events topic into a fresh keyspace. Run it once with a
// fixed count:
//
//	go test ./projector/replay -run '^$' -bench Rebuild -benchtime 200000x
//
// PARLEY_REBUILD_CPUPROFILE=file writes a CPU profile of the rebuild. With a
// shared env (PARLEY_TESTENV) it reports the cores Cassandra and Kafka used.
func BenchmarkRebuild(b *testing.B) {
	w := newWorld(b, b.N, 2000, false)
	ks := testenv.Cassandra(b).Keyspace
	if f := os.Getenv("PARLEY_REBUILD_CPUPROFILE"); f != "" {
		stop := cpuProfile(b, f)
		defer stop()
	}
	before := cpuTimes()
	b.ResetTimer()
	res, err := Rebuild(context.Background(), w.cfg, RebuildOptions{To: ks})
	b.StopTimer()
	after := cpuTimes()
	if err != nil {
		b.Fatal(err)
	}
	if res.Events != w.events {
		b.Fatalf("applied %d events of %d", res.Events, w.events)
	}
	b.ReportMetric(res.Rate(), "events/s")
	b.ReportMetric(float64(res.Events), "events")
	// Cores used during the rebuild, per process (this one runs the rebuild,
	// and an idle decider, gateway and query).
	for name, t := range after {
		b.ReportMetric((t-before[name])/res.Elapsed.Seconds(), name+"-cores")
	}
}
