package query

import (
	"context"
	"fmt"
	"sync"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas/deploy"
)

// store reads the views of one keyspace through the projector's table
// readers, which own every view table's CQL; it only maps their errors to
// UNAVAILABLE. All reads are single-partition; none uses driver page state
// across requests.
type store struct {
	session  *gocql.Session
	keyspace string
	tables   *projector.Tables
}

func openSession(cass deploy.Cassandra, keyspace string) (*gocql.Session, error) {
	// The one session builder (ports of host:port contact points, timeouts,
	// consistency, authentication, TLS).
	c, err := cass.Cluster()
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	c.Keyspace = keyspace
	s, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("query: cassandra session (hosts %v, keyspace %s): %w", cass.Hosts, keyspace, err)
	}
	return s, nil
}

func newStore(session *gocql.Session, keyspace string) (*store, error) {
	t, err := projector.NewTables(session, keyspace)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return &store{session: session, keyspace: keyspace, tables: t}, nil
}

// The rows query serves, as the tables' owner reads them.
type (
	conversationRow = projector.Conversation
	memberRow       = projector.Member
	inboxRow        = projector.InboxEntry
	messageRow      = projector.Message
	editRow         = projector.Edit
	reactionRow     = projector.Reaction
	pinRow          = projector.Pin
	mentionRow      = projector.Mention
	prefsRow        = projector.Prefs
	blockRow        = projector.Block
	replyRow        = projector.Reply
	inviteRow       = projector.Invite
	joinRequestRow  = projector.JoinRequest
)

// invites returns the invitation links of group id, by id.
func (s *store) invites(ctx context.Context, id string) ([]inviteRow, error) {
	rows, err := s.tables.Invites(ctx, id)
	return rows, storeErr("read invites", err)
}

// joinRequests returns the join requests of group id, by user.
func (s *store) joinRequests(ctx context.Context, id string) ([]joinRequestRow, error) {
	rows, err := s.tables.JoinRequests(ctx, id)
	return rows, storeErr("read join_requests", err)
}

