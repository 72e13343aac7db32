package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ExportQuery says which part of the log to export. Set Conversation for one
// conversation's history (only its partition is read), Actor for one user's
// actions (every partition is read), both for one user's actions in one
// conversation, or neither for everything in the range.
type ExportQuery struct {
	Conversation string
	Actor        string
	// Types keeps only these parley-type values (default all).
	Types []string
	// FromSeq and ToSeq (0 = open) cut a conversation's log into the slice
	// that begins with its timeline item FromSeq and ends before its
	// timeline item ToSeq+1. The events that take no seq (receipts,
	// rejections, deduplications) are kept where they are inside the slice,
	// in log order; ConversationCreated is in it only when FromSeq is 0.
	// They need Conversation.
	FromSeq, ToSeq int64
	// Since and Until (zero = open) bound the record timestamps:
	// Since ≤ timestamp < Until. The first offset of each partition is
	// looked up in the broker's time index, so a range near the end of a
	// long log does not read the log from its start.
	Since, Until time.Time
	// Progress, when set, is called after each fetch from the brokers.
	Progress func(Progress)
}

// Progress is how far an export got.
type Progress struct {
	Partitions int   // partitions read
	Total      int64 // offsets in the range to scan
	Scanned    int64 // offsets passed so far (records, filtered or not, and transaction markers)
	Matched    int64 // records exported
}

// Validate reports every inconsistent field at once.
func (q ExportQuery) Validate() error {
	var errs []error
	if (q.FromSeq != 0 || q.ToSeq != 0) && q.Conversation == "" {
		errs = append(errs, errors.New("eventlog: a seq range needs a conversation"))
	}
	if q.FromSeq < 0 || q.ToSeq < 0 {
		errs = append(errs, errors.New("eventlog: seqs start at 1"))
	}
	if q.ToSeq != 0 && q.FromSeq > q.ToSeq {
		errs = append(errs, fmt.Errorf("eventlog: seq range %d..%d is empty", q.FromSeq, q.ToSeq))
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		errs = append(errs, errors.New("eventlog: since must be before until"))
	}
	return errors.Join(errs...)
}

// span is a range of offsets of one partition: [start, end).
type span struct{ start, end int64 }

// Export reads the part of the log q selects, as it is when Export starts
// (up to each partition's last stable offset), and calls emit for each
// selected record in log order per partition. Partitions are interleaved
// when several are read; Record.Partition and Record.Offset give the order.
// Records whose value does not decode are emitted with Record.Error when
// they are selected without decoding (by conversation, seq slice and type
// alone), so an export of a conversation leaves nothing of it out.
func Export(ctx context.Context, src Source, q ExportQuery, emit func(*Record) error) (Progress, error) {
	if err := errors.Join(src.validate(), q.Validate()); err != nil {
		return Progress{}, err
	}
	spans, err := exportSpans(ctx, src, q)
	if err != nil {
		return Progress{}, err
	}
	prog := Progress{Partitions: len(spans)}
	start := map[int32]kgo.Offset{}
	for p, s := range spans {
		prog.Total += s.end - s.start
		if s.start < s.end {
			start[p] = kgo.NewOffset().At(s.start)
		}
	}
	if len(start) == 0 {
		report(q, prog)
		return prog, nil
	}
	cl, err := src.consumer(start,
		// Transaction markers are kept so that the position reaches the end
		// of the range even when a partition ends with one.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(250*time.Millisecond))
	if err != nil {
		return prog, err
	}
	defer cl.Close()

	open := map[int32]int64{} // partition → next offset, for partitions not done
	for p := range start {
		open[p] = spans[p].start
	}
	slice := seqSlice{from: q.FromSeq, to: q.ToSeq, started: q.FromSeq == 0}
	filter := Filter{Actor: q.Actor, Types: q.Types}
	for len(open) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return prog, err
		}
		if err := fs.Err(); err != nil {
			return prog, fmt.Errorf("eventlog: read %s: %w", src.Topic, err)
		}
		var emitErr error
		fs.EachRecord(func(r *kgo.Record) {
			next, ok := open[r.Partition]
			if !ok || emitErr != nil || r.Offset < next {
				return
			}
			end := spans[r.Partition].end
			if r.Offset >= end {
				prog.Scanned += end - next
				finish(cl, src.Topic, open, r.Partition)
				return
			}
			prog.Scanned += r.Offset + 1 - next
			open[r.Partition] = r.Offset + 1
			if r.Offset+1 >= end {
				finish(cl, src.Topic, open, r.Partition)
			}
			if r.Attrs.IsControl() || !inTime(r.Timestamp, q.Since, q.Until) {
				return
			}
			if q.Conversation != "" && string(r.Key) != q.Conversation {
				return
			}
			rec := Decode(src.Kind, r)
			if q.Conversation != "" && !slice.keep(rec) {
				if slice.done {
					clear(open) // past ToSeq: nothing later belongs to the slice
				}
				return
			}
			if !filter.Match(rec) {
				return
			}
			prog.Matched++
			emitErr = emit(rec)
		})
		if emitErr != nil {
			return prog, emitErr
		}
		report(q, prog)
	}
	return prog, nil
}

func report(q ExportQuery, p Progress) {
	if q.Progress != nil {
		q.Progress(p)
	}
}

func finish(cl *kgo.Client, topic string, open map[int32]int64, p int32) {
	delete(open, p)
	cl.PauseFetchPartitions(map[string][]int32{topic: {p}})
}

func inTime(ts, since, until time.Time) bool {
	return (since.IsZero() || !ts.Before(since)) && (until.IsZero() || ts.Before(until))
}

// seqSlice follows one conversation's timeline items to cut its log at
// FromSeq and after ToSeq.
type seqSlice struct {
	from, to      int64
	started, done bool
}

func (s *seqSlice) keep(r *Record) bool {
	if seq := r.Seq(); seq > 0 {
		if !s.started && seq >= s.from {
			s.started = true
		}
		if s.to > 0 && seq > s.to {
			s.done = true
		}
	}
	return s.started && !s.done
}

// exportSpans computes the offset range of each partition to read.
func exportSpans(ctx context.Context, src Source, q ExportQuery) (map[int32]span, error) {
	cl, err := src.client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	n, err := partitionCount(ctx, adm, src.Topic)
	if err != nil {
		return nil, err
	}
	// The last stable offset: read_committed sees nothing beyond it.
	ends, endErr := adm.ListCommittedOffsets(ctx, src.Topic)
	var starts kadm.ListedOffsets
	var startErr error
	if q.Since.IsZero() {
		starts, startErr = adm.ListStartOffsets(ctx, src.Topic)
	} else {
		starts, startErr = adm.ListOffsetsAfterMilli(ctx, q.Since.UnixMilli(), src.Topic)
	}
	var untils kadm.ListedOffsets
	var untilErr error
	if !q.Until.IsZero() {
		untils, untilErr = adm.ListOffsetsAfterMilli(ctx, q.Until.UnixMilli(), src.Topic)
	}
	spans := map[int32]span{}
	for _, p := range partitionsToRead(q.Conversation, n) {
		var s span
		if s.end, err = listed(ends, endErr, src.Topic, p); err != nil {
			return nil, err
		}
		if s.start, err = listed(starts, startErr, src.Topic, p); err != nil {
			return nil, err
		}
		if !q.Until.IsZero() {
			u, err := listed(untils, untilErr, src.Topic, p)
			if err != nil {
				return nil, err
			}
			s.end = min(s.end, u)
		}
		if s.start < 0 || s.start > s.end {
			s.start = s.end
		}
		spans[p] = s
	}
	return spans, nil
}
