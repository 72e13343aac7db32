package notify

import (
	"context"
	"sync"
	"time"
)

// projected follows the projector's checkpoints: wait returns once the
// projector has applied a partition up to an offset, so the views read
// afterwards hold the event at that offset and everything before it in its
// partition. One poll of the checkpoints table serves every waiter; it
// runs only while someone waits.
type projected struct {
	read  func(context.Context) (map[int32]int64, error)
	every time.Duration

	mu      sync.Mutex
	applied map[int32]int64
	waiters int
	changed chan struct{}
	wake    chan struct{}
}

func newProjected(read func(context.Context) (map[int32]int64, error), every time.Duration) *projected {
	return &projected{read: read, every: every, applied: map[int32]int64{}, changed: make(chan struct{}),
		wake: make(chan struct{}, 1)}
}

// wait returns when partition is applied up to offset, or ctx ends.
func (p *projected) wait(ctx context.Context, partition int32, offset int64) error {
	p.mu.Lock()
	if cp, ok := p.applied[partition]; ok && cp >= offset {
		p.mu.Unlock()
		return nil
	}
	p.waiters++
	defer func() { p.mu.Lock(); p.waiters--; p.mu.Unlock() }()
	for {
		cp, ok := p.applied[partition]
		ch := p.changed
		p.mu.Unlock()
		if ok && cp >= offset {
			return nil
		}
		select {
		case p.wake <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
}

// run polls the checkpoints while there are waiters, until ctx ends.
// A failed read is tried again at the next tick.
func (p *projected) run(ctx context.Context, onError func(error)) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		for {
			cps, err := p.read(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				onError(err)
			}
			p.mu.Lock()
			for part, off := range cps {
				p.applied[part] = max(p.applied[part], off)
			}
			close(p.changed)
			p.changed = make(chan struct{})
			waiting := p.waiters > 0
			p.mu.Unlock()
			if !waiting {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}
