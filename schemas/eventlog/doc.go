// Package eventlog reads Parley's topics for people and tools rather than for
// components: it exports the canonical history of a conversation or of one
// user's actions as evidence (Export), and follows the topics live (Tail).
// Every record comes out as a Record — the decoded protobuf plus where the
// record is in the log (topic, partition, offset, timestamp, key, headers) —
// which marshals to one line of JSON.
//
// It only reads, always with isolation level read_committed (aborted
// transactions of the decider never show), and never joins a consumer group:
// running it cannot move any component's offsets.
package eventlog
