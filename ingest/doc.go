// Package ingest owns the write side of the log: the Decider, the only
// writer of parley.events, which turns commands into events exactly once
// (Kafka transactions, state restored from the parley.ingest.state
// changelog); the Appender that gateways use to make device commands
// durable on parley.commands; and topic provisioning.
//
// It must not read or write Cassandra: views belong to the projector.
package ingest
