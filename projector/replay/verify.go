package replay

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// VerifyOptions says what to verify.
type VerifyOptions struct {
	// Live is the keyspace checked (default: the one query serves).
	Live string
	// LiveGroup is the consumer group of the projector that writes Live;
	// verify waits until its checkpoints reach the end of the log read
	// (default: "<prefix>parley-projector" for the base keyspace, else the
	// rebuild group of Live). "-" does not wait.
	LiveGroup string
	// Wait bounds that wait (default 1m).
	Wait time.Duration
	// IngestGroup is the decider's consumer group: commands before its
	// committed offsets must have their outcome in the log (default
	// "<prefix>parley-ingest").
	IngestGroup string
	// Conversations limits the check to these conversations (default all).
	Conversations []string
	// Scratch is the keyspace the views are recomputed into (default
	// "<base>_verify"); it is emptied first (see emptyScratch), and
	// dropped at the end unless Keep.
	Scratch string
	Keep    bool
	// MaxBatch, WriteParallelism and MixedBatches as for a rebuild.
	MaxBatch, WriteParallelism int
	MixedBatches               bool
}

// Report is what verify found. It is OK when all of Log, Views, Unread,
// Actions and Governance are empty.
type Report struct {
	Live, Scratch string
	End           map[int32]int64 // end offsets of parley.events checked against
	Events        int64           // events read (of the chosen conversations)
	Commands      int             // commands read (of the chosen conversations)
	Conversations int

	Log     []string // broken invariants of the log
	Views   []string // rows that differ between the live and the recomputed views
	Unread  []string // members whose live unread count is not the log's
	Actions []string // messages whose live views disagree with the log's edits, recall or reactions
	// Governance: members whose live unread mentions, and groups whose live
	// owner, are not the log's.
	Governance []string
	// Streams: user stream rows (conversation prefs, hidden messages and
	// cleared history, blocks) and replies that are not as the log says.
	Streams []string
	// Attachments: attachment rows that are not as the log says, served
	// ones without a live message or unsent upload among them.
	Attachments []string
	Skipped     []string // differing rows of conversations changed since the log was read
	Notes       []string // what was not checked, and why
}

// OK reports whether nothing differs.
func (r Report) OK() bool {
	return len(r.Log) == 0 && len(r.Views) == 0 && len(r.Unread) == 0 && len(r.Actions) == 0 && len(r.Governance) == 0 &&
		len(r.Streams) == 0 && len(r.Attachments) == 0
}

// ErrDifferences is returned by Verify when the report is not OK.
var ErrDifferences = errors.New("replay: the views or the log are not as they should be")

// Write prints the report for people.
func (r Report) Write(w io.Writer) {
	fmt.Fprintf(w, "verify %s against parley.events up to %v: %d events, %d commands, %d conversations\n",
		r.Live, formatOffsets(r.End), r.Events, r.Commands, r.Conversations)
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			fmt.Fprintf(w, "%s: ok\n", title)
			return
		}
		fmt.Fprintf(w, "%s: %d difference(s)\n", title, len(lines))
		for i, l := range lines {
			if i == 200 {
				fmt.Fprintf(w, "  … %d more\n", len(lines)-i)
				break
			}
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	section("log (dense seqs, one outcome per command, forward-only marks, message actions, roles, settings, mutes, mentions, pins, attachments)", r.Log)
	section("views (rows live vs recomputed from the log)", r.Views)
	section("unread (last_seq − read_seq, live vs log)", r.Unread)
	section("actions (recalled content gone, reactions, edit counts, live vs log)", r.Actions)
	section("governance (unread mentions, group owners, live vs log)", r.Governance)
	section("user streams and replies (prefs, hidden messages, cleared history, blocks, replies, live vs log)", r.Streams)
	section("attachments (served only with a live message or unsent, deletions, blob, owner and upload indexes, live vs log)", r.Attachments)
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "not compared (changed after the log was read): %s\n", s)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if r.OK() {
		fmt.Fprintln(w, "OK")
	} else {
		fmt.Fprintln(w, "DIFFERENCES FOUND")
	}
}

func formatOffsets(m map[int32]int64) string {
	var b strings.Builder
	for i, p := range sortedPartitions(m) {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%d:%d", p, m[p])
	}
	return b.String()
}