// joinRequestOf returns user's join request to id.
func (s *store) joinRequestOf(ctx context.Context, id, user string) (joinRequestRow, bool, error) {
	r, ok, err := s.tables.JoinRequestOf(ctx, id, user)
	return r, ok, storeErr("read join_requests", err)
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
func (s *store) conversation(ctx context.Context, id string) (conversationRow, bool, error) {
	c, ok, err := s.tables.Conversation(ctx, id)
	return c, ok, storeErr("read conversations", err)
}

// member returns user's members row in conversation id; ok is false when
// there is none.
func (s *store) member(ctx context.Context, id, user string) (memberRow, bool, error) {
	m, ok, err := s.tables.Member(ctx, id, user)
	return m, ok, storeErr("read members", err)
}

// members returns every members row of conversation id, current and former,
// ordered by user id.
func (s *store) members(ctx context.Context, id string) ([]memberRow, error) {
	rows, err := s.tables.Members(ctx, id)
	return rows, storeErr("read members", err)
}

// inbox returns every inbox row of user, including removed ones.
func (s *store) inbox(ctx context.Context, user string) ([]inboxRow, error) {
	rows, err := s.tables.Inbox(ctx, user)
	return rows, storeErr("read inbox", err)
}

// messagesBefore is the bucket walk down: up to limit rows with from <= seq
// < before, newest first.
func (s *store) messagesBefore(ctx context.Context, id string, before, from, lastSeq int64, limit int) ([]messageRow, error) {
	rows, err := s.tables.MessagesBefore(ctx, id, before, from, lastSeq, limit)
	return rows, storeErr("read messages", err)
}

// messagesAfter is the bucket walk up: up to limit rows with seq > after,
// oldest first.
func (s *store) messagesAfter(ctx context.Context, id string, after, lastSeq int64, limit int) ([]messageRow, error) {
	rows, err := s.tables.MessagesAfter(ctx, id, after, lastSeq, limit, false)
	return rows, storeErr("read messages", err)
}

// messageAt returns the messages row of seq in conversation id; ok is false
// when there is none.
func (s *store) messageAt(ctx context.Context, id string, seq int64) (messageRow, bool, error) {
	m, ok, err := s.tables.MessageAt(ctx, id, seq)
	return m, ok, storeErr("read messages", err)
}

// edits returns every edit of the message at seq, oldest first (none once
// it is recalled).
func (s *store) edits(ctx context.Context, id string, seq int64) ([]editRow, error) {
	rows, err := s.tables.Edits(ctx, id, seq)
	return rows, storeErr("read message_edits", err)
}

// reactions returns the current reactions of the messages with from <= seq
// <= to, ordered by seq, emoji and user (one query per bucket of the range).
func (s *store) reactions(ctx context.Context, id string, from, to int64) ([]reactionRow, error) {
	rows, err := s.tables.Reactions(ctx, id, from, to)
	return rows, storeErr("read reactions", err)
}

// pins returns the pinned messages of conversation id, the highest seq
// first.
func (s *store) pins(ctx context.Context, id string) ([]pinRow, error) {
	rows, err := s.tables.Pins(ctx, id)
	return rows, storeErr("read pins", err)
}

// mentions returns up to limit mentions naming user in conversation id with
// seq > after, newest first.
func (s *store) mentions(ctx context.Context, user, id string, after int64, limit int) ([]mentionRow, error) {
	rows, err := s.tables.Mentions(ctx, user, id, after, limit)
	return rows, storeErr("read mentions", err)
}

// mentionsAll returns up to limit @all mentions of conversation id with seq
// > after, newest first.
func (s *store) mentionsAll(ctx context.Context, id string, after int64, limit int) ([]mentionRow, error) {
	rows, err := s.tables.MentionsAll(ctx, id, after, limit)
	return rows, storeErr("read mentions_all", err)
}

// countMentions counts user's mentions in conversation id with seq > after,
// @all ones included (two COUNTs over one partition slice each).
func (s *store) countMentions(ctx context.Context, user, id string, after int64) (int64, error) {
	n, err := s.tables.CountMentions(ctx, user, id, after)
	return n, storeErr("count mentions", err)
}

// lastVersion is conversations.last_version of id (a conversation or a user
// stream), 0 when none.
func (s *store) lastVersion(ctx context.Context, id string) (int64, error) {
	v, err := s.tables.LastVersion(ctx, id)
	return v, storeErr("read conversations", err)
}

// prefs returns user's conversation_prefs rows by conversation id.
func (s *store) prefs(ctx context.Context, user string) (map[string]prefsRow, error) {
	p, err := s.tables.ConversationPrefs(ctx, user)
	return p, storeErr("read conversation_prefs", err)
}

// blocks returns the users user blocked, by user id.
func (s *store) blocks(ctx context.Context, user string) ([]blockRow, error) {
	b, err := s.tables.Blocks(ctx, user)
	return b, storeErr("read blocks", err)
}

// historyCleared is the seq up to which user cleared conv's history (0:
// never).
func (s *store) historyCleared(ctx context.Context, user, conv string) (int64, error) {
	n, err := s.tables.HistoryCleared(ctx, user, conv)
	return n, storeErr("read history_cleared", err)
}

// hiddenSeqs returns the seqs from..to user hid in conv, ascending.
func (s *store) hiddenSeqs(ctx context.Context, user, conv string, from, to int64) ([]int64, error) {
	seqs, err := s.tables.HiddenSeqs(ctx, user, conv, from, to)
	return seqs, storeErr("read hidden_messages", err)
}

// hidden returns everything user hid in conv.
func (s *store) hidden(ctx context.Context, user, conv string) (projector.Hidden, error) {
	h, err := s.tables.Hidden(ctx, user, conv)
	return h, storeErr("read hidden_messages", err)
}

// replies returns up to limit replies to message seq of conv with seq >
// after, oldest first.
func (s *store) replies(ctx context.Context, conv string, seq, after int64, limit int) ([]replyRow, error) {
	rows, err := s.tables.Replies(ctx, conv, seq, after, limit)
	return rows, storeErr("read replies", err)
}

// check reads one row of every view (projector.Tables.Check).
func (s *store) check(ctx context.Context) error {
	return s.tables.Check(ctx)
}

// fanOutWorkers bounds the concurrent single-partition reads of one inbox or
// unread request (one or two reads per conversation of the user), and of
// one history page (its reactions and the quoted messages not on it).
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
