package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// From says where Tail starts in each partition it reads. The zero From is
// the end: only records appended after Tail started.
type From struct {
	kind   fromKind
	offset int64
	at     time.Time
}

type fromKind int

const (
	fromEnd fromKind = iota
	fromStart
	fromOffset
	fromTime
)

// FromEnd starts after the last record (the default).
func FromEnd() From { return From{} }

// FromStart starts at the oldest record kept.
func FromStart() From { return From{kind: fromStart} }

// FromOffset starts at this offset in every partition read (with a
// conversation filter that is one partition); where it is past a
// partition's end, at the end.
func FromOffset(o int64) From { return From{kind: fromOffset, offset: o} }

// FromTime starts at the first record with a timestamp at or after t.
func FromTime(t time.Time) From { return From{kind: fromTime, at: t} }

func (f From) kafka() kgo.Offset {
	switch f.kind {
	case fromStart:
		return kgo.NewOffset().AtStart()
	case fromOffset:
		return kgo.NewOffset().At(f.offset)
	case fromTime:
		return kgo.NewOffset().AfterMilli(f.at.UnixMilli())
	default:
		return kgo.NewOffset().AtEnd()
	}
}

// TailQuery says what Tail prints.
type TailQuery struct {
	// Filter selects records. With Conversation set only its partition is read.
	Filter
	From From
	// Limit stops Tail after this many records (0 = until ctx ends).
	Limit int
}

// Tail follows the topic from q.From and calls emit with each record that
// q.Filter selects, in log order per partition, until ctx ends (it then
// returns nil) or Limit records were emitted.
func Tail(ctx context.Context, src Source, q TailQuery, emit func(*Record) error) error {
	if err := src.validate(); err != nil {
		return err
	}
	if q.From.kind == fromOffset && q.From.offset < 0 {
		return errors.New("eventlog: offsets start at 0")
	}
	n, err := tailPartitions(ctx, src)
	if err != nil {
		return err
	}
	start := map[int32]kgo.Offset{}
	for _, p := range partitionsToRead(q.Conversation, n) {
		start[p] = q.From.kafka()
	}
	// An offset past the end of a partition waits at its end.
	cl, err := src.consumer(start, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if err != nil {
		return err
	}
	defer cl.Close()
	emitted := 0
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err(); err != nil {
			return fmt.Errorf("eventlog: read %s: %w", src.Topic, err)
		}
		var emitErr error
		fs.EachRecord(func(r *kgo.Record) {
			if emitErr != nil || (q.Limit > 0 && emitted >= q.Limit) {
				return
			}
			rec := Decode(src.Kind, r)
			if !q.Filter.Match(rec) {
				return
			}
			emitted++
			emitErr = emit(rec)
		})
		if emitErr != nil {
			return emitErr
		}
		if q.Limit > 0 && emitted >= q.Limit {
			return nil
		}
	}
}

func tailPartitions(ctx context.Context, src Source) (int32, error) {
	cl, err := src.client()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	return partitionCount(ctx, kadm.NewClient(cl), src.Topic)
}