// Verify recomputes the views of the chosen conversations from
// parley.events into a scratch keyspace and compares them with the live
// keyspace row by row; it checks the log's own invariants on the way
// (logCheck), the live unread counts against the log's (checkUnread), and
// the live views of every message against the log's edits, recalls and
// reactions (checkActions), the live unread mentions and group owners
// against the log's (checkGovernance), the user streams and replies
// (checkStreams) and the attachments (checkAttachments). It returns the report, and
// ErrDifferences when it is not OK.
//
// The log is read up to its end when Verify starts. Before comparing, it
// waits until the live projector's checkpoints have reached that end; rows
// of conversations that received events since are reported as skipped, not
// as differences.
func Verify(ctx context.Context, cfg Config, opts VerifyOptions) (Report, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	prefix := strings.TrimSuffix(cfg.Topics.Events.Name, schemas.Events.Name)
	if opts.Wait == 0 {
		opts.Wait = time.Minute
	}
	if opts.IngestGroup == "" {
		opts.IngestGroup = prefix + "parley-ingest"
	}
	if opts.Scratch == "" {
		opts.Scratch = cfg.Keyspace + "_verify"
	}
	s, err := session(cfg)
	if err != nil {
		return Report{}, err
	}
	defer s.Close()
	if opts.Live == "" {
		if opts.Live, err = Serving(ctx, s, cfg.Keyspace); err != nil {
			return Report{}, err
		}
	}
	if opts.LiveGroup == "" {
		opts.LiveGroup = prefix + "parley-projector"
		if !strings.EqualFold(opts.Live, cfg.Keyspace) {
			opts.LiveGroup = DefaultGroup(cfg.Topics, opts.Live)
		}
	}
	if err := checkKeyspace("live", opts.Live); err != nil {
		return Report{}, err
	}
	if err := checkKeyspace("scratch", opts.Scratch); err != nil {
		return Report{}, err
	}
	if strings.EqualFold(opts.Scratch, opts.Live) || strings.EqualFold(opts.Scratch, cfg.Keyspace) {
		return Report{}, fmt.Errorf("replay: the scratch keyspace %s must differ from the live and base keyspaces", opts.Scratch)
	}
	var only map[string]bool
	if len(opts.Conversations) > 0 {
		only = map[string]bool{}
		for _, id := range opts.Conversations {
			only[id] = true
		}
	}
	rep := Report{Live: opts.Live, Scratch: opts.Scratch}

	cl, err := cfg.kafka()
	if err != nil {
		return rep, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// The decider commits its command offsets in the transaction that writes
	// their events: read them first, and every command before them has its
	// outcome before the end offsets read next.
	decided := map[int32]int64{}
	fo, err := adm.FetchOffsets(ctx, opts.IngestGroup)
	if err == nil {
		err = fo.Error()
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return rep, fmt.Errorf("replay: offsets of the ingest group %s: %w", opts.IngestGroup, err)
	}
	fo.Each(func(o kadm.OffsetResponse) {
		if o.Topic == cfg.Topics.Commands.Name {
			decided[o.Partition] = o.At
		}
	})
	if len(decided) == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("ingest group %s has no committed offsets: commands without an outcome are not looked for", opts.IngestGroup))
	}
	first, end, err := offsets(ctx, adm, cfg.Topics.Events.Name)
	if err != nil {
		return rep, err
	}
	rep.End = end

	// Recompute the views into the scratch keyspace, checking the log on the way.
	if !opts.Keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = s.Query("DROP KEYSPACE IF EXISTS " + opts.Scratch).ExecContext(dctx)
		}()
	}
	if err := emptyScratch(ctx, s, opts.Scratch); err != nil {
		return rep, err
	}
	check := newLogCheck()
	streams := newStreamModel()
	var mu sync.Mutex
	lastData := map[int32]int64{}
	hooks := &passHooks{noCommit: true, keep: func(p int32, rec *kgo.Record) bool {
		mu.Lock()
		last, seen := lastData[p]
		lastData[p] = max(last, rec.Offset)
		mu.Unlock()
		if only != nil && !only[string(rec.Key)] {
			return false
		}
		// A batch whose writes failed is handed over again: check each
		// record once.
		again := seen && rec.Offset <= last
		ev := new(pb.Event)
		if err := proto.Unmarshal(rec.Value, ev); err != nil {
			if !again {
				check.undecodable(p, rec.Offset, err)
			}
			return true
		}
		if !again {
			check.event(p, rec.Offset, ev)
			streams.event(ev)
		}
		return true
	}}
	ropts := RebuildOptions{To: opts.Scratch, Group: prefix + "parley-verify", MaxBatch: opts.MaxBatch,
		WriteParallelism: opts.WriteParallelism, MixedBatches: opts.MixedBatches}
	if _, err := apply(ctx, cfg, s, adm, ropts, first, end, hooks); err != nil {
		return rep, err
	}
	rep.Events = check.events
	rep.Conversations = len(check.convs)

	complete, err := readCommands(ctx, cfg, adm, only, decided, check)
	if err != nil {
		return rep, err
	}
	rep.Commands = len(check.commands)
	if !complete {
		rep.Notes = append(rep.Notes, "the commands topic no longer holds its oldest commands (retention): events are not checked for a command")
	}
	rep.Log = check.finish(complete)

	// Compare with the live views once the live projector has caught up.
	if opts.LiveGroup != "-" {
		if err := waitCheckpoints(ctx, s, opts.Live, opts.LiveGroup, lastData, opts.Wait); err != nil {
			return rep, err
		}
	}
	ids := []string(nil)
	if only != nil {
		ids = slices.Sorted(maps.Keys(only))
	}
	live, err := loadViews(ctx, s, opts.Live, ids, streams)
	if err != nil {
		return rep, err
	}
	want, err := loadViews(ctx, s, opts.Scratch, ids, streams)
	if err != nil {
		return rep, err
	}
	diffs := diffViews(live, want)
	rep.Unread = checkUnread(live, check)
	actions := checkActions(live, check)
	governance := checkGovernance(live, check)
	streamDiffs := checkStreams(live, streams, only)
	attachments := checkAttachments(live, check)
	if len(diffs) > 0 || len(rep.Unread) > 0 || len(actions) > 0 || len(governance) > 0 || len(streamDiffs) > 0 || len(attachments) > 0 {
		// Differences in conversations that moved on since the end offsets
		// were read are expected: report them apart.
		moved, err := touchedSince(ctx, cfg, adm, end)
		if err != nil {
			return rep, err
		}
		for _, d := range diffs {
			if moved[d.conv] {
				rep.Skipped = append(rep.Skipped, d.text)
			} else {
				rep.Views = append(rep.Views, d.text)
			}
		}
		for _, d := range actions {
			if moved[d.conv] {
				rep.Skipped = append(rep.Skipped, d.text)
			} else {
				rep.Actions = append(rep.Actions, d.text)
			}
		}
		for _, d := range governance {
			if moved[d.conv] {
				rep.Skipped = append(rep.Skipped, d.text)
			} else {
				rep.Governance = append(rep.Governance, d.text)
			}
		}
		for _, d := range streamDiffs {
			if moved[d.conv] {
				rep.Skipped = append(rep.Skipped, d.text)
			} else {
				rep.Streams = append(rep.Streams, d.text)
			}
		}
		for _, d := range attachments {
			if moved[d.conv] {
				rep.Skipped = append(rep.Skipped, d.text)
			} else {
				rep.Attachments = append(rep.Attachments, d.text)
			}
		}
		rep.Unread = slices.DeleteFunc(rep.Unread, func(l string) bool {
			for id := range moved {
				if strings.Contains(l, " "+id+":") {
					return true
				}
			}
			return false
		})
	}
	if !rep.OK() {
		return rep, ErrDifferences
	}
	return rep, nil
}

