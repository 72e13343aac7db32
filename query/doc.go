// Package query serves Parley's HTTP JSON read API: a user's inbox and unread
// counts, a conversation and its members, history pages and receipts.
//
// It reads the Cassandra views built by the projector, and the serving
// pointer of its keyspace that says which keyspace holds them (serving.go),
// and nothing else: it never touches Kafka and never writes a table. Views are eventually consistent
// with parley.events, so a message ingest has just accepted appears here once
// the projector has applied it.
package query
