package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The changelog (parley.ingest.state, compacted) holds the decider's state as
// small records, one per fact, so a decision writes only what it changed:
//
//	c\x00<conv>                        -> headerRec   (kind, title, last seq)
//	m\x00<conv>\x00<user>              -> memberRec   (tombstone when removed)
//	d\x00<conv>\x00<user>\x00<client>  -> dedupRec    (tombstone when it leaves the window)
//
// Records go to the same partition number as the command they were decided
// from, inside the same transaction as the events; compaction keeps the
// newest value per key, so restore time follows the live state, not the age
// of the log.
const (
	prefixHeader = "c"
	prefixMember = "m"
	prefixDedup  = "d"
	sep          = "\x00"
)

type headerRec struct {
	Kind    int32  `json:"k"`
	Title   string `json:"t,omitempty"`
	LastSeq int64  `json:"s"`
}

type memberRec struct {
	Role      int32 `json:"r"`
	Joined    int64 `json:"j"`
	Read      int64 `json:"rd"`
	Delivered int64 `json:"dl"`
}

type dedupRec struct {
	Seq int64 `json:"s"`
}

// changelogRecords renders a decision's delta as changelog records.
func changelogRecords(topic string, partition int32, conv string, st *convState, d delta) []*kgo.Record {
	var out []*kgo.Record
	add := func(key string, v any) {
		r := &kgo.Record{Topic: topic, Partition: partition, Key: []byte(key)}
		if v != nil {
			r.Value, _ = json.Marshal(v) // plain structs: cannot fail
		}
		out = append(out, r)
	}
	if d.header {
		add(prefixHeader+sep+conv, headerRec{Kind: int32(st.kind), Title: st.title, LastSeq: st.lastSeq})
	}
	for _, u := range d.members {
		if m := st.members[u]; m != nil {
			add(prefixMember+sep+conv+sep+u, memberRec{Role: int32(m.role), Joined: m.joinedSeq, Read: m.readSeq, Delivered: m.delivered})
		} else {
			add(prefixMember+sep+conv+sep+u, nil)
		}
	}
	for _, k := range d.dedup {
		if seq, ok := st.recent[k]; ok {
			add(prefixDedup+sep+conv+sep+k, dedupRec{Seq: seq})
		} else {
			add(prefixDedup+sep+conv+sep+k, nil)
		}
	}
	return out
}

// stateBuilder applies changelog records in log order.
type stateBuilder struct {
	convs map[string]*convState
	dedup map[string]map[string]int64 // conv -> dedup key -> seq
}

func newStateBuilder() *stateBuilder {
	return &stateBuilder{convs: map[string]*convState{}, dedup: map[string]map[string]int64{}}
}

func (b *stateBuilder) conv(id string) *convState {
	st := b.convs[id]
	if st == nil {
		st = newConvState(pb.ConversationKind_CONVERSATION_KIND_UNSPECIFIED, "")
		b.convs[id] = st
	}
	return st
}

func (b *stateBuilder) apply(key, value []byte) error {
	parts := strings.SplitN(string(key), sep, 3)
	if len(parts) < 2 {
		return fmt.Errorf("ingest: changelog key %q has no conversation", key)
	}
	conv := parts[1]
	switch {
	case parts[0] == prefixHeader && len(parts) == 2:
		if value == nil {
			delete(b.convs, conv)
			return nil
		}
		var h headerRec
		if err := json.Unmarshal(value, &h); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		st := b.conv(conv)
		st.kind, st.title, st.lastSeq = pb.ConversationKind(h.Kind), h.Title, h.LastSeq
	case parts[0] == prefixMember && len(parts) == 3:
		st := b.conv(conv)
		if value == nil {
			delete(st.members, parts[2])
			return nil
		}
		var m memberRec
		if err := json.Unmarshal(value, &m); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		st.members[parts[2]] = &memberState{role: pb.MemberRole(m.Role), joinedSeq: m.Joined, readSeq: m.Read, delivered: m.Delivered}
	case parts[0] == prefixDedup && len(parts) == 3:
		ds := b.dedup[conv]
		if ds == nil {
			ds = map[string]int64{}
			b.dedup[conv] = ds
		}
		if value == nil {
			delete(ds, parts[2])
			return nil
		}
		var d dedupRec
		if err := json.Unmarshal(value, &d); err != nil {
			return fmt.Errorf("ingest: changelog %q: %w", key, err)
		}
		ds[parts[2]] = d.Seq
	default:
		return fmt.Errorf("ingest: unknown changelog key %q", key)
	}
	return nil
}

// done rebuilds each conversation's dedup window in seq order.
func (b *stateBuilder) done() map[string]*convState {
	for conv, ds := range b.dedup {
		st := b.conv(conv)
		keys := make([]string, 0, len(ds))
		for k := range ds {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return ds[keys[i]] < ds[keys[j]] })
		for _, k := range keys {
			st.recent[k] = ds[k]
		}
		st.order = keys
	}
	return b.convs
}

// restorePartition reads one partition of the changelog from its start to
// its last stable offset (read_committed: aborted transactions never reach
// the state) and returns the state of every conversation in it.
func restorePartition(ctx context.Context, seeds []string, topic string, partition int32) (map[string]*convState, int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records are kept so the position reaches the stable
		// offset even when the partition ends with a transaction marker.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("ingest: restore: %w", err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("ingest: restore: %w", err)
	}
	start, ok1 := starts.Lookup(topic, partition)
	end, ok2 := ends.Lookup(topic, partition)
	if !ok1 || !ok2 || start.Err != nil || end.Err != nil {
		return nil, 0, fmt.Errorf("ingest: restore: no offsets for %s/%d (is the topic provisioned with the same partition count as commands?)", topic, partition)
	}
	b := newStateBuilder()
	n := 0
	for next := start.Offset; next < end.Offset; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		if err := fs.Err(); err != nil {
			return nil, 0, fmt.Errorf("ingest: restore %s/%d: %w", topic, partition, err)
		}
		var aerr error
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Attrs.IsControl() || aerr != nil {
				return
			}
			n++
			aerr = b.apply(r.Key, r.Value)
		})
		if aerr != nil {
			return nil, 0, aerr
		}
	}
	return b.done(), n, nil
}
