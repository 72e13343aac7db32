package projector

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// TestPoisonToDeadLetters: records that can never be applied go to the
// dead-letter topic with the reason, are counted, and do not hold up the
// events after them.
func TestPoisonToDeadLetters(t *testing.T) {
	e := newEnv(t, true)
	const conv = "g:poison"
	marshal := func(ev *pb.Event) []byte {
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := func(ev *pb.Event) *kgo.Record { return record(conv, marshal(ev), "") }
	e.produceRecords(
		good(group(conv, "alice", "T", "bob")),
		good(sent(conv, 1, "alice", "one")),
		record(conv, []byte{0xff, 0xff, 0xff, 0xff}, "MessageSent"),         // undecodable
		record(conv, marshal(&pb.Event{ConversationId: conv, Seq: 2}), ""),  // no body
		record("g:other", marshal(sent(conv, 2, "alice", "wrong key")), ""), // key is not the conversation
		record(conv, marshal(sent(conv, 0, "alice", "no seq")), ""),         // timeline event without seq
		good(sent(conv, 2, "bob", "two")),
		good(sent(conv, 3, "alice", "three")),
	)
	cfg := e.config()
	p, _ := e.start(cfg)

	testenv.Eventually(t, 30*time.Second, func() string {
		convRow := e.rows(e.keyspace, "conversations", "conversation_id = ?", conv)
		if n := counterValue(t, p.m.poison); len(convRow) != 1 || convRow[0]["last_seq"] != float64(3) || n != 4 {
			return fmt.Sprintf("conversation %v, poison counter %v; want last_seq 3 and 4 dead letters", convRow, n)
		}
		return ""
	})
	if n := len(e.rows(e.keyspace, "messages", "conversation_id = ?", conv)); n != 3 {
		t.Errorf("%d messages rows, want 3", n)
	}
	if f := counterValue(t, p.m.failures); f != 0 {
		t.Errorf("%v failed attempts; poison must not be retried", f)
	}

	// The dead letters: original key and value, the reason in headers.
	cl := e.k.Client(kgo.ConsumeTopics(cfg.DeadLetterTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 4 && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != 4 {
		t.Fatalf("%d dead letters, want 4", len(recs))
	}
	wantReasons := []string{"undecodable", "no body", `record key "g:other"`, "with seq 0"}
	var reasons []string
	for _, r := range recs {
		h := headers(r)
		reasons = append(reasons, h[HeaderReason])
		if h[MetaConsumerGroup] != cfg.Group || h[HeaderTopic] != e.topic || h["partition"] == "" || h["offset"] == "" {
			t.Errorf("dead letter headers %v", h)
		}
		if string(r.Key) != conv && string(r.Key) != "g:other" {
			t.Errorf("dead letter key %q", r.Key)
		}
	}
	joined := strings.Join(reasons, "\n")
	for _, w := range wantReasons {
		if !strings.Contains(joined, w) {
			t.Errorf("no dead letter with reason %q in:\n%s", w, joined)
		}
	}
	for _, r := range recs {
		if strings.Contains(headers(r)[HeaderReason], "undecodable") && string(r.Value) != "\xff\xff\xff\xff" {
			t.Errorf("undecodable dead letter value %x, want the original", r.Value)
		}
	}
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// TestRetryTransientErrors: while tables are missing, reads and writes
// fail; the events are retried, not skipped and not dead-lettered, and are
// applied once the tables appear. Without only the messages table, every
// message is half applied (conversations and members written, messages
// not) until it exists: the retry completes them.
func TestRetryTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(e *env)
		recover func(e *env)
	}{
		{
			name:    "no tables",
			setup:   func(e *env) {},
			recover: func(e *env) { e.migrate(e.keyspace) },
		},
		{
			name: "no messages table",
			setup: func(e *env) {
				e.migrate(e.keyspace)
				if err := e.s.Query("DROP TABLE " + e.keyspace + ".messages").Exec(); err != nil {
					t.Fatal(err)
				}
			},
			recover: func(e *env) {
				ms, err := schemas.Migrations()
				if err != nil {
					t.Fatal(err)
				}
				// The table as migration 1 creates it, with the columns
				// later migrations add.
				created := false
				for _, m := range ms {
					for _, st := range m.Statements {
						if strings.Contains(st, ".messages (") || strings.Contains(st, "ALTER TABLE "+schemas.KeyspacePlaceholder+".messages ") {
							created = created || strings.Contains(st, ".messages (")
							if err := e.s.Query(strings.ReplaceAll(st, schemas.KeyspacePlaceholder, e.keyspace)).Exec(); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				if !created {
					t.Fatal("no CREATE TABLE messages in the migrations")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false)
			tc.setup(e)
			s := newSim(3, "g:transient", 3)
			s.step(40)
			last := e.produce(s.log...)
			cfg := e.config()
			p, stop := e.start(cfg)

			failures := func(want float64) func() string {
				return func() string {
					if n := counterValue(t, p.m.failures); n < want {
						return fmt.Sprintf("%v failed attempts, want %v", n, want)
					}
					return ""
				}
			}
			testenv.Eventually(t, 20*time.Second, failures(5)) // it is trying
			// As many failures again before the tables come back: the
			// attempts go on, further apart (50 ms doubling to 500 ms),
			// rather than stopping or skipping the events.
			testenv.Eventually(t, 20*time.Second, failures(2*counterValue(t, p.m.failures)))
			tc.recover(e)
			start := time.Now()
			e.waitApplied(e.keyspace, cfg.Group, last, 30*time.Second)
			t.Logf("%v failed attempts before the tables existed; applied %v after", counterValue(t, p.m.failures), time.Since(start))
			// A worker counts a batch right after writing its checkpoint,
			// which waitApplied has seen: wait for the count too.
			testenv.Eventually(t, 10*time.Second, func() string {
				if n := counterValue(t, p.m.applied); n != float64(len(s.log)) {
					return fmt.Sprintf("%v events applied, want %d", n, len(s.log))
				}
				return ""
			})
			stop()
			if n := counterValue(t, p.m.poison); n != 0 {
				t.Errorf("%v dead letters, want none", n)
			}
			adm := kadm.NewClient(e.k.Client())
			ends, err := adm.ListEndOffsets(context.Background(), cfg.DeadLetterTopic)
			if err != nil {
				t.Fatal(err)
			}
			ends.Each(func(o kadm.ListedOffset) {
				if o.Offset != 0 {
					t.Errorf("dead-letter partition %d has %d records", o.Partition, o.Offset)
				}
			})
			e.checkModel(t, s, e.dump(e.keyspace))
		})
	}
}
