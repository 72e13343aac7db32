package replay

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"testing"

	"github.com/parley-im/parley/testenv"
)

// BenchmarkRebuild measures a rebuild alone: b.N random commands go through
// the real decider (no projector runs), then the clock runs while Rebuild
// applies the whole events topic into a fresh keyspace, with the default
// options and with MixedBatches. The fewer events per conversation fall
// into one batch, the less the writes coalesce: 2,000 conversations give
// about 80 events each in 200,000 commands, 20,000 about 9. Run it once with
// a fixed count:
//
//	go test ./projector/replay -run '^$' -bench Rebuild -benchtime 200000x
//
// PARLEY_REBUILD_CPUPROFILE=file writes a CPU profile of each rebuild (the
// file name gets the sub-benchmark's). With a shared env (PARLEY_TESTENV) it
// reports the cores Cassandra and Kafka used during the rebuild. GOGC is 400,
// as in the replay command.
func BenchmarkRebuild(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(400)) // as the replay command
	for _, convs := range []int{2000, 20000} {
		for _, mixed := range []bool{false, true} {
			b.Run(fmt.Sprintf("conversations=%d/mixed=%v", convs, mixed), func(b *testing.B) {
				w := newWorld(b, b.N, convs, false)
				ks := testenv.Cassandra(b).Keyspace
				if f := os.Getenv("PARLEY_REBUILD_CPUPROFILE"); f != "" {
					stop := cpuProfile(b, fmt.Sprintf("%s.%d.%v", f, convs, mixed))
					defer stop()
				}
				before := cpuTimes()
				b.ResetTimer()
				res, err := Rebuild(context.Background(), w.cfg, RebuildOptions{To: ks, MixedBatches: mixed})
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
				// Cores used during the rebuild, per process (this one runs
				// the rebuild, and an idle decider, gateway and query).
				for name, t := range after {
					b.ReportMetric((t-before[name])/res.Elapsed.Seconds(), name+"-cores")
				}
			})
		}
	}
}
