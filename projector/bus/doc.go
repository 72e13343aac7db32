// Package bus is a Watermill message.Publisher and message.Subscriber over
// Kafka, through franz-go, for Watermill's Router and middleware (retry,
// poison queue, …) in the side consumers of parley.events (notifier,
// webhooks). The views' projector does not use it.
//
// It owns the mapping between Watermill messages and Kafka records, the
// delivery of each partition (or each key of it) in order with partitions
// running in parallel,
// and committing offsets of acked messages only. It knows nothing of Parley's
// schemas or topic contracts (ingest.Provision and schemas own those) and
// opens no other connection than its Kafka clients. README.md states the
// guarantees and what a crash at each step leaves behind.
package bus
