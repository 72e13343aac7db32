package projector

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGatherWaitsOnlyWhenRecordsComeFast: a worker waits for more records
// before a batch only while its partition's rate would bring at least
// gatherMin of them in a BatchInterval; a quiet partition applies at once.
func TestGatherWaitsOnlyWhenRecordsComeFast(t *testing.T) {
	p := &Projector{cfg: Config{BatchInterval: time.Second, MaxBatch: 1000}}
	w := &worker{p: p}
	var cancel context.CancelFunc
	w.ctx, cancel = context.WithCancel(context.Background())
	cancel() // a wait can only end with the worker stopping: false

	// Quiet: one record now and then.
	w.lastStart = time.Now().Add(-time.Minute)
	for range 5 {
		w.lastStart = w.lastStart.Add(-time.Minute)
		w.started(1)
	}
	if w.rate*p.cfg.BatchInterval.Seconds() >= gatherMin {
		t.Fatalf("rate %.4f/s after a record a minute", w.rate)
	}
	if !w.gather(nil) {
		t.Fatal("a quiet partition waited")
	}

	// Busy: batches of 500 records 10 ms apart.
	for range 20 {
		w.lastStart = w.lastStart.Add(-10 * time.Millisecond)
		w.started(500)
	}
	if w.gather(nil) {
		t.Fatalf("a busy partition (%.0f records/s) did not wait", w.rate)
	}

	// Busy but MaxBatch records queued: no wait.
	w.queue = make([]*kgo.Record, p.cfg.MaxBatch)
	if !w.gather(nil) {
		t.Fatal("a full queue waited")
	}

	// Off.
	w.queue = nil
	p.cfg.BatchInterval = 0
	if !w.gather(nil) {
		t.Fatal("BatchInterval 0 waited")
	}
}
