package projector

import (
	"context"
	"fmt"
	"strings"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"golang.org/x/sync/errgroup"

	"github.com/parley-im/parley/schemas"
)

// Cell timestamps. Cassandra keeps, per cell, the value with the highest
// write timestamp; the projector never lets the wall clock choose it. Each
// column follows one of these clocks, so replaying any event again writes
// the same value at the same timestamp (a no-op), and applying events of a
// conversation in any order ends with the value of the highest timestamp:
//
//   - creationTS (0) for what ConversationCreated says: it sorts before
//     every timeline item (seq >= 1).
//   - seqTS(seq) for cells that follow the timeline: the newest timeline
//     event that wrote the cell wins.
//   - markTS(v) for the read and delivered watermarks: the timestamp is the
//     mark itself, so the highest mark wins (max), whichever event set it.
//   - versionTS(version) for cells that follow every change (the changes
//     rows, conversations.last_version), and for what changes without a
//     seq: a group's settings and owner, members.role and the mute cells,
//     the edits, reactions, pins and mentions rows. The newest change wins.
//
// Rows are deleted only in tables whose every cell follows the version
// clock (message_edits, reactions, pins, mentions, mentions_all, blocks,
// join_requests, push_targets, bans, webhooks), so clocks
// of different columns of one row never meet. See README.md, "Timestamps".
const creationTS int64 = 0

func seqTS(seq int64) int64 { return seq }

// msgTS is the message clock of the message at seq: sub 0 for the send,
// n for its n-th edit, recallSub for its recall. It sorts the changes of one
// message after each other, and all of them before any later message's
// (msgTS(seq+1, 0)): the messages row and conversations.last_message_preview
// follow it.
func msgTS(seq, sub int64) int64 { return seq<<msgSubBits | sub }

const (
	msgSubBits = 20
	// recallSub is a recall's sub-clock: above every edit number (the
	// decider caps edits far below it).
	recallSub = 1<<msgSubBits - 1
)

func markTS(v int64) int64 { return v }
func versionTS(v int64) int64 {
	return v
}

// stmt is one CQL statement with its bound values. part and row let a
// batch of events share round trips (see writer.go): part names the
// Cassandra partition written (statements of one part may share an UNLOGGED
// BATCH; "" runs alone) and row the row in it; two statements with the same
// cql, part and row write the same cells, so only the one with the highest ts
// needs to be sent ("" never coalesced).
type stmt struct {
	cql  string
	args []any
	part string
	row  string
	ts   int64
}

// planner is a view: it turns an event into the statements that apply it.
// Most views need only the event; the inbox reads the conversation's title
// and members (see inbox_table.go), hence the session.
type planner interface {
	plan(ctx context.Context, s *gocql.Session, ev *event) ([]stmt, error)
}

// views applies events to the tables of one keyspace. Statements are
// prepared by the driver on first use and cached per connection.
//
// An event is written in three steps: first its timeline row (messages) and
// its changes row, then everything that points at them (conversations.last_seq
// and preview, members, inbox), then conversations.last_version. So a reader
// that sees conversations.last_seq = n (or a read mark of n) finds the
// messages rows up to n, and one that sees last_version = v finds every row
// of every change up to v: unread counts, history pages, resume and a state
// fetched to resume from never get ahead of the rows. Within a step, writes run concurrently.
type views struct {
	s           *gocql.Session
	parallel    int
	steps       [][]planner
	checkpoints checkpoints
	// mixed lets an UNLOGGED BATCH hold statements of different partitions
	// (WriterConfig.MixedBatches).
	mixed bool
}

func newViews(s *gocql.Session, keyspace string, parallel int) *views {
	return &views{
		s:        s,
		parallel: parallel,
		steps: [][]planner{
			{newMessages(keyspace), newChanges(keyspace), newEdits(keyspace), newReactions(keyspace), newPins(keyspace), newMentions(keyspace),
				newReplies(keyspace), newPrefs(keyspace), newHidden(keyspace), newBlocks(keyspace), newInvites(keyspace),
				newJoinRequests(keyspace), newAttachments(keyspace), newPushTargets(keyspace), newBans(keyspace),
				newRevocations(keyspace), newWebhooks(keyspace)},
			{newConversations(keyspace), newMembers(keyspace), newInbox(keyspace)},
			{newConversations(keyspace).lastVersion()},
		},
		checkpoints: newCheckpoints(keyspace),
	}
}

