package projector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	applied    *prometheus.CounterVec // by event type (record header); includes the not-projected types
	batch      prometheus.Histogram   // successful batches: views + dead letters + checkpoint
	failures   prometheus.Counter     // failed attempts that will be retried
	poison     prometheus.Counter     // records published to the dead-letter topic
	rewinds    prometheus.Counter     // partitions re-applied from a checkpoint behind what was applied
	partitions prometheus.Gauge       // partitions assigned to this member
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_projector_events_applied_total",
			Help: "Events applied to the views (and checkpointed), by event type; CommandRejected and MessageDeduplicated change no view but are counted."},
			[]string{"type"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_projector_batch_seconds",
			Help:    "Time to apply one batch of a partition: its view rows, its dead letters and its checkpoint (the successful attempt).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_projector_apply_failures_total",
			Help: "Failed attempts to apply a batch (Cassandra errors, timeouts, a failed dead-letter publish); each is retried with backoff, never skipped."}),
		poison: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_projector_poison_events_total",
			Help: "Events that can never be applied (undecodable, unknown body, key other than conversation_id …), published to the dead-letter topic."}),
		rewinds: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_projector_rewinds_total",
			Help: "Times a partition's checkpoint was found behind what had been applied or committed (Cassandra lost acknowledged writes), so its records were applied again from the checkpoint."}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_projector_partitions_assigned",
			Help: "Partitions of the events topic assigned to this projector."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.applied, m.batch, m.failures, m.poison, m.rewinds, m.partitions} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("projector: metrics: %w", err)
			}
		}
	}
	return m, nil
}
