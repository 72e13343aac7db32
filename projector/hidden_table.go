package projector

import (
	"context"
	"errors"
	"fmt"
	"math"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// hiddenView: what one user deleted for itself ("delete for me"), from
// MessagesHidden of its stream: a hidden_messages row ((user_id,
// conversation_id), seq) per seq, and a history_cleared row ((user_id,
// conversation_id), up_to_seq DESC) per clear (up_to_seq > 0). Rows are only
// inserted, at the user stream's version clock: a seq hidden twice keeps the
// time of its newest hide, and since every clear is a row of its own, the
// highest up_to_seq (the first row) is what is cleared, whatever the order
// of application, and a smaller clear later never lowers it.
type hiddenView struct {
	insertSeq, insertCleared string
	selectRange              string
	selectCleared            string
	rows, rowsCleared        jsonRows
}

func newHidden(keyspace string) hiddenView {
	return hiddenView{
		insertSeq: qualify(keyspace, `INSERT INTO ${keyspace}.hidden_messages (user_id, conversation_id, seq, hidden_at)
			VALUES (?, ?, ?, ?) USING TIMESTAMP ?`),
		insertCleared: qualify(keyspace, `INSERT INTO ${keyspace}.history_cleared (user_id, conversation_id, up_to_seq, cleared_at)
			VALUES (?, ?, ?, ?) USING TIMESTAMP ?`),
		selectRange: qualify(keyspace, `SELECT seq FROM ${keyspace}.hidden_messages
			WHERE user_id = ? AND conversation_id = ? AND seq >= ? AND seq <= ?`),
		selectCleared: qualify(keyspace, `SELECT up_to_seq FROM ${keyspace}.history_cleared
			WHERE user_id = ? AND conversation_id = ? LIMIT 1`),
		rows: jsonRows{
			all:      qualify(keyspace, `SELECT JSON * FROM ${keyspace}.hidden_messages`),
			byKey:    qualify(keyspace, `SELECT JSON * FROM ${keyspace}.hidden_messages WHERE user_id = ? AND conversation_id = ?`),
			keyArity: 2,
		},
		rowsCleared: jsonRows{
			all:      qualify(keyspace, `SELECT JSON * FROM ${keyspace}.history_cleared`),
			byKey:    qualify(keyspace, `SELECT JSON * FROM ${keyspace}.history_cleared WHERE user_id = ? AND conversation_id = ?`),
			keyArity: 2,
		},
	}
}

func hiddenPart(user, conv string) string  { return "hidden_messages\x00" + user + "\x00" + conv }
func clearedPart(user, conv string) string { return "history_cleared\x00" + user + "\x00" + conv }

func (v hiddenView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	h := ev.GetMessagesHidden()
	if h == nil {
		return nil, nil
	}
	user, conv, ts := ev.GetActorUserId(), h.GetConversationId(), versionTS(ev.GetVersion())
	var out []stmt
	for _, seq := range h.GetSeqs() {
		out = append(out, stmt{v.insertSeq, []any{user, conv, seq, ev.occurredAt(), ts}, hiddenPart(user, conv), fmt.Sprint(seq), ts})
	}
	if up := h.GetUpToSeq(); up > 0 {
		out = append(out, stmt{v.insertCleared, []any{user, conv, up, ev.occurredAt(), ts}, clearedPart(user, conv), fmt.Sprint(up), ts})
	}
	return out, nil
}

// Hidden is what one user deleted for itself in one conversation: every seq
// up to and including UpToSeq (its latest clear of history; 0: none), and
// the seqs of Seqs (ascending).
type Hidden struct {
	UpToSeq int64
	Seqs    []int64
}

// Hidden reads everything user hid in conv: the cleared seq and the hidden
// seqs above it (two single-partition reads; what a device needs to
// continue the user stream).
func (t *Tables) Hidden(ctx context.Context, user, conv string) (Hidden, error) {
	up, err := t.HistoryCleared(ctx, user, conv)
	if err != nil {
		return Hidden{}, err
	}
	seqs, err := t.HiddenSeqs(ctx, user, conv, up+1, math.MaxInt64)
	return Hidden{UpToSeq: up, Seqs: seqs}, err
}

// HistoryCleared is the highest up_to_seq user cleared conv's history to (0:
// never cleared): the first row of its history_cleared partition.
func (t *Tables) HistoryCleared(ctx context.Context, user, conv string) (int64, error) {
	var up int64
	err := t.s.Query(t.hidden.selectCleared, user, conv).ScanContext(ctx, &up)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, fmt.Errorf("projector: read history_cleared: %w", err)
	}
	return up, nil
}

// HiddenSeqs reads the seqs from..to (inclusive) user hid in conv, ascending
// (one slice of one partition): a history page passes its range, so what it
// reads stays bounded by the page.
func (t *Tables) HiddenSeqs(ctx context.Context, user, conv string, from, to int64) ([]int64, error) {
	if from > to {
		return nil, nil
	}
	iter := t.s.Query(t.hidden.selectRange, user, conv, from, to).IterContext(ctx)
	var out []int64
	var seq int64
	for iter.Scan(&seq) {
		out = append(out, seq)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read hidden_messages: %w", err)
	}
	return out, nil
}
