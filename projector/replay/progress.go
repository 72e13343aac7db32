package replay

import (
	"fmt"
	"time"
)

// progress prints where a rebuild is: records applied per second (over the
// last interval), its position against the end of the log captured at the
// start, and the time left at the average rate so far.
type progress struct {
	cfg      Config
	keyspace string
	r        *reader
	todo     int64 // offsets between start and end
	last     time.Time
	lastRead int64
}

func newProgress(cfg Config, keyspace string, r *reader) *progress {
	todo := int64(0)
	for p, e := range r.end {
		todo += max(0, e-r.start[p])
	}
	return &progress{cfg: cfg, keyspace: keyspace, r: r, todo: todo, last: time.Now()}
}

func (p *progress) done() int64 {
	var n int64
	for part, pos := range p.r.positions() {
		n += max(0, min(pos, p.r.end[part])-p.r.start[part])
	}
	return n
}

func (p *progress) line() {
	now := time.Now()
	read := p.r.read.Load()
	rate := float64(read-p.lastRead) / now.Sub(p.last).Seconds()
	p.last, p.lastRead = now, read
	done := p.done()
	eta := "—"
	if elapsed := now.Sub(p.r.begun).Seconds(); done > 0 && elapsed > 0 {
		left := float64(p.todo-done) / (float64(done) / elapsed)
		eta = (time.Duration(left) * time.Second).Round(time.Second).String()
	}
	pct := 100.0
	if p.todo > 0 {
		pct = 100 * float64(done) / float64(p.todo)
	}
	fmt.Fprintf(p.cfg.Progress, "%s: %5.1f%%  offset %d of %d (%d behind the end)  %.0f events/s  ETA %s\n",
		p.keyspace, pct, done, p.todo, p.todo-done, rate, eta)
}

func (p *progress) final() {
	elapsed := time.Since(p.r.begun)
	read := p.r.read.Load()
	fmt.Fprintf(p.cfg.Progress, "%s: %d events applied in %s (%.0f events/s); %d of %d offsets\n",
		p.keyspace, read, elapsed.Round(time.Millisecond), float64(read)/elapsed.Seconds(), p.done(), p.todo)
}
