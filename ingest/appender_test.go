package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestAppenderConfigValidate(t *testing.T) {
	err := ingest.AppenderConfig{MaxBuffered: -1}.Defaults().Validate()
	if err == nil || !strings.Contains(err.Error(), "Seeds") || !strings.Contains(err.Error(), "MaxBuffered") {
		t.Fatalf("want both Seeds and MaxBuffered reported, got %v", err)
	}
	if err := (ingest.AppenderConfig{Seeds: []string{"x:1"}}).Defaults().Validate(); err != nil {
		t.Fatalf("defaults must validate: %v", err)
	}
}

// TestAppenderOrderPerKey appends 10,000 records across 100 keys without
// waiting between them, then reads the topic back: every key's records must
// come back complete, in append order, in one partition, at the offsets the
// callbacks reported.
func TestAppenderOrderPerKey(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic("commands", schemas.DefaultPartitions)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	app, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: k.Seeds, Topic: topic, Linger: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())

	const keys, perKey = 100, 100
	type pos struct {
		partition int32
		offset    int64
	}
	var (
		mu     sync.Mutex
		acked  = map[string]pos{} // "key/i" -> position
		failed []error
		wg     sync.WaitGroup
	)
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			key, id := fmt.Sprintf("conv-%03d", k), fmt.Sprintf("conv-%03d/%d", k, i)
			wg.Add(1)
			app.Append(ctx, ingest.Record{Key: key, Type: "Test", Value: []byte(id)}, func(p ingest.Position, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, err)
					return
				}
				acked[id] = pos{p.Partition, p.Offset}
			})
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d appends failed, first: %v", len(failed), failed[0])
	}
	if len(acked) != keys*perKey {
		t.Fatalf("acked %d records, want %d", len(acked), keys*perKey)
	}

	cl := k.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	next := map[string]int{}
	partOf := map[string]int32{}
	for got := 0; got < keys*perKey; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", got, keys*perKey, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			got++
			key, id := string(r.Key), string(r.Value)
			i, _ := strconv.Atoi(id[strings.IndexByte(id, '/')+1:])
			if i != next[key] {
				t.Fatalf("key %s: got record %d, want %d (out of order or lost)", key, i, next[key])
			}
			next[key]++
			if p, ok := partOf[key]; ok && p != r.Partition {
				t.Fatalf("key %s in partitions %d and %d", key, p, r.Partition)
			}
			partOf[key] = r.Partition
			if want := acked[id]; want.partition != r.Partition || want.offset != r.Offset {
				t.Fatalf("%s: callback said %d/%d, log has it at %d/%d", id, want.partition, want.offset, r.Partition, r.Offset)
			}
			if h := header(r, schemas.HeaderType); h != "Test" {
				t.Fatalf("%s: %s header = %q", id, schemas.HeaderType, h)
			}
		})
	}
	for k := 0; k < keys; k++ {
		if n := next[fmt.Sprintf("conv-%03d", k)]; n != perKey {
			t.Fatalf("key %d: %d records, want %d", k, n, perKey)
		}
	}
}

func TestAppenderSync(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic("commands", 3)
	app, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: k.Seeds, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p1, err := app.AppendSync(ctx, ingest.Record{Key: "c1", Value: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := app.AppendSync(ctx, ingest.Record{Key: "c1", Value: []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	if p1.Partition != p2.Partition || p2.Offset != p1.Offset+1 {
		t.Fatalf("same key: positions %+v then %+v, want same partition and next offset", p1, p2)
	}
}

// TestAppenderUnknownTopic: appending to a topic nobody provisioned fails
// in the callback instead of hanging or auto-creating it.
func TestAppenderUnknownTopic(t *testing.T) {
	k := testenv.Kafka(t)
	app, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: k.Seeds, Topic: k.Name("missing"), DeliveryTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := app.AppendSync(ctx, ingest.Record{Key: "c1", Value: []byte("a")}); err == nil {
		t.Fatal("append to an unprovisioned topic succeeded")
	}
}

func TestProvisionTwice(t *testing.T) {
	k := testenv.Kafka(t)
	cl := k.Client()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var topics []schemas.Topic
	for _, tp := range schemas.AllTopics() {
		tp.Name = k.Name(tp.Name)
		topics = append(topics, tp)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			for _, tp := range topics {
				_, _ = adm.DeleteTopics(context.Background(), tp.Name)
			}
		}
	})
	for run := 1; run <= 2; run++ {
		if err := ingest.Provision(ctx, cl, -1, topics...); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	names := make([]string, len(topics))
	for i, tp := range topics {
		names[i] = tp.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range topics {
		if got := int32(len(details[tp.Name].Partitions)); got != tp.Partitions {
			t.Errorf("%s: %d partitions, want %d", tp.Name, got, tp.Partitions)
		}
		rc, err := cfgs.On(tp.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantRetention := "-1"
		if tp.Retention > 0 {
			wantRetention = strconv.FormatInt(tp.Retention.Milliseconds(), 10)
		}
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.MaybeValue() != tp.Cleanup {
				t.Errorf("%s: cleanup.policy %q, want %q", tp.Name, c.MaybeValue(), tp.Cleanup)
			}
			if c.Key == "retention.ms" && c.MaybeValue() != wantRetention {
				t.Errorf("%s: retention.ms %q, want %q", tp.Name, c.MaybeValue(), wantRetention)
			}
			if want, ok := tp.Configs[c.Key]; ok && c.MaybeValue() != want {
				t.Errorf("%s: %s %q, want %q", tp.Name, c.Key, c.MaybeValue(), want)
			}
		}
	}

	// A topic that exists with another partition count is refused, not reused.
	wrong := topics[0]
	wrong.Partitions++
	if err := ingest.Provision(ctx, cl, -1, wrong); !errors.Is(err, ingest.ErrTopicMismatch) {
		t.Fatalf("want ErrTopicMismatch for a partition-count mismatch, got %v", err)
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