// readCommands feeds every command of the commands topic (of the chosen
// conversations) to check. It reports whether the topic still starts at
// offset 0 in every partition.
func readCommands(ctx context.Context, cfg Config, adm *kadm.Client, only map[string]bool, decided map[int32]int64, check *logCheck) (bool, error) {
	first, end, err := offsets(ctx, adm, cfg.Topics.Commands.Name)
	if err != nil {
		return false, err
	}
	complete := true
	for _, o := range first {
		complete = complete && o == 0
	}
	r := newReader(cfg, cfg.Topics.Commands.Name, first, end, false, 5000)
	err = r.run(ctx, func(_ context.Context, p int32, recs []*kgo.Record, _ int64) error {
		for _, rec := range recs {
			if only != nil && !only[string(rec.Key)] {
				continue
			}
			cmd := new(pb.Command)
			if proto.Unmarshal(rec.Value, cmd) != nil || cmd.GetCommandId() == "" {
				continue // the decider dead-letters it; it has no outcome to check
			}
			d, ok := decided[p]
			check.command(p, rec.Offset, cmd, ok && rec.Offset < d)
		}
		return nil
	})
	return complete, err
}

// touchedSince returns the conversations with events after end.
func touchedSince(ctx context.Context, cfg Config, adm *kadm.Client, end map[int32]int64) (map[string]bool, error) {
	_, now, err := offsets(ctx, adm, cfg.Topics.Events.Name)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	var mu sync.Mutex
	r := newReader(cfg, cfg.Topics.Events.Name, end, now, false, 5000)
	err = r.run(ctx, func(_ context.Context, _ int32, recs []*kgo.Record, _ int64) error {
		mu.Lock()
		defer mu.Unlock()
		for _, rec := range recs {
			out[string(rec.Key)] = true
		}
		return nil
	})
	return out, err
}

