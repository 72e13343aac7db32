package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// store owns every CQL statement of the package. All reads are
// single-partition; none uses driver page state across requests.
type store struct {
	session  *gocql.Session
	keyspace string
}

func openSession(hosts []string, keyspace string) (*gocql.Session, error) {
	c := gocql.NewCluster(hosts...)
	c.Keyspace = keyspace
	// LOCAL_QUORUM reads see every write the projector made at LOCAL_QUORUM.
	c.Consistency = gocql.LocalQuorum
	c.Timeout = 5 * time.Second
	c.ConnectTimeout = 5 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("query: cassandra session (hosts %v, keyspace %s): %w", hosts, keyspace, err)
	}
	return s, nil
}

type conversationRow struct {
	ID                 string
	Kind, Title        string
	CreatorUserID      string
	CreatedAt          time.Time
	LastSeq            int64
	UpdatedAt          time.Time
	LastMessageSeq     int64
	LastMessagePreview string
	LastMessageSender  string
}

// lastActivity is when the conversation last changed: the time of the event
// at last_seq, or its creation when nothing happened since.
func (c *conversationRow) lastActivity() time.Time {
	if !c.UpdatedAt.IsZero() {
		return c.UpdatedAt
	}
	return c.CreatedAt
}

type memberRow struct {
	UserID                           string
	Role                             string
	JoinedSeq, ReadSeq, DeliveredSeq int64
	Removed                          bool
}

type inboxRow struct {
	ConversationID string
	Kind, Title    string
	JoinedSeq      int64
	Removed        bool
}

type messageRow struct {
	Seq                        int64
	Type                       string
	ActorUserID, ActorDeviceID string
	ClientMsgID, ContentType   string
	Text                       string
	OccurredAt                 time.Time
	Event                      []byte
}

func storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return &storeError{op: op, err: err}
}

func (s *store) ping(ctx context.Context) error {
	var v string
	return storeErr("ping", s.session.Query("SELECT release_version FROM system.local").ScanContext(ctx, &v))
}

// conversation returns the conversations row of id; ok is false when there
// is none.
func (s *store) conversation(ctx context.Context, id string) (c conversationRow, ok bool, err error) {
	c.ID = id
	err = s.session.Query(`SELECT kind, title, creator_user_id, created_at, last_seq, updated_at,
		last_message_seq, last_message_preview, last_message_sender
		FROM conversations WHERE conversation_id = ?`, id).ScanContext(ctx,
		&c.Kind, &c.Title, &c.CreatorUserID, &c.CreatedAt, &c.LastSeq, &c.UpdatedAt,
		&c.LastMessageSeq, &c.LastMessagePreview, &c.LastMessageSender)
	if errors.Is(err, gocql.ErrNotFound) {
		return c, false, nil
	}
	return c, err == nil, storeErr("read conversations", err)
}

const memberColumns = "user_id, role, joined_seq, read_seq, delivered_seq, removed"

func scanMember(sc interface{ Scan(...any) bool }, m *memberRow) bool {
	return sc.Scan(&m.UserID, &m.Role, &m.JoinedSeq, &m.ReadSeq, &m.DeliveredSeq, &m.Removed)
}

// member returns user's members row in conversation id; ok is false when
// there is none.
func (s *store) member(ctx context.Context, id, user string) (m memberRow, ok bool, err error) {
	err = s.session.Query("SELECT "+memberColumns+" FROM members WHERE conversation_id = ? AND user_id = ?", id, user).
		ScanContext(ctx, &m.UserID, &m.Role, &m.JoinedSeq, &m.ReadSeq, &m.DeliveredSeq, &m.Removed)
	if errors.Is(err, gocql.ErrNotFound) {
		return m, false, nil
	}
	return m, err == nil, storeErr("read members", err)
}

// members returns every members row of conversation id, current and former,
// ordered by user id.
func (s *store) members(ctx context.Context, id string) ([]memberRow, error) {
	iter := s.session.Query("SELECT "+memberColumns+" FROM members WHERE conversation_id = ?", id).IterContext(ctx)
	var out []memberRow
	var m memberRow
	for scanMember(iter, &m) {
		out = append(out, m)
		m = memberRow{}
	}
	return out, storeErr("read members", iter.Close())
}

// inbox returns every inbox row of user, including removed ones.
func (s *store) inbox(ctx context.Context, user string) ([]inboxRow, error) {
	iter := s.session.Query("SELECT conversation_id, kind, title, joined_seq, removed FROM inbox WHERE user_id = ?", user).IterContext(ctx)
	var out []inboxRow
	var r inboxRow
	for iter.Scan(&r.ConversationID, &r.Kind, &r.Title, &r.JoinedSeq, &r.Removed) {
		out = append(out, r)
		r = inboxRow{}
	}
	return out, storeErr("read inbox", iter.Close())
}

const messageColumns = "seq, type, actor_user_id, actor_device_id, client_msg_id, content_type, text, occurred_at, event"

// messagesBefore returns up to limit rows of one bucket with seq < before,
// newest first (the table's clustering order).
func (s *store) messagesBefore(ctx context.Context, id string, bucket, before int64, limit int) ([]messageRow, error) {
	return s.messages(ctx, "SELECT "+messageColumns+" FROM messages WHERE conversation_id = ? AND bucket = ? AND seq < ? LIMIT ?",
		id, bucket, before, limit)
}

// messagesAfter returns up to limit rows of one bucket with seq > after,
// oldest first.
func (s *store) messagesAfter(ctx context.Context, id string, bucket, after int64, limit int) ([]messageRow, error) {
	return s.messages(ctx, "SELECT "+messageColumns+" FROM messages WHERE conversation_id = ? AND bucket = ? AND seq > ? ORDER BY seq ASC LIMIT ?",
		id, bucket, after, limit)
}

func (s *store) messages(ctx context.Context, stmt string, args ...any) ([]messageRow, error) {
	iter := s.session.Query(stmt, args...).IterContext(ctx)
	var out []messageRow
	var m messageRow
	for iter.Scan(&m.Seq, &m.Type, &m.ActorUserID, &m.ActorDeviceID, &m.ClientMsgID, &m.ContentType, &m.Text, &m.OccurredAt, &m.Event) {
		out = append(out, m)
		m = messageRow{}
	}
	return out, storeErr("read messages", iter.Close())
}

// fanOutWorkers bounds the concurrent single-partition reads of one inbox or
// unread request (one or two reads per conversation of the user).
const fanOutWorkers = 16

// forEach runs fn(ctx, i) for i in [0, n) on at most workers goroutines and
// returns the first error, after which the remaining calls are skipped and
// ctx is canceled for those running.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, workers)
	)
loop:
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
