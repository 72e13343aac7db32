package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sessions        prometheus.Gauge
	framesIn        *prometheus.CounterVec // type: command body, Ping, or invalid/too_large
	framesOut       *prometheus.CounterVec // type: Welcome, Accepted, Event, Error, Pong
	appended        *prometheus.CounterVec // type: command type
	appendFailed    prometheus.Counter
	ackLatency      prometheus.Histogram
	rejections      *prometheus.CounterVec // code: ErrorCode name of an Error frame
	slowConsumers   prometheus.Counter
	replaced        prometheus.Counter
	eventsConsumed  prometheus.Counter
	eventsDelivered prometheus.Counter
	eventsUndecoded prometheus.Counter
	eventsMisrouted prometheus.Counter
	eventsWithheld  prometheus.Counter
	consumerReady   prometheus.Gauge

	resumeGaps           prometheus.Counter
	repairRequests       *prometheus.CounterVec
	resumeInvalidCursors prometheus.Counter
	resumeRefetches      prometheus.Counter

	signalsPublished *prometheus.CounterVec // type: typing, presence
	signalFailures   prometheus.Counter
	signalsConsumed  prometheus.Counter

	blobsCollected prometheus.Counter
	collections    prometheus.Counter

	scans       *prometheus.CounterVec // outcome: clean, infected, failed
	scanSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "parley", "gateway"
	m := &metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "sessions", Help: "Open WebSocket sessions."}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "frames_in_total", Help: "Frames received from devices, by body type."}, []string{"type"}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "frames_out_total", Help: "Frames written to devices, by body type."}, []string{"type"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "commands_appended_total", Help: "Commands durably appended to the commands topic, by type."}, []string{"type"}),
		appendFailed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "command_append_failures_total", Help: "Commands whose append failed (answered UNAVAILABLE)."}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "append_seconds", Help: "From receiving a command frame to its append being durable (the Accepted ack).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rejections_total", Help: "Error frames sent by the gateway, by error code."}, []string{"code"}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "slow_consumer_disconnects_total", Help: "Sessions closed because their outbound queue was full."}),
		replaced: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "sessions_replaced_total", Help: "Sessions closed because the same device connected again."}),
		eventsConsumed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_consumed_total", Help: "Records read from the events topic."}),
		eventsDelivered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_delivered_total", Help: "Event frames queued to sessions (one per session)."}),
		eventsUndecoded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_undecodable_total", Help: "Records of the events topic that are not a parley.v1.Event."}),
		eventsMisrouted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_misrouted_total", Help: "Events of a user stream not of their actor's stream (dropped: delivered to no one)."}),
		eventsWithheld: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_withheld_total", Help: "Event frames queued to sessions as Withheld, live and by Resume (one per session): changes of messages from before a since_join member's join."}),
		consumerReady: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "events_consumer_ready", Help: "1 once the events consumer has its start positions."}),
		repairRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "repair_requests_total", Help: "Requests to re-apply a conversation with a history gap from the log (projector/repair), by outcome: appended or failed."}, []string{"outcome"}),
		resumeGaps: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "resume_gaps_total", Help: "Conversations of a Resume whose catch-up stopped at a changes row missing below their last version (reported in Resumed.failed)."}),
		resumeInvalidCursors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "resume_invalid_cursors_total", Help: "Resume cursors beyond their conversation's last version (reported in Resumed.failed)."}),
		resumeRefetches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "resume_refetches_total", Help: "Conversations of a Resume further behind than Fanout.MaxResumeGap, not replayed (reported in Resumed.refetch)."}),
		signalsPublished: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "signals_published_total", Help: "Typing and presence records written to the signals topic, by type."}, []string{"type"}),
		signalFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "signal_publish_failures_total", Help: "Signals records that could not be written (dropped)."}),
		signalsConsumed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "signals_consumed_total", Help: "Records read from the signals topic."}),
		blobsCollected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "blobs_collected_total", Help: "Blobs deleted from the blob store because no attachment held them."}),
		collections: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "blob_collections_total", Help: "Passes of blob collection completed."}),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "scans_total", Help: "Virus scans of uploads, by outcome: clean, infected (refused INFECTED), failed (no verdict: refused UNAVAILABLE)."}, []string{"outcome"}),
		scanSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "scan_seconds", Help: "Duration of one virus scan of an upload, from the first byte sent to the verdict.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	for _, c := range []prometheus.Collector{m.sessions, m.framesIn, m.framesOut, m.appended, m.appendFailed,
		m.ackLatency, m.rejections, m.slowConsumers, m.replaced, m.eventsConsumed, m.eventsDelivered,
		m.eventsUndecoded, m.eventsMisrouted, m.eventsWithheld, m.consumerReady, m.resumeGaps, m.repairRequests, m.resumeInvalidCursors, m.resumeRefetches, m.signalsPublished, m.signalFailures, m.signalsConsumed, m.blobsCollected, m.collections, m.scans, m.scanSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
