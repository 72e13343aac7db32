package query

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
)

// The serving pointer. The configured keyspace (the base) may name another
// keyspace to serve the views from, in its serving table (row name =
// 'views'; written by `replay switch` after a rebuild, see
// projector/README.md). query reads it at start and every
// Config.ServingRefresh; when it changes, it opens a session on the new
// keyspace, checks that the views are there, and swaps it in atomically:
// each request reads the keyspace that was current when it started, so
// none fails or mixes two keyspaces; the old session is closed once every
// request that could still use it has timed out.

// storeKey keys the request's store in its context.
type storeKey struct{}

// db returns the store the request started on.
func (s *Server) db(ctx context.Context) *store {
	if st, ok := ctx.Value(storeKey{}).(*store); ok {
		return st
	}
	return s.serving.current()
}

type serving struct {
	cfg  Config
	log  *slog.Logger
	base *store // the configured keyspace: holds the pointer
	cur  atomic.Pointer[store]

	mu     sync.Mutex
	closed bool
	old    []*gocql.Session // replaced sessions not closed yet
}

func openServing(cfg Config) (*serving, error) {
	session, err := openSession(cfg.Cassandra, cfg.Keyspace)
	if err != nil {
		return nil, err
	}
	base, err := newStore(session, cfg.Keyspace)
	if err != nil {
		session.Close()
		return nil, err
	}
	sv := &serving{cfg: cfg, log: cfg.Logger, base: base}
	sv.cur.Store(sv.base)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := sv.refresh(ctx); err != nil {
		session.Close()
		return nil, err
	}
	return sv, nil
}

func (sv *serving) current() *store { return sv.cur.Load() }

// pointer reads the keyspace the base names (schemas.ServingKeyspace).
func (sv *serving) pointer(ctx context.Context) (string, error) {
	ks, err := schemas.ServingKeyspace(ctx, sv.base.session, sv.cfg.Keyspace)
	if err != nil {
		return "", fmt.Errorf("query: %w", err)
	}
	return ks, nil
}

// refresh follows the pointer once: it swaps in a session on the keyspace
// it names if that is not the current one.
func (sv *serving) refresh(ctx context.Context) error {
	ks, err := sv.pointer(ctx)
	if err != nil {
		return err
	}
	cur := sv.current()
	if strings.EqualFold(ks, cur.keyspace) {
		return nil
	}
	next := sv.base
	if !strings.EqualFold(ks, sv.cfg.Keyspace) {
		if err := schemas.CheckKeyspace(ks); err != nil {
			return fmt.Errorf("query: the serving pointer: %w", err)
		}
		session, err := openSession(sv.cfg.Cassandra, ks)
		if err != nil {
			return err
		}
		if next, err = newStore(session, ks); err != nil {
			session.Close()
			return err
		}
		// The views must be there before a request goes to them.
		if err := next.check(ctx); err != nil {
			session.Close()
			return fmt.Errorf("query: the serving pointer names %s: %w", ks, err)
		}
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.closed {
		if next != sv.base {
			next.session.Close()
		}
		return nil
	}
	sv.cur.Store(next)
	sv.log.Info("serving the views from another keyspace", "keyspace", ks, "previous", cur.keyspace)
	if cur != sv.base {
		// Requests that started on cur finish within requestTimeout.
		sv.old = append(sv.old, cur.session)
		time.AfterFunc(requestTimeout+time.Second, func() { sv.retire(cur.session) })
	}
	return nil
}

func (sv *serving) retire(s *gocql.Session) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for i, o := range sv.old {
		if o == s {
			sv.old = append(sv.old[:i], sv.old[i+1:]...)
			s.Close()
			return
		}
	}
}

// follow refreshes every ServingRefresh until ctx ends. A failed refresh
// keeps the current keyspace and is logged.
func (sv *serving) follow(ctx context.Context) {
	if sv.cfg.ServingRefresh < 0 {
		return
	}
	t := time.NewTicker(sv.cfg.ServingRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		if err := sv.refresh(rctx); err != nil && ctx.Err() == nil {
			sv.log.Error("cannot follow the serving pointer; still serving the current keyspace",
				"keyspace", sv.current().keyspace, "err", err)
		}
		cancel()
	}
}

func (sv *serving) close() {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	sv.closed = true
	for _, o := range sv.old {
		o.Close()
	}
	sv.old = nil
	if cur := sv.cur.Load(); cur != sv.base {
		cur.session.Close()
	}
	sv.base.session.Close()
}