// qualify replaces the keyspace placeholder of a statement, as Migrate does.
func qualify(keyspace, cql string) string {
	return strings.ReplaceAll(cql, "${keyspace}", keyspace)
}

// apply writes every row ev changes. It either succeeds or returns an error
// after which some of the rows may be written: applying ev again is then
// always correct (every statement is an idempotent upsert).
func (v *views) apply(ctx context.Context, ev *event) error {
	return v.applyBatch(ctx, []*event{ev})
}

// applyBatch applies consecutive events of one partition together (see
// writer.go for which events may share a batch): step by step, the
// statements of all events are planned, coalesced and sent grouped by
// Cassandra partition. Like apply, it either succeeds or leaves rows that
// applying the events again completes.
func (v *views) applyBatch(ctx context.Context, evs []*event) error {
	for _, step := range v.steps {
		var stmts []stmt
		for _, ev := range evs {
			if ev == nil || !projected(ev.typ) {
				continue
			}
			for _, p := range step {
				st, err := p.plan(ctx, v.s, ev)
				if err != nil {
					return err
				}
				stmts = append(stmts, st...)
			}
		}
		group := groupByPartition
		if v.mixed {
			group = groupInOrder
		}
		if err := v.exec(ctx, group(coalesce(stmts), maxBatchStmts, maxBatchBytes)); err != nil {
			return err
		}
	}
	return nil
}

// exec runs groups of statements concurrently: they touch different
// partitions (or different cells), and none depends on another's outcome.
// A group of one is a plain query, a larger one an UNLOGGED BATCH of one
// partition (one mutation, no batch log).
func (v *views) exec(ctx context.Context, groups [][]stmt) error {
	switch len(groups) {
	case 0:
		return nil
	case 1:
		return v.runGroup(ctx, groups[0])
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.parallel)
	for _, gr := range groups {
		g.Go(func() error { return v.runGroup(gctx, gr) })
	}
	return g.Wait()
}

func (v *views) runGroup(ctx context.Context, sts []stmt) error {
	if len(sts) == 1 {
		return v.run(ctx, sts[0])
	}
	b := v.s.Batch(gocql.UnloggedBatch)
	for _, st := range sts {
		b.Query(st.cql, st.args...)
		b.Entries[len(b.Entries)-1].Idempotent = true
	}
	if err := b.ExecContext(ctx); err != nil {
		return fmt.Errorf("projector: batch of %d, %s: %w", len(sts), firstWords(sts[0].cql), err)
	}
	return nil
}

func (v *views) run(ctx context.Context, st stmt) error {
	if err := v.s.Query(st.cql, st.args...).Idempotent(true).ExecContext(ctx); err != nil {
		return fmt.Errorf("projector: %s: %w", firstWords(st.cql), err)
	}
	return nil
}

// firstWords names a statement in errors ("UPDATE ks.members USING").
func firstWords(cql string) string {
	f := strings.Fields(cql)
	return strings.Join(f[:min(3, len(f))], " ")
}

// Apply projects one record of parley.events, given its key and value, into
// the views of keyspace (already migrated by schemas.Migrate), without
// touching checkpoints or Kafka: the building block of a rebuild or audit
// tool. A record that can never be applied returns an error wrapping
// ErrPoison and writes nothing; any other error may leave some of the rows
// written, and applying the record again is always correct.
func Apply(ctx context.Context, s *gocql.Session, keyspace string, key, value []byte) error {
	if err := schemas.CheckKeyspace(keyspace); err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	ev, err := decode(key, value)
	if err != nil {
		return err
	}
	return newViews(s, keyspace, Config{}.Defaults().WriteParallelism).apply(ctx, ev)
}
