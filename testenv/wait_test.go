package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestWaitForReturnsLastReason(t *testing.T) {
	n := 0
	err := WaitFor(context.Background(), 50*time.Millisecond, func() string {
		n++
		return "attempt " + strings.Repeat("x", n%2)
	})
	if err == nil || !strings.Contains(err.Error(), "attempt") || n < 2 {
		t.Fatalf("WaitFor = %v after %d checks; want the last reason after several", err, n)
	}
	n = 0
	if err := WaitFor(context.Background(), time.Minute, func() string {
		if n++; n < 3 {
			return "not yet"
		}
		return ""
	}); err != nil || n != 3 {
		t.Fatalf("WaitFor = %v after %d checks; want nil after 3", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitFor(ctx, time.Minute, func() string { return "never" }); err == nil || !strings.Contains(err.Error(), "never") {
		t.Fatalf("WaitFor on a cancelled context = %v", err)
	}
}

// TestHolds: a condition that holds is watched to the end of the window; one
// that breaks fails at once, with its reason, not at the end.
func TestHolds(t *testing.T) {
	n := 0
	begin := time.Now()
	if err := Holds(context.Background(), 60*time.Millisecond, func() string { n++; return "" }); err != nil || n < 3 ||
		time.Since(begin) < 60*time.Millisecond {
		t.Fatalf("Holds = %v after %d checks in %s; want nil after the whole window", err, n, time.Since(begin))
	}
	n = 0
	err := Holds(context.Background(), time.Hour, func() string {
		if n++; n == 3 {
			return "broke at check 3"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "broke at check 3") || n != 3 {
		t.Fatalf("Holds = %v after %d checks; want the reason of check 3", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Holds(ctx, time.Hour, func() string { return "" }); err == nil {
		t.Fatal("Holds on a cancelled context = nil; want an error")
	}
}

// TestLoggerBounded: the logger stops at LogLines and says how many it dropped.
func TestLoggerBounded(t *testing.T) {
	rec := &recordingTB{TB: t}
	log := Logger(rec)
	for i := range LogLines + 7 {
		log.With("component", "x").WithGroup("g").Info("line", "i", i, "text", "two words")
	}
	rec.runCleanups()
	log.Info("after the end") // dropped, no panic
	if len(rec.lines) != LogLines+1 {
		t.Fatalf("%d lines written, want %d and one about the rest", len(rec.lines), LogLines)
	}
	if first := rec.lines[0]; !strings.Contains(first, `INFO line component=x g.i=0 g.text="two words"`) {
		t.Fatalf("first line %q", first)
	}
	if last := rec.lines[LogLines]; !strings.Contains(last, "7 more log lines dropped") {
		t.Fatalf("last line %q", last)
	}
}

// TestForbidInLogs: a secret in any line, at any level, fails the test,
// and the report does not repeat it.
func TestForbidInLogs(t *testing.T) {
	rec := &recordingTB{TB: t}
	log := Logger(rec)
	if !ForbidInLogs(log, "hunter2-secret") {
		t.Fatal("ForbidInLogs refused a testenv logger")
	}
	log.Info("connected", "user", "gateway")
	if len(rec.errors) != 0 || len(rec.lines) != 1 {
		t.Fatalf("clean line: errors %q, lines %q", rec.errors, rec.lines)
	}
	log.Debug("sasl", "password", "hunter2-secret") // below the level: checked, not written
	log.With("dsn", "user:hunter2-secret@host").Warn("retrying")
	rec.runCleanups()
	if len(rec.errors) != 2 {
		t.Fatalf("errors %q, want two leaks reported", rec.errors)
	}
	for _, e := range append(rec.errors, rec.lines...) {
		if strings.Contains(e, "hunter2-secret") {
			t.Fatalf("the report repeats the secret: %q", e)
		}
	}
	if !strings.Contains(rec.errors[1], "user:[SECRET]@host") {
		t.Fatalf("report %q", rec.errors[1])
	}
}

type recordingTB struct {
	testing.TB
	lines    []string
	errors   []string
	cleanups []func()
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Log(args ...any) {
	for _, a := range args {
		r.lines = append(r.lines, a.(string))
	}
}
func (r *recordingTB) Logf(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}
