package eventlog

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Filter selects records; a zero field selects everything.
type Filter struct {
	// Conversation is the record key.
	Conversation string
	// Actor is Event.actor_user_id, or Command.user_id on parley.commands.
	// A record whose value does not decode never matches an Actor.
	Actor string
	// Types are parley-type header values, e.g. "MessageSent".
	Types []string
}

// Match reports whether r passes every set field of f.
func (f Filter) Match(r *Record) bool {
	if f.Conversation != "" && r.Key != f.Conversation {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, r.Type) {
		return false
	}
	return f.Actor == "" || r.Actor() == f.Actor
}

// PartitionFor returns the partition of a topic with the given partition
// count that records with this key go to: murmur2 of the key, positive,
// modulo the count — Kafka's default partitioner, which the Appender (and
// so the gateways) uses, and which the decider follows for parley.events.
// A conversation's whole history is in this one partition.
func PartitionFor(key string, partitions int32) int32 {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("")
	return int32(p.Partition(&kgo.Record{Key: []byte(key)}, int(partitions)))
}
