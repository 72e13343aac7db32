// Package projector builds Parley's Cassandra views (messages, conversations,
// members, inbox) from the parley.events topic, and records how far it got
// per partition (checkpoints).
//
// It owns the write side of those tables: nothing else writes them, and it
// writes nothing else (it never touches Kafka offsets of other groups, the
// commands topic or ingest's state). Every write is an upsert whose Cassandra
// cell timestamp is derived from the log, so any range of the log can be
// replayed any number of times, in any order within a conversation, and the
// tables converge to the same rows. README.md states the guarantees, the
// timestamp scheme and what a crash at each step leaves behind.
package projector
