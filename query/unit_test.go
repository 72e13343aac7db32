package query

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

func TestInboxCursorRoundTrip(t *testing.T) {
	c := inboxCursor{ActivityMS: 1740830400123, ID: gid("0123")}
	got, err := decodeInboxCursor(c.encode())
	if err != nil || got != c {
		t.Fatalf("round trip %+v: %+v %v", c, got, err)
	}
	long := inboxCursor{ActivityMS: 1, ID: strings.Repeat("g", 300)}.encode()
	for _, bad := range []string{"", "!!", "e30", "bnVsbA", "eyJhIjoxfQ", long, inboxCursor{ID: "g:0123"}.encode()} { // {}, null, {"a":1}
		if _, err := decodeInboxCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

func TestForEach(t *testing.T) {
	var running, peak atomic.Int32
	err := forEach(context.Background(), 100, 4, func(ctx context.Context, i int) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		return nil
	})
	if err != nil || peak.Load() > 4 {
		t.Fatalf("err %v, peak concurrency %d > 4", err, peak.Load())
	}

	boom := errors.New("boom")
	var calls atomic.Int32
	err = forEach(context.Background(), 1000, 2, func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 1 {
			return boom
		}
		<-ctx.Done() // everyone else waits for the failure to cancel them
		return nil
	})
	if !errors.Is(err, boom) || calls.Load() > 10 {
		t.Fatalf("err %v after %d calls; want boom, stopping early", err, calls.Load())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := forEach(ctx, 10, 2, func(context.Context, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled parent: %v", err)
	}
}
