package notify

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	planned   *prometheus.CounterVec // pushes appended to the push topic, by provider and kind
	skipped   *prometheus.CounterVec // devices not pushed, by reason
	sent      *prometheus.CounterVec // provider answers, by provider and outcome
	latency   *prometheus.HistogramVec
	planDelay prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		planned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_notifier_planned_total",
			Help: "Pushes planned and appended to the push topic, by provider and kind (message, clear)."}, []string{"provider", "kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_notifier_skipped_total",
			Help: "Devices with a push target that were not pushed, by reason: connected, muted, no_provider."}, []string{"reason"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_notifier_sends_total",
			Help: "Provider answers, by provider and outcome: accepted, invalid_token (unregistered), retry (a temporary failure, tried again), refused and dead (to the dead-letter topic)."},
			[]string{"provider", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_notifier_push_latency_seconds",
			Help:    "From the event's decision to the provider's acceptance of its push, by provider.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}, []string{"provider"}),
		planDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_notifier_plan_wait_seconds",
			Help:    "How long the planner waited for the projector and the presence statements before planning an event.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.planned, m.skipped, m.sent, m.latency, m.planDelay} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("notify: metrics: %w", err)
			}
		}
	}
	return m, nil
}
