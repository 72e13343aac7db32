package projector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	applied  *prometheus.CounterVec   // by event type; includes the not-projected types
	duration *prometheus.HistogramVec // by event type, successful applies only
	failures prometheus.Counter       // failed attempts that will be retried
	poison   prometheus.Counter       // events published to the dead-letter topic
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_projector_events_applied_total",
			Help: "Events applied to the views (and checkpointed), by event type; CommandRejected and MessageDeduplicated change no view but are counted."},
			[]string{"type"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_projector_apply_seconds",
			Help:    "Time to write one event's rows and its checkpoint (the successful attempt), by event type.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"type"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_projector_apply_failures_total",
			Help: "Failed attempts to apply an event (Cassandra errors, timeouts); each is retried with backoff, never skipped."}),
		poison: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_projector_poison_events_total",
			Help: "Events that can never be applied (undecodable, unknown body, key other than conversation_id …), published to the dead-letter topic."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.applied, m.duration, m.failures, m.poison} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("projector: metrics: %w", err)
			}
		}
	}
	return m, nil
}
