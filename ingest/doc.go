// Package ingest owns the write side of the log: the Appender that gateways
// use to make device commands durable on parley.commands, topic provisioning,
// and (later) the decider that alone writes parley.events.
//
// It must not read or write Cassandra: views belong to the projector.
package ingest
