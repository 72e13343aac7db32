package replay

import (
	"context"
	"os"
	"testing"

	"github.com/parley-im/parley/testenv"
)

// BenchmarkRebuild measures a rebuild alone: b.N random commands go through
// the real decider (no projector runs), then the clock runs while Rebuild
// applies the whole events topic into a fresh keyspace. Run it once with a
// fixed count:
//
//	go test ./projector/replay -run '^$' -bench Rebuild -benchtime 200000x
//
// PARLEY_REBUILD_CPUPROFILE=file writes a CPU profile of the rebuild.
func BenchmarkRebuild(b *testing.B) {
	w := newWorld(b, b.N, false)
	ks := testenv.Cassandra(b).Keyspace
	if f := os.Getenv("PARLEY_REBUILD_CPUPROFILE"); f != "" {
		stop := cpuProfile(b, f)
		defer stop()
	}
	b.ResetTimer()
	res, err := Rebuild(context.Background(), w.cfg, RebuildOptions{To: ks})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Events != w.events {
		b.Fatalf("applied %d events of %d", res.Events, w.events)
	}
	b.ReportMetric(res.Rate(), "events/s")
	b.ReportMetric(float64(res.Events), "events")
}
