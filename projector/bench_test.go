package projector

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkProjector measures the projector alone: once it has joined its
// group and applied the creations of 240 conversations, b.N events are
// produced (about half messages, the rest receipts, membership changes and
// not-projected rejections) and the clock stops when the checkpoints show
// all of them applied. Run it once with a fixed count:
//
//	go test ./projector -run '^$' -bench Projector -benchtime 20000x
func BenchmarkProjector(b *testing.B) {
	for _, mb := range []int{64, 1000} {
		b.Run(fmt.Sprintf("maxbatch=%d", mb), func(b *testing.B) { benchProjector(b, mb) })
	}
}

func benchProjector(b *testing.B, maxBatch int) {
	e := newEnv(b, true)
	cfg := e.config()
	cfg.MaxBatch = maxBatch
	_, stop := e.start(cfg)
	defer stop()
	s := newSim(4, "g:bench", 240)
	e.waitApplied(e.keyspace, cfg.Group, e.produce(s.log...), time.Minute)
	evs := s.step(b.N)

	b.ResetTimer()
	start := time.Now()
	e.waitApplied(e.keyspace, cfg.Group, e.produce(evs...), 10*time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
