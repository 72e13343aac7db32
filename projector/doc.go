// Package projector builds Parley's Cassandra views (messages, conversations,
// members, inbox) from the parley.events topic, and records how far it got
// per partition (checkpoints).
//
// It owns the write side of those tables: nothing else writes them, and it
// writes nothing else (it never touches Kafka offsets of other groups, the
// commands topic or ingest's state). Every write is an upsert whose Cassandra
// cell timestamp is derived from the log, so any range of the log can be
// replayed any number of times, in any order within a conversation, and the
// tables converge to the same rows.
//
// Live projection and rebuild share one write path: the Projector runs one
// worker per assigned partition of its consumer group, which hands that
// partition's records in offset order to the same Writer that
// projector/replay uses; the checkpoint row is written after a batch's
// rows and before its offset is committed, and a partition resumes at
// min(committed offset, checkpoint + 1). README.md states the guarantees,
// the timestamp scheme and what a crash at each step leaves behind.
package projector
