package testenv

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

// Eventually polls check until it returns "" (the condition holds) and fails
// t with check's last reason once timeout has passed. Poll intervals start
// at 5 ms and grow to 200 ms, so a fast condition is seen at once and a slow
// one is not hammered. Call it from the test's goroutine only (it calls
// t.Fatalf); elsewhere use WaitFor.
func Eventually(t testing.TB, timeout time.Duration, check func() string) {
	t.Helper()
	if err := WaitFor(context.Background(), timeout, check); err != nil {
		t.Fatalf("%v", err)
	}
}

// WaitFor is Eventually for code that must not fail a test itself (a
// goroutine, a benchmark driver, a tool): it returns nil once check returns
// "", or an error carrying check's last reason after timeout or when ctx
// ends. check is always called at least once.
func WaitFor(ctx context.Context, timeout time.Duration, check func() string) error {
	deadline := time.Now().Add(timeout)
	every := 5 * time.Millisecond
	for {
		why := check()
		if why == "" {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("still not so after %s: %s", timeout, why)
		}
		t := time.NewTimer(min(every, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gave up waiting (%v): %s", ctx.Err(), why)
		case <-t.C:
		}
		every = min(every*2, 200*time.Millisecond)
	}
}

// Consistently is the negative check: it polls check for the whole of d
// and fails t with check's reason the first time it does not hold (returns
// non-empty). A condition that must stay true ("nothing arrives twice",
// "the commit stays behind the unacked message") is watched throughout the
// window, not looked at once after a sleep, so a violation fails the test
// as soon as it shows. d is how long the test waits for a violation to
// show: say why it is long enough where it is used. Call it from the
// test's goroutine only; elsewhere use Holds.
func Consistently(t testing.TB, d time.Duration, check func() string) {
	t.Helper()
	if err := Holds(context.Background(), d, check); err != nil {
		t.Fatalf("%v", err)
	}
}

// Holds is Consistently for code that must not fail a test itself: nil
// when check held at every poll for d (polls every 5 ms, growing to 50 ms,
// and once more at the end), else an error with check's reason. ctx ending
// early is an error too: the window was not watched to its end.
func Holds(ctx context.Context, d time.Duration, check func() string) error {
	deadline := time.Now().Add(d)
	every := 5 * time.Millisecond
	for {
		if why := check(); why != "" {
			return fmt.Errorf("stopped holding within %s: %s", d, why)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(min(every, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gave up watching (%v) before %s passed", ctx.Err(), d)
		case <-t.C:
		}
		every = min(every*2, 50*time.Millisecond)
	}
}

// Listen returns a listener on a free port of 127.0.0.1, closed at cleanup.
// Hand it over to the server (gateway.Server.Serve, query.Server.Serve): the
// port is never picked, let go and bound again, so no other process can take
// it in between.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: listen: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}
