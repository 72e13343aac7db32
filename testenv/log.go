package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// LogVar sets the level of Logger: debug, info (the default), warn or error.
const LogVar = "PARLEY_TEST_LOG"

// LogLines is how many lines Logger writes per test; later lines are counted
// and reported as one line at the end, so a chatty component cannot flood a
// failing test's output.
const LogLines = 500

// Logger returns a logger that writes to t.Log — shown for a failing test,
// or with -v — at the level of PARLEY_TEST_LOG, at most LogLines lines.
// Lines logged after the test ended (by a goroutine still winding down) are
// dropped instead of panicking in t.Log.
func Logger(t testing.TB) *slog.Logger {
	lvl := slog.LevelInfo
	if v := os.Getenv(LogVar); v != "" {
		_ = lvl.UnmarshalText([]byte(v))
	}
	s := &logSink{t: t}
	t.Cleanup(s.end) // registered first, so it runs after the cleanups that stop servers
	return slog.New(&logHandler{sink: s, level: lvl})
}

type logSink struct {
	mu      sync.Mutex
	t       testing.TB
	n       int
	dropped int
	done    bool
	secrets []string // ForbidInLogs
	leaked  int
}

// ForbidInLogs fails the test of log (a Logger) when a line it renders, at
// any level, holds one of secrets: passwords, keys and tokens must never be
// logged. The line is reported with each secret replaced, so the failure
// does not leak it either. Records below the logger's level are rendered
// for the check and then dropped as before. It reports false, checking
// nothing, for a logger testenv.Logger did not make.
func ForbidInLogs(log *slog.Logger, secrets ...string) bool {
	h, ok := log.Handler().(*logHandler)
	if !ok {
		return false
	}
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	for _, v := range secrets {
		if v != "" {
			h.sink.secrets = append(h.sink.secrets, v)
		}
	}
	return true
}

// check reports a line that holds a secret, and says whether it did.
func (s *logSink) check(line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	hit := false
	for _, v := range s.secrets {
		if strings.Contains(line, v) {
			hit, line = true, strings.ReplaceAll(line, v, "[SECRET]")
		}
	}
	if hit && !s.done {
		s.leaked++
		s.t.Errorf("testenv: a secret was logged: %s", line)
	}
	return hit
}

func (s *logSink) watching() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.secrets) > 0
}

func (s *logSink) write(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.done:
	case s.n >= LogLines:
		s.dropped++
	default:
		s.n++
		s.t.Log(line)
	}
}

func (s *logSink) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped > 0 {
		s.t.Logf("testenv: %d more log lines dropped (limit %d per test)", s.dropped, LogLines)
	}
	s.done = true
}

// logHandler renders a record as one text line, with the attributes and
// groups of With and WithGroup.
type logHandler struct {
	sink   *logSink
	level  slog.Leveler
	prefix string // rendered attributes of With, groups applied
	group  string // "a.b." for WithGroup("a").WithGroup("b")
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level() || h.sink.watching()
}

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", r.Time.Format("15:04:05.000"), r.Level, r.Message)
	b.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool { appendAttr(&b, h.group, a); return true })
	line := b.String()
	if h.sink.check(line) || r.Level < h.level.Level() {
		return nil
	}
	h.sink.write(line)
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	c := *h
	c.prefix = b.String()
	return &c
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group += name + "."
	return &c
}

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, sub := range a.Value.Group() {
			appendAttr(b, g, sub)
		}
		return
	}
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \t\n\"=") {
		v = strconv.Quote(v)
	}
	fmt.Fprintf(b, " %s%s=%s", group, a.Key, v)
}