// waitCheckpoints waits until group's checkpoints in keyspace reach last
// (the offset of each partition's last record).
func waitCheckpoints(ctx context.Context, s *gocql.Session, keyspace, group string, last map[int32]int64, wait time.Duration) error {
	tables, err := projector.NewTables(s, keyspace)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		got, err := tables.Checkpoints(ctx, group)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		behind := []string{}
		for _, p := range sortedPartitions(last) {
			if got[p] < last[p] {
				behind = append(behind, fmt.Sprintf("partition %d at %d of %d", p, got[p], last[p]))
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replay: the projector %s has not applied the log to %s after %v: %s (is it running? set the live group)",
				group, keyspace, wait, strings.Join(behind, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Rows of the views: per table, the row's name (its primary key) → column →
// value as CQL JSON.
type table struct {
	name string
	key  []string // primary key columns, in order
}

var viewTables = []table{
	{"conversations", []string{"conversation_id"}},
	{"members", []string{"conversation_id", "user_id"}},
	{"inbox", []string{"user_id", "conversation_id"}},
	{"messages", []string{"conversation_id", "bucket", "seq"}},
	{"changes", []string{"conversation_id", "bucket", "version"}},
	{"message_edits", []string{"conversation_id", "message_seq", "edit_number"}},
	{"reactions", []string{"conversation_id", "bucket", "message_seq", "emoji", "user_id"}},
	{"pins", []string{"conversation_id", "message_seq"}},
	{"mentions", []string{"user_id", "conversation_id", "seq"}},
	{"mentions_all", []string{"conversation_id", "seq"}},
	{"replies", []string{"conversation_id", "reply_to_seq", "seq"}},
	{"conversation_prefs", []string{"user_id", "conversation_id"}},
	{"hidden_messages", []string{"user_id", "conversation_id", "seq"}},
	{"history_cleared", []string{"user_id", "conversation_id", "up_to_seq"}},
	{"blocks", []string{"user_id", "blocked_user_id"}},
	{"invites", []string{"conversation_id", "invite_id"}},
	{"join_requests", []string{"conversation_id", "user_id"}},
	{"attachments", []string{"conversation_id", "attachment_id"}},
	{"attachment_blobs", []string{"sha256", "conversation_id", "attachment_id", "role"}},
	{"owner_attachments", []string{"owner_user_id", "conversation_id", "attachment_id"}},
	{"attachment_uploads", []string{"hour", "conversation_id", "attachment_id"}},
	{"push_targets", []string{"user_id", "device_id"}},
	{"bans", []string{"user_id"}},
	{"device_revocations", []string{"user_id", "device_id"}},
	{"webhooks", []string{"user_id", "webhook_id"}},
}

// userTables are the views of the user streams: their rows belong to the
// stream of their user_id (schemas.UserStreamID), not to the conversation
// they name.
var userTables = map[string]bool{"conversation_prefs": true, "hidden_messages": true, "history_cleared": true, "blocks": true, "push_targets": true, "bans": true, "device_revocations": true, "webhooks": true}

// viewTable is the view named name.
func viewTable(name string) table {
	return viewTables[slices.IndexFunc(viewTables, func(t table) bool { return t.name == name })]
}

type row map[string]json.RawMessage

type views map[string]map[string]row // table → row name → row

func rowName(t table, r row) string {
	parts := make([]string, len(t.key))
	for i, k := range t.key {
		parts[i] = k + "=" + string(r[k])
	}
	return t.name + "(" + strings.Join(parts, ", ") + ")"
}

// loadViews reads every row of the views in keyspace, or only those of the
// conversations (and user streams) ids, sorted (single-partition reads):
// the rows of a user stream are read for the user streams knows it of, the
// hidden messages of the conversations it hid messages in.
func loadViews(ctx context.Context, s *gocql.Session, keyspace string, ids []string, streams *streamModel) (views, error) {
	tables, err := projector.NewTables(s, keyspace)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	out := views{}
	add := func(t table, key ...any) error {
		iter, err := tables.RowsJSON(ctx, t.name, key...)
		if err != nil {
			return err
		}
		var js string
		for iter.Scan(&js) {
			r := row{}
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				_ = iter.Close()
				return err
			}
			if out[t.name] == nil {
				out[t.name] = map[string]row{}
			}
			out[t.name][rowName(t, r)] = r
		}
		if err := iter.Close(); err != nil {
			return fmt.Errorf("replay: read %s.%s: %w", keyspace, t.name, err)
		}
		return nil
	}
	if ids == nil {
		for _, t := range viewTables {
			if err := add(t); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	conv, members, inbox, messages, changes := viewTables[0], viewTables[1], viewTables[2], viewTables[3], viewTables[4]
	edits, reactions := viewTables[5], viewTables[6]
	pins, mentions, mentionsAll := viewTable("pins"), viewTable("mentions"), viewTable("mentions_all")
	for _, id := range ids {
		for _, t := range []table{conv, members, pins, mentionsAll, viewTable("invites"), viewTable("join_requests"), viewTable("attachments")} {
			if err := add(t, id); err != nil {
				return nil, err
			}
		}
	}
	users := map[string]bool{}
	for _, m := range out["members"] {
		var id, user string
		_ = json.Unmarshal(m["conversation_id"], &id)
		_ = json.Unmarshal(m["user_id"], &user)
		if err := add(inbox, user, id); err != nil {
			return nil, err
		}
		users[user] = true
	}
	// A user's mentions are one partition over all its conversations: read
	// those of every member, current or former, and keep the rows of the
	// chosen conversations.
	for _, u := range slices.Sorted(maps.Keys(users)) {
		if err := add(mentions, u); err != nil {
			return nil, err
		}
	}
	for n, r := range out["mentions"] {
		if _, chosen := slices.BinarySearch(ids, str(r["conversation_id"])); !chosen {
			delete(out["mentions"], n)
		}
	}
	for _, c := range out["conversations"] {
		var id string
		var last, lastVersion int64
		_ = json.Unmarshal(c["conversation_id"], &id)
		_ = json.Unmarshal(c["last_seq"], &last)
		_ = json.Unmarshal(c["last_version"], &lastVersion) // null: 0
		for b := int64(0); b <= schemas.Bucket(last)+1; b++ {
			if err := add(messages, id, b); err != nil {
				return nil, err
			}
			if err := add(reactions, id, b); err != nil {
				return nil, err
			}
		}
		for b := int64(0); b <= schemas.ChangesBucket(lastVersion)+1; b++ {
			if err := add(changes, id, b); err != nil {
				return nil, err
			}
		}
	}
	// The replies of every message some message replies to.
	replied := map[[2]any]bool{}
	for _, m := range out["messages"] {
		if !isNull(m["reply_to_seq"]) {
			replied[[2]any{str(m["conversation_id"]), num(m["reply_to_seq"])}] = true
		}
	}
	for k := range replied {
		if err := add(viewTable("replies"), k[0], k[1]); err != nil {
			return nil, err
		}
	}
	for _, user := range streams.streamUsers(ids) {
		for _, t := range []string{"conversation_prefs", "blocks", "push_targets", "bans", "device_revocations", "webhooks"} {
			if err := add(viewTable(t), user); err != nil {
				return nil, err
			}
		}
		for _, k := range streams.hiddenKeys(user) {
			for _, t := range []string{"hidden_messages", "history_cleared"} {
				if err := add(viewTable(t), k.user, k.conv); err != nil {
					return nil, err
				}
			}
		}
	}
	// A message's edits, for every message edited or recalled (a recall
	// deletes them: there must be none).
	for _, m := range out["messages"] {
		if isNull(m["edit_count"]) && isNull(m["recalled_by"]) {
			continue
		}
		var id string
		var seq int64
		_ = json.Unmarshal(m["conversation_id"], &id)
		_ = json.Unmarshal(m["seq"], &seq)
		if err := add(edits, id, seq); err != nil {
			return nil, err
		}
	}
	// The indexes of the attachments: by blob, by owner and by upload
	// hour, each one partition over every conversation; keep the rows of
	// the chosen conversations.
	idx := map[string]map[string][]any{}
	for _, a := range out["attachments"] {
		keys := map[string]any{"attachment_blobs": str(a["sha256"]), "owner_attachments": str(a["owner_user_id"])}
		if at, err := time.Parse("2006-01-02 15:04:05.000Z", str(a["uploaded_at"])); err == nil {
			keys["attachment_uploads"] = projector.UploadHour(at)
		}
		for t, k := range keys {
			if idx[t] == nil {
				idx[t] = map[string][]any{}
			}
			idx[t][fmt.Sprint(k)] = []any{k}
		}
		if th := a["thumbnail_sha256"]; !isNull(th) {
			idx["attachment_blobs"][str(th)] = []any{str(th)}
		}
	}
	for _, t := range slices.Sorted(maps.Keys(idx)) {
		for _, k := range slices.Sorted(maps.Keys(idx[t])) {
			if err := add(viewTable(t), idx[t][k]...); err != nil {
				return nil, err
			}
		}
		for n, r := range out[t] {
			if _, chosen := slices.BinarySearch(ids, str(r["conversation_id"])); !chosen {
				delete(out[t], n)
			}
		}
	}
	return out, nil
}

// isNull reports whether a column of a row is null (or absent).
func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

type rowDiff struct {
	conv, text string
}

// diffViews lists every row that differs, naming it and its columns.
func diffViews(live, want views) []rowDiff {
	var out []rowDiff
	for _, t := range viewTables {
		l, w := live[t.name], want[t.name]
		names := map[string]bool{}
		for n := range l {
			names[n] = true
		}
		for n := range w {
			names[n] = true
		}
		for _, n := range slices.Sorted(maps.Keys(names)) {
			lr, lok := l[n]
			wr, wok := w[n]
			var conv string
			r := lr
			if !lok {
				r = wr
			}
			_ = json.Unmarshal(r["conversation_id"], &conv)
			if userTables[t.name] {
				conv = schemas.UserStreamID(str(r["user_id"]))
			}
			switch {
			case !lok:
				out = append(out, rowDiff{conv, n + ": missing in the live views"})
			case !wok:
				out = append(out, rowDiff{conv, n + ": in the live views, not in the log"})
			default:
				var cols []string
				for _, c := range slices.Sorted(maps.Keys(lr)) {
					if string(lr[c]) != string(wr[c]) {
						cols = append(cols, fmt.Sprintf("%s live %s, log %s", c, lr[c], wr[c]))
					}
				}
				for c := range wr {
					if _, ok := lr[c]; !ok {
						cols = append(cols, fmt.Sprintf("%s live absent, log %s", c, wr[c]))
					}
				}
				if len(cols) > 0 {
					out = append(out, rowDiff{conv, n + ": " + strings.Join(cols, "; ")})
				}
			}
		}
	}
	return out
}

// checkUnread compares, for every current member in the live views, the
// unread count the views give (last_seq − read_seq) with the log's.
func checkUnread(live views, check *logCheck) []string {
	var out []string
	lastSeq := map[string]int64{}
	for _, c := range live["conversations"] {
		var id string
		var last int64
		_ = json.Unmarshal(c["conversation_id"], &id)
		_ = json.Unmarshal(c["last_seq"], &last)
		lastSeq[id] = last
	}
	for _, n := range slices.Sorted(maps.Keys(live["members"])) {
		m := live["members"][n]
		var id, user string
		var read int64
		var removed bool
		_ = json.Unmarshal(m["conversation_id"], &id)
		_ = json.Unmarshal(m["user_id"], &user)
		_ = json.Unmarshal(m["read_seq"], &read)
		_ = json.Unmarshal(m["removed"], &removed)
		logLast, logRead, member := check.unread(id, user)
		switch {
		case removed && !member:
		case removed != !member:
			out = append(out, fmt.Sprintf("%s in %s: member by the live views %v, by the log %v", user, id, !removed, member))
		case lastSeq[id]-read != logLast-logRead:
			out = append(out, fmt.Sprintf("%s in %s: unread live %d (last_seq %d − read_seq %d), log %d (%d − %d)",
				user, id, lastSeq[id]-read, lastSeq[id], read, logLast-logRead, logLast, logRead))
		}
	}
	return out
}

// checkActions checks the live views against what the log says of each
// message's actions, beyond equality with a rebuild (which a projector bug
// shared by both would pass):
//
//   - a recalled message has no content in any view: its messages row has
//     null text and content_type and its event is the MessageSent without
//     text and content type; message_edits has no row of it; every changes
//     row of its MessageSent and MessageEdited events holds the event
//     without text and content type; and when it is the conversation's last
//     message, last_message_preview is null;
//   - the reactions rows of each message are the log's: its ReactionAdded
//     minus its ReactionRemoved, none once it is recalled;
//   - each messages row's edit_count is the number of MessageEdited of its
//     message in the log (null when none); a recall keeps it (the projector
//     takes only the content out), so a recalled message keeps its count.
func checkActions(live views, check *logCheck) []rowDiff {
	check.mu.Lock()
	defer check.mu.Unlock()
	var out []rowDiff
	report := func(conv, format string, args ...any) {
		out = append(out, rowDiff{conv, fmt.Sprintf(format, args...)})
	}
	message := func(conv string, seq int64) *messageModel {
		if c := check.convs[conv]; c != nil {
			return c.messages[seq]
		}
		return nil
	}
	// recalled names the recalled message at seq ("" when it is not).
	recalled := func(conv string, seq int64) string {
		if m := message(conv, seq); m != nil && m.recalledBy != "" {
			return fmt.Sprintf("message %d in %s, recalled by %s", seq, conv, m.recalledBy)
		}
		return ""
	}
	rows := func(table string) []row { return sortedRows(live, table) }
	tableOf := viewTable

	for _, r := range rows("messages") {
		id, seq := str(r["conversation_id"]), num(r["seq"])
		var edits int64
		if m := message(id, seq); m != nil {
			edits = m.edits
		}
		if got := r["edit_count"]; isNull(got) != (edits == 0) || (!isNull(got) && num(got) != edits) {
			report(id, "message %d in %s: edit_count live %s, log %s", seq, id, orNull(got), countOrNull(edits))
		}
		what := recalled(id, seq)
		if what == "" {
			continue
		}
		for _, col := range []string{"text", "content_type"} {
			if !isNull(r[col]) {
				report(id, "%s: %s live %s, log null", what, col, r[col])
			}
		}
		if p := contentLeft(r["event"], schemas.TypeMessageSent); p != "" {
			report(id, "%s: its messages row's event %s", what, p)
		}
	}
	for _, r := range rows("message_edits") {
		id := str(r["conversation_id"])
		if what := recalled(id, num(r["message_seq"])); what != "" {
			report(id, "%s: %s is still there", what, rowName(tableOf("message_edits"), r))
		}
	}
	for _, r := range rows("changes") {
		id, typ := str(r["conversation_id"]), str(r["type"])
		if typ != schemas.TypeMessageSent && typ != schemas.TypeMessageEdited {
			continue
		}
		seq := num(r["seq"])
		if typ == schemas.TypeMessageEdited {
			ev, err := decodeEvent(r["event"])
			if err != nil {
				continue // not this check's: the rebuild's comparison names the row
			}
			seq = ev.GetMessageEdited().GetMessageSeq()
		}
		if what := recalled(id, seq); what != "" {
			if p := contentLeft(r["event"], typ); p != "" {
				report(id, "%s: %s: event %s", what, rowName(tableOf("changes"), r), p)
			}
		}
	}
	for _, r := range rows("conversations") {
		id := str(r["conversation_id"])
		if isNull(r["last_message_seq"]) {
			continue
		}
		if what := recalled(id, num(r["last_message_seq"])); what != "" && !isNull(r["last_message_preview"]) {
			report(id, "%s (the last message): last_message_preview live %s, log null", what, r["last_message_preview"])
		}
	}

	// Reactions: the live rows against the log's set, message by message.
	type key struct {
		conv string
		seq  int64
		reaction
	}
	liveSet, logSet := map[key]bool{}, map[key]bool{}
	for _, r := range rows("reactions") {
		liveSet[key{str(r["conversation_id"]), num(r["message_seq"]), reaction{str(r["emoji"]), str(r["user_id"])}}] = true
	}
	for id, c := range check.convs {
		for seq, m := range c.messages {
			for r := range m.reactions {
				logSet[key{id, seq, r}] = true
			}
		}
	}
	var differ []key
	for k := range liveSet {
		if !logSet[k] {
			differ = append(differ, k)
		}
	}
	for k := range logSet {
		if !liveSet[k] {
			differ = append(differ, k)
		}
	}
	slices.SortFunc(differ, func(a, b key) int {
		return cmp.Or(strings.Compare(a.conv, b.conv), cmp.Compare(a.seq, b.seq),
			strings.Compare(a.emoji, b.emoji), strings.Compare(a.user, b.user))
	})
	for _, k := range differ {
		if liveSet[k] {
			report(k.conv, "message %d in %s: reaction %q of %s live, not in the log", k.seq, k.conv, k.emoji, k.user)
		} else {
			report(k.conv, "message %d in %s: reaction %q of %s in the log, missing live", k.seq, k.conv, k.emoji, k.user)
		}
	}
	return out
}

// checkGovernance checks the live views against what the log says of
// mentions and owners, beyond equality with a rebuild:
//
//   - every current member's unread mentions as the views give them — its
//     mentions rows in the conversation with seq > read_seq, plus the
//     conversation's mentions_all rows with seq > read_seq (and > its
//     joined_seq) — are the log's: the messages above its read mark, not
//     recalled, that name it or mention @all while it is a member (not its
//     own);
//   - each group's owner by the members rows (role 'owner', not removed) is
//     the log's; a direct conversation, and a group nobody is left in, has
//     none;
//   - each conversation's closed and deleted cells are the log's
//     (ConversationClosed not reopened since, ConversationDeleted), and
//     every inbox row of a deleted conversation's final members says
//     deleted.
//
// Members that are current by one side only are checkUnread's to report.
func checkGovernance(live views, check *logCheck) []rowDiff {
	check.mu.Lock()
	defer check.mu.Unlock()
	var out []rowDiff
	report := func(conv, format string, args ...any) {
		out = append(out, rowDiff{conv, fmt.Sprintf(format, args...)})
	}
	type userConv struct{ user, conv string }
	explicit, all := map[userConv][]int64{}, map[string][]int64{}
	for _, r := range sortedRows(live, "mentions") {
		k := userConv{str(r["user_id"]), str(r["conversation_id"])}
		explicit[k] = append(explicit[k], num(r["seq"]))
	}
	for _, r := range sortedRows(live, "mentions_all") {
		all[str(r["conversation_id"])] = append(all[str(r["conversation_id"])], num(r["seq"]))
	}
	owners := map[string][]string{}
	for _, r := range sortedRows(live, "members") {
		id, user := str(r["conversation_id"]), str(r["user_id"])
		var removed bool
		_ = json.Unmarshal(r["removed"], &removed)
		if removed {
			continue
		}
		if str(r["role"]) == "owner" {
			owners[id] = append(owners[id], user)
		}
		conv := check.convs[id]
		if conv == nil {
			continue
		}
		want, logRead, member := conv.unreadMentions(user)
		if !member {
			continue
		}
		read, joined := num(r["read_seq"]), num(r["joined_seq"])
		var named, everyone int64
		for _, seq := range explicit[userConv{user, id}] {
			if seq > read {
				named++
			}
		}
		for _, seq := range all[id] {
			if seq > max(read, joined) {
				everyone++
			}
		}
		if named+everyone != want {
			report(id, "%s in %s: unread mentions live %d (%d mentions and %d mentions_all rows above read_seq %d), log %d (above %d)",
				user, id, named+everyone, named, everyone, read, want, logRead)
		}
	}
	for _, r := range sortedRows(live, "conversations") {
		id := str(r["conversation_id"])
		conv := check.convs[id]
		if conv == nil {
			continue
		}
		got, want := owners[id], conv.owners()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			report(id, "owner of %s: live %s, log %s", id, names(got), names(want))
		}
		var closed, deleted bool
		_ = json.Unmarshal(r["closed"], &closed)
		_ = json.Unmarshal(r["deleted"], &deleted)
		if logClosed, logDeleted, _ := check.state(id); closed != logClosed || deleted != logDeleted {
			report(id, "%s: closed %v deleted %v live, closed %v deleted %v by the log", id, closed, deleted, logClosed, logDeleted)
		}
	}
	for _, r := range sortedRows(live, "inbox") {
		id, user := str(r["conversation_id"]), str(r["user_id"])
		conv := check.convs[id]
		if conv == nil || !conv.deleted {
			continue
		}
		var deleted, removed bool
		_ = json.Unmarshal(r["deleted"], &deleted)
		_ = json.Unmarshal(r["removed"], &removed)
		if m := conv.members[user]; m != nil && m.current && !deleted && !removed {
			report(id, "inbox of %s: %s is deleted by the log, listed live", user, id)
		}
	}
	return out
}

// names lists users for people ("none" for none).
func names(users []string) string {
	if len(users) == 0 {
		return "none"
	}
	return strings.Join(users, ", ")
}

// sortedRows are the rows of a table of v, in the order of their names.
func sortedRows(v views, table string) []row {
	t := v[table]
	rs := make([]row, 0, len(t))
	for _, n := range slices.Sorted(maps.Keys(t)) {
		rs = append(rs, t[n])
	}
	return rs
}

// contentLeft says what content of a recalled message an event column
// still holds: "" when it is an event of type typ without text and content
// type.
func contentLeft(v json.RawMessage, typ string) string {
	ev, err := decodeEvent(v)
	if err != nil {
		return err.Error()
	}
	if got := schemas.EventType(ev); got != typ {
		return fmt.Sprintf("is a %s, not a %s", got, typ)
	}
	text, ct := ev.GetMessageSent().GetText(), ev.GetMessageSent().GetContentType()
	if e := ev.GetMessageEdited(); e != nil {
		text, ct = e.GetText(), e.GetContentType()
	}
	switch {
	case text != "":
		return fmt.Sprintf("has text %q", text)
	case ct != "":
		return fmt.Sprintf("has content_type %q", ct)
	}
	return ""
}

// decodeEvent decodes a blob column (CQL JSON: "0x" and hex) holding an
// Event.
func decodeEvent(v json.RawMessage) (*pb.Event, error) {
	var s string
	if isNull(v) || json.Unmarshal(v, &s) != nil {
		return nil, fmt.Errorf("is %s, not an event", orNull(v))
	}
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		return nil, fmt.Errorf("is not a blob: %v", err)
	}
	ev := new(pb.Event)
	if err := proto.Unmarshal(b, ev); err != nil {
		return nil, fmt.Errorf("does not decode as parley.v1.Event: %v", err)
	}
	return ev, nil
}

// str and num read a text and an integer column (null: "" and 0).
func str(v json.RawMessage) (s string) { _ = json.Unmarshal(v, &s); return s }
func num(v json.RawMessage) (n int64)  { _ = json.Unmarshal(v, &n); return n }

func orNull(v json.RawMessage) string {
	if isNull(v) {
		return "null"
	}
	return string(v)
}

func countOrNull(n int64) string {
	if n == 0 {
		return "null"
	}
	return fmt.Sprint(n)
}

// emptyScratch leaves keyspace migrated to the latest version and without
// rows. A keyspace that exists with exactly the embedded migrations recorded
// (a scratch kept from an earlier verify) and no other user types, indexes
// or views has every table but schema_migrations truncated: on one node
// that is about a tenth of the time of dropping the keyspace and making and
// migrating it again. Any other keyspace is dropped, created and migrated.
func emptyScratch(ctx context.Context, s *gocql.Session, keyspace string) error {
	tables, ok, err := migratedTables(ctx, s, keyspace)
	if err != nil {
		return err
	}
	if ok {
		for _, t := range tables {
			if t == "schema_migrations" {
				continue
			}
			if err := s.Query("TRUNCATE " + keyspace + "." + t).ExecContext(ctx); err != nil {
				return fmt.Errorf("replay: truncate %s.%s: %w", keyspace, t, err)
			}
		}
		return nil
	}
	if err := s.Query("DROP KEYSPACE IF EXISTS " + keyspace).ExecContext(ctx); err != nil {
		return fmt.Errorf("replay: drop %s: %w", keyspace, err)
	}
	if err := schemas.CreateKeyspace(ctx, s, keyspace, ""); err != nil {
		return err
	}
	return schemas.Migrate(ctx, s, keyspace)
}

// The table a migration statement creates, and the column one adds.
var (
	createdTable = regexp.MustCompile(`(?i)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+\$\{keyspace\}\.(\w+)`)
	addedColumn  = regexp.MustCompile(`(?i)^ALTER\s+TABLE\s+\$\{keyspace\}\.(\w+)\s+ADD\s+IF\s+NOT\s+EXISTS\s+(\w+)`)
)

// migratedTables returns the tables of keyspace and whether it is what
// Migrate makes: schema_migrations records every embedded migration with
// its checksum and nothing else, every table the migrations create and
// every column their ALTERs add is there, and there are no user types,
// indexes or views.
func migratedTables(ctx context.Context, s *gocql.Session, keyspace string) ([]string, bool, error) {
	ks := strings.ToLower(keyspace)
	var tables []string
	iter := s.Query("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", ks).IterContext(ctx)
	var name string
	for iter.Scan(&name) {
		tables = append(tables, name)
	}
	if err := iter.Close(); err != nil {
		return nil, false, fmt.Errorf("replay: tables of %s: %w", keyspace, err)
	}
	if !slices.Contains(tables, "schema_migrations") {
		return tables, false, nil
	}
	for _, q := range []string{
		"SELECT type_name FROM system_schema.types WHERE keyspace_name = ?",
		"SELECT index_name FROM system_schema.indexes WHERE keyspace_name = ?",
		"SELECT view_name FROM system_schema.views WHERE keyspace_name = ?",
	} {
		iter := s.Query(q, ks).IterContext(ctx)
		n := iter.NumRows()
		if err := iter.Close(); err != nil {
			return nil, false, fmt.Errorf("replay: schema of %s: %w", keyspace, err)
		}
		if n > 0 {
			return tables, false, nil
		}
	}
	ms, err := schemas.Migrations()
	if err != nil {
		return nil, false, err
	}
	recorded := map[int]string{}
	iter = s.Query(fmt.Sprintf("SELECT version, checksum FROM %s.schema_migrations", keyspace)).IterContext(ctx)
	var (
		v   int
		sum string
	)
	for iter.Scan(&v, &sum) {
		recorded[v] = sum
	}
	if err := iter.Close(); err != nil {
		return nil, false, fmt.Errorf("replay: %s.schema_migrations: %w", keyspace, err)
	}
	if len(recorded) != len(ms) {
		return tables, false, nil
	}
	for _, m := range ms {
		if recorded[m.Version] != m.Checksum {
			return tables, false, nil
		}
	}
	have := map[string]map[string]bool{}
	iter = s.Query("SELECT table_name, column_name FROM system_schema.columns WHERE keyspace_name = ?", ks).IterContext(ctx)
	var table, column string
	for iter.Scan(&table, &column) {
		if have[table] == nil {
			have[table] = map[string]bool{}
		}
		have[table][column] = true
	}
	if err := iter.Close(); err != nil {
		return nil, false, fmt.Errorf("replay: columns of %s: %w", keyspace, err)
	}
	for _, m := range ms {
		for _, stmt := range m.Statements {
			if c := createdTable.FindStringSubmatch(stmt); c != nil && have[strings.ToLower(c[1])] == nil {
				return tables, false, nil
			}
			if a := addedColumn.FindStringSubmatch(stmt); a != nil && !have[strings.ToLower(a[1])][strings.ToLower(a[2])] {
				return tables, false, nil
			}
		}
	}
	return tables, true, nil
}
