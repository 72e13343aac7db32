package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// TestReplay drives 10,000 random commands on 60 conversations through the
// real decider and projector, then rebuilds, verifies, tampers, interrupts and switches
// against the views they produced.
func TestReplay(t *testing.T) {
	w := newWorld(t, 10_000, 60, true)
	v2 := testenv.Cassandra(t).Keyspace // rebuilt once, then served
	// Verify's scratch: kept (Keep) between the checks below, so that each
	// check after the first empties it rather than making it anew.
	scratch := testenv.Cassandra(t).Keyspace

	t.Run("Attachments", func(t *testing.T) {
		// The workload leaves rows of every kind in the attachment views,
		// so Rebuild and Verify compare real ones.
		live, err := loadViews(context.Background(), w.s, w.cfg.Keyspace, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := w.attachments
		var sent, unsent, expired, recalled int
		for _, r := range live["attachments"] {
			switch str(r["deleted_reason"]) {
			case "expired":
				expired++
			case "recalled":
				recalled++
			default:
				if isNull(r["message_seq"]) {
					unsent++
				} else {
					sent++
				}
			}
		}
		t.Logf("attachments rows: %d served and sent, %d served and not sent yet, %d expired, %d recalled; %d attachment_blobs, "+
			"%d owner_attachments, %d attachment_uploads rows", sent, unsent, expired, recalled, len(live["attachment_blobs"]),
			len(live["owner_attachments"]), len(live["attachment_uploads"]))
		if got := len(live["attachments"]); got != n.recorded+n.copies {
			t.Errorf("%d attachments rows, want %d (%d uploads recorded, %d forwarded copies)", got, n.recorded+n.copies, n.recorded, n.copies)
		}
		if expired != n.expired || recalled != n.recalled {
			t.Errorf("%d expired and %d recalled rows, want %d and %d", expired, recalled, n.expired, n.recalled)
		}
		if sent == 0 || unsent == 0 || expired == 0 || recalled == 0 || n.copies == 0 {
			t.Errorf("want rows of every kind: %d sent, %d unsent, %d expired, %d recalled, %d forwarded copies", sent, unsent, expired, recalled, n.copies)
		}
		for _, table := range []string{"attachment_blobs", "owner_attachments", "attachment_uploads"} {
			if len(live[table]) < len(live["attachments"]) {
				t.Errorf("%d rows in %s, want at least one per attachment (%d)", len(live[table]), table, len(live["attachments"]))
			}
		}
	})

	t.Run("Rebuild", func(t *testing.T) {
		cfg := w.cfg
		var progress testenv.SyncBuffer
		cfg.Progress, cfg.ProgressEvery = &progress, 100*time.Millisecond
		res, err := Rebuild(context.Background(), cfg, RebuildOptions{To: v2})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rebuilt %d events in %v (%.0f events/s)", res.Events, res.Elapsed, res.Rate())
		if res.Events != w.events || res.Poison != 0 {
			t.Errorf("applied %d events (%d poison), want %d", res.Events, res.Poison, w.events)
		}
		w.sameViews(t, w.cfg.Keyspace, v2)
		if out := progress.String(); !strings.Contains(out, "events/s") || !strings.Contains(out, fmt.Sprintf("%d events applied", w.events)) {
			t.Errorf("progress output:\n%s", out)
		}
		// Done: the group's offsets are at the end, so the next run applies nothing.
		again, err := Rebuild(context.Background(), w.cfg, RebuildOptions{To: v2})
		if err != nil || again.Events != 0 {
			t.Errorf("second run applied %d events (%v), want 0", again.Events, err)
		}
		if _, err := Rebuild(context.Background(), w.cfg, RebuildOptions{To: w.cfg.Keyspace}); err == nil {
			t.Error("rebuilt into the base keyspace")
		}
	})

	t.Run("RebuildFrom", func(t *testing.T) {
		ctx := context.Background()
		// From a time after the last event: nothing to apply.
		res, err := Rebuild(ctx, w.cfg, RebuildOptions{To: testenv.Cassandra(t).Keyspace, From: time.Now().UTC().Format(time.RFC3339)})
		if err != nil || res.Events != 0 {
			t.Errorf("from now: %v, %d events", err, res.Events)
		}
		// From offset 100 of every partition, then from 0:100 only.
		res, err = Rebuild(ctx, w.cfg, RebuildOptions{To: testenv.Cassandra(t).Keyspace, From: "100"})
		if err != nil || res.Events == 0 || res.Events >= w.events-int64(len(res.Start))*50 {
			t.Errorf("from offset 100: %v, %d of %d events", err, res.Events, w.events)
		}
		res, err = Rebuild(ctx, w.cfg, RebuildOptions{To: testenv.Cassandra(t).Keyspace, From: "0:100"})
		if err != nil || res.Start[0] != 100 || res.Start[1] != 0 || res.Events >= w.events {
			t.Errorf("from 0:100: %v, start %v, %d events", err, res.Start, res.Events)
		}
		// A group with committed offsets resumes; a -from is refused.
		if _, err := Rebuild(ctx, w.cfg, RebuildOptions{To: v2, From: "start"}); err == nil || !strings.Contains(err.Error(), "committed offsets") {
			t.Errorf("-from with committed offsets: %v", err)
		}
	})

	t.Run("Verify", func(t *testing.T) {
		rep, err := Verify(context.Background(), w.cfg, VerifyOptions{Scratch: scratch, Keep: true})
		var out bytes.Buffer
		rep.Write(&out)
		t.Logf("\n%s", out.String())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Events != w.events || rep.Commands != w.gen.commands || rep.Conversations != len(w.gen.convs) {
			t.Errorf("checked %d events, %d commands, %d conversations; want %d, %d, %d",
				rep.Events, rep.Commands, rep.Conversations, w.events, w.gen.commands, len(w.gen.convs))
		}
		some := []string{w.gen.convs[0].id, w.gen.convs[40].id}
		rep, err = Verify(context.Background(), w.cfg, VerifyOptions{Scratch: scratch, Keep: true, Conversations: some})
		if err != nil || rep.Conversations != 2 {
			t.Errorf("verify of %v: %v, %d conversations", some, err, rep.Conversations)
		}
		// Streams holding one side only of a forward or a block: the log
		// check asks nothing of the other side.
		some = w.gen.oneSided()
		convs := 0
		for _, id := range some {
			if !schemas.IsUserStreamID(id) {
				convs++
			}
		}
		if len(some) != 4 {
			t.Fatalf("streams with one side of a two-stream decision: %v, want 4", some)
		}
		rep, err = Verify(context.Background(), w.cfg, VerifyOptions{Scratch: scratch, Keep: true, Conversations: some})
		if err != nil || rep.Conversations != convs {
			out.Reset()
			rep.Write(&out)
			t.Errorf("verify of %v: %v, %d conversations, want %d\n%s", some, err, rep.Conversations, convs, out.String())
		}
	})

	t.Run("VerifyTamper", func(t *testing.T) {
		ctx := context.Background()
		ks := w.cfg.Keyspace
		// A member's read mark goes back by one, and a message disappears.
		var conv, user string
		var read int64
		iter := w.s.Query(fmt.Sprintf("SELECT conversation_id, user_id, read_seq FROM %s.members WHERE removed = false AND read_seq > 1 LIMIT 1 ALLOW FILTERING", ks)).Iter()
		iter.Scan(&conv, &user, &read)
		if err := iter.Close(); err != nil || conv == "" {
			t.Fatalf("no member to tamper with: %v", err)
		}
		const seq = 1
		var msg string
		if err := w.s.Query(fmt.Sprintf("SELECT JSON * FROM %s.messages WHERE conversation_id = ? AND bucket = 0 AND seq = ?", ks), conv, seq).Scan(&msg); err != nil {
			t.Fatal(err)
		}
		members := fmt.Sprintf("UPDATE %s.members USING TIMESTAMP ? SET read_seq = ? WHERE conversation_id = ? AND user_id = ?", ks)
		run := func(cql string, args ...any) {
			t.Helper()
			if err := w.s.Query(cql, args...).Exec(); err != nil {
				t.Fatal(err)
			}
		}
		// Above every cell of a message's own clock (the projector's
		// msgTS(seq, sub) = seq<<20 | sub).
		above := func(seq int64) int64 { return (seq + 1) << 20 }
		run(members, read+1, read-1, conv, user)
		run(fmt.Sprintf("DELETE FROM %s.messages USING TIMESTAMP ? WHERE conversation_id = ? AND bucket = 0 AND seq = ?", ks), above(seq), conv, seq)
		// Another message of the conversation gains edits the log does not
		// have, and a reaction.
		var other int64
		var edits *int
		iter = w.s.Query(fmt.Sprintf("SELECT seq, edit_count FROM %s.messages WHERE conversation_id = ? AND bucket = 0 AND seq > ? AND type = ? LIMIT 1 ALLOW FILTERING", ks),
			conv, seq, schemas.TypeMessageSent).Iter()
		iter.Scan(&other, &edits)
		if err := iter.Close(); err != nil || other == 0 {
			t.Fatalf("no other message in %s: %v", conv, err)
		}
		editCount := fmt.Sprintf("UPDATE %s.messages USING TIMESTAMP ? SET edit_count = ? WHERE conversation_id = ? AND bucket = 0 AND seq = ?", ks)
		run(editCount, above(other), 99, conv, other)
		const reactedTS = 1 << 40 // above any version
		run(fmt.Sprintf("INSERT INTO %s.reactions (conversation_id, bucket, message_seq, emoji, user_id, reacted_at) VALUES (?, 0, ?, ':tamper:', ?, ?) USING TIMESTAMP ?", ks),
			conv, other, user, time.Now(), int64(reactedTS))

		memberRow := fmt.Sprintf(`members(conversation_id=%q, user_id=%q)`, conv, user)
		messageRow := fmt.Sprintf(`messages(conversation_id=%q, bucket=0, seq=%d)`, conv, seq)
		otherRow := fmt.Sprintf(`messages(conversation_id=%q, bucket=0, seq=%d)`, conv, other)
		reactionRow := fmt.Sprintf(`reactions(conversation_id=%q, bucket=0, message_seq=%d, emoji=":tamper:", user_id=%q)`, conv, other, user)
		rep, err := Verify(ctx, w.cfg, VerifyOptions{Scratch: scratch, Keep: true})
		var out bytes.Buffer
		rep.Write(&out)
		t.Logf("\n%s", out.String())
		if !errors.Is(err, ErrDifferences) {
			t.Fatalf("verify after tampering: %v, want ErrDifferences", err)
		}
		for _, want := range []string{
			memberRow + fmt.Sprintf(": read_seq live %d, log %d", read-1, read),
			messageRow + ": missing in the live views",
			otherRow + ": edit_count live 99, log ",
			reactionRow + ": in the live views, not in the log",
			fmt.Sprintf("%s in %s: unread live", user, conv),
			fmt.Sprintf("message %d in %s: edit_count live 99, log ", other, conv),
			fmt.Sprintf(`message %d in %s: reaction ":tamper:" of %s live, not in the log`, other, conv, user),
			"DIFFERENCES FOUND",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("report does not say %q", want)
			}
		}
		if len(rep.Views) != 4 || len(rep.Actions) != 2 || len(rep.Log) != 0 {
			t.Errorf("%d view differences, %d action differences, %d log problems; want 4, 2 and 0", len(rep.Views), len(rep.Actions), len(rep.Log))
		}

		// The command, on the chosen conversation: exit status 1, rows named.
		cmd := exec.Command(buildReplay(t), "verify", "-scratch", scratch, "-conversations", conv)
		cmd.Env = append(os.Environ(), "PARLEY_KAFKA_SEEDS="+strings.Join(w.cfg.Seeds, ","),
			"PARLEY_CASSANDRA_HOSTS="+strings.Join(w.cfg.Hosts, ","), "PARLEY_KEYSPACE="+ks,
			"PARLEY_TOPIC_PREFIX="+strings.TrimSuffix(w.sys.Topics.Events.Name, schemas.Events.Name))
		stdout, err := cmd.Output()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("replay verify: %v, want exit status 1\n%s", err, stdout)
		}
		if !strings.Contains(string(stdout), memberRow) || !strings.Contains(string(stdout), messageRow) {
			t.Errorf("replay verify does not name the rows:\n%s", stdout)
		}

		// Undone (above the tampering), verify passes again.
		run(members, read+2, read, conv, user)
		run(fmt.Sprintf("INSERT INTO %s.messages JSON ? USING TIMESTAMP ?", ks), msg, above(seq)+1)
		run(editCount, above(other)+1, edits, conv, other)
		run(fmt.Sprintf("DELETE FROM %s.reactions USING TIMESTAMP ? WHERE conversation_id = ? AND bucket = 0 AND message_seq = ? AND emoji = ':tamper:' AND user_id = ?", ks),
			int64(reactedTS+1), conv, other, user)
		if rep, err := Verify(ctx, w.cfg, VerifyOptions{Scratch: scratch, Keep: true}); err != nil {
			var out bytes.Buffer
			rep.Write(&out)
			t.Errorf("verify after undoing: %v\n%s", err, out.String())
		}
	})

	t.Run("VerifyTamperAttachments", func(t *testing.T) {
		ctx := context.Background()
		ks := w.cfg.Keyspace
		// A served attachment's blob row is marked deleted (its bytes could
		// go), and a recalled one is served again.
		live, err := loadViews(ctx, w.s, ks, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var served, back row
		for _, r := range sortedRows(live, "attachments") {
			switch {
			case served == nil && isNull(r["deleted_reason"]) && !isNull(r["message_seq"]):
				served = r
			case back == nil && str(r["deleted_reason"]) == "recalled":
				back = r
			}
		}
		if served == nil || back == nil {
			t.Fatal("no served or recalled attachment to tamper with")
		}
		run := func(cql string, args ...any) {
			t.Helper()
			if err := w.s.Query(cql, args...).Exec(); err != nil {
				t.Fatal(err)
			}
		}
		// Every attachment cell is at timestamp 1: above it, and back.
		sc, sid, rc, rid := str(served["conversation_id"]), str(served["attachment_id"]), str(back["conversation_id"]), str(back["attachment_id"])
		run(fmt.Sprintf("UPDATE %s.attachment_blobs USING TIMESTAMP 2 SET deleted = true WHERE sha256 = ? AND conversation_id = ? AND attachment_id = ? AND role = 'file'", ks),
			str(served["sha256"]), sc, sid)
		run(fmt.Sprintf("UPDATE %s.attachments USING TIMESTAMP 2 SET deleted_reason = null WHERE conversation_id = ? AND attachment_id = ?", ks), rc, rid)
		rep, err := Verify(ctx, w.cfg, VerifyOptions{Scratch: scratch, Keep: true})
		var out bytes.Buffer
		rep.Write(&out)
		t.Logf("\n%s", out.String())
		if !errors.Is(err, ErrDifferences) {
			t.Fatalf("verify after tampering: %v, want ErrDifferences", err)
		}
		blobRow := fmt.Sprintf(`attachment_blobs(sha256=%q, conversation_id=%q, attachment_id=%q, role="file")`, str(served["sha256"]), sc, sid)
		for _, want := range []string{
			blobRow + ": deleted live true, log null",
			fmt.Sprintf(`attachments(conversation_id=%q, attachment_id=%q): deleted_reason live null, log "recalled"`, rc, rid),
			blobRow + ": deleted live true, log false",
			fmt.Sprintf(`attachment %s of %s: deleted_reason live null, log "recalled"`, rid, rc),
			fmt.Sprintf("attachment %s of %s: served, but its message %d was recalled by ", rid, rc, num(back["message_seq"])),
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("report does not say %q", want)
			}
		}
		if len(rep.Views) != 2 || len(rep.Attachments) != 3 || len(rep.Log) != 0 {
			t.Errorf("%d view differences, %d attachment differences, %d log problems; want 2, 3 and 0", len(rep.Views), len(rep.Attachments), len(rep.Log))
		}
		// Undone (above the tampering), verify passes again.
		run(fmt.Sprintf("DELETE deleted FROM %s.attachment_blobs USING TIMESTAMP 3 WHERE sha256 = ? AND conversation_id = ? AND attachment_id = ? AND role = 'file'", ks),
			str(served["sha256"]), sc, sid)
		run(fmt.Sprintf("UPDATE %s.attachments USING TIMESTAMP 3 SET deleted_reason = 'recalled' WHERE conversation_id = ? AND attachment_id = ?", ks), rc, rid)
		if rep, err := Verify(ctx, w.cfg, VerifyOptions{Scratch: scratch, Keep: true}); err != nil {
			var out bytes.Buffer
			rep.Write(&out)
			t.Errorf("verify after undoing: %v\n%s", err, out.String())
		}
	})

	t.Run("RebuildResume", func(t *testing.T) {
		ks := testenv.Cassandra(t).Keyspace
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var seen atomic.Int64
		stopAt := w.events / 2
		// Small batches, so there are many to interrupt; mixed ones, to
		// show they write the same rows.
		opts := RebuildOptions{To: ks, MaxBatch: 50, MixedBatches: true, hooks: &passHooks{keep: func(int32, *kgo.Record) bool {
			if seen.Add(1) == stopAt {
				cancel() // interrupted mid-way
			}
			return true
		}}}
		first, err := Rebuild(ctx, w.cfg, opts)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted rebuild: %v, want context.Canceled", err)
		}
		committed := w.committed(t, DefaultGroup(w.cfg.Topics, ks))
		_, end, _ := offsets(context.Background(), kadm.NewClient(w.k.Client()), w.cfg.Topics.Events.Name)
		if committed == 0 || committed >= total(end) {
			t.Fatalf("after the interruption %d of %d offsets committed; want some, not all", committed, total(end))
		}
		second, err := Rebuild(context.Background(), w.cfg, RebuildOptions{To: ks, MaxBatch: 50, MixedBatches: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("interrupted after %d events (%d offsets committed), resumed with %d", first.Events, committed, second.Events)
		if second.Events >= w.events || first.Events+second.Events < w.events {
			t.Errorf("runs applied %d + %d events of %d: the second must resume, not start over", first.Events, second.Events, w.events)
		}
		w.sameViews(t, w.cfg.Keyspace, ks)
	})

	t.Run("Switch", func(t *testing.T) {
		// A direct conversation: its members never change.
		c := w.gen.convs[len(w.gen.convs)-1]
		user := c.members[0]
		newest := func() (int, string) {
			var h struct {
				Messages []struct{ Text string } `json:"messages"`
			}
			code := w.get(user, "/v1/conversations/"+c.id+"/messages?limit=5", &h)
			if code != http.StatusOK || len(h.Messages) == 0 {
				return code, ""
			}
			return code, h.Messages[0].Text
		}
		// A message after the rebuild: in the live keyspace, not yet in v2.
		cmd := w.gen.cmd(c.id, user)
		cmd.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: "after-the-rebuild", Text: "after the rebuild"}}
		w.append(cmd)
		testenv.Eventually(t, 30*time.Second, func() string {
			if _, text := newest(); text != "after the rebuild" {
				return "the live keyspace does not show the new message: newest is " + text
			}
			return ""
		})

		// Readers keep reading throughout.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var requests, failures atomic.Int64
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					requests.Add(1)
					if code, _ := newest(); code != http.StatusOK {
						failures.Add(1)
					}
				}
			})
		}
		// A keyspace that is migrated but empty is refused, unless forced.
		empty := testenv.Cassandra(t).Keyspace
		if err := schemas.Migrate(context.Background(), w.s, empty); err != nil {
			t.Fatal(err)
		}
		if _, err := Switch(context.Background(), w.cfg, SwitchOptions{To: empty}); !errors.Is(err, ErrBehind) {
			t.Errorf("switch to an empty keyspace: %v, want ErrBehind", err)
		}
		prev, err := Switch(context.Background(), w.cfg, SwitchOptions{To: v2})
		if err != nil || prev != strings.ToLower(w.cfg.Keyspace) {
			t.Fatalf("switch: %v (previous %q)", err, prev)
		}
		testenv.Eventually(t, 30*time.Second, func() string {
			if _, text := newest(); text == "after the rebuild" {
				return "query still serves the live keyspace"
			}
			return ""
		})
		// A projector on v2 with the rebuild's group takes over where the
		// rebuild stopped, and the message shows again.
		p, err := projector.New(projector.Config{Seeds: w.cfg.Seeds, EventsTopic: w.cfg.Topics.Events.Name,
			DeadLetterTopic: w.cfg.Topics.DeadLetters.Name, Group: DefaultGroup(w.cfg.Topics, v2),
			Hosts: w.cfg.Hosts, Keyspace: v2, Logger: testenv.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		pctx, stopProjector := context.WithCancel(context.Background())
		projected := make(chan error, 1)
		go func() { projected <- p.Run(pctx) }()
		defer func() {
			stopProjector()
			if err := <-projected; err != nil {
				t.Errorf("projector on %s: %v", v2, err)
			}
		}()
		testenv.Eventually(t, 30*time.Second, func() string {
			if _, text := newest(); text != "after the rebuild" {
				return "the caught-up keyspace does not show the new message"
			}
			return ""
		})
		close(stop)
		wg.Wait()
		t.Logf("%d requests during the switch, %d failed", requests.Load(), failures.Load())
		if failures.Load() != 0 || requests.Load() == 0 {
			t.Errorf("%d of %d requests failed across the switch", failures.Load(), requests.Load())
		}
		// Verify follows the pointer: it checks v2, waiting for its projector.
		// Without Keep, the scratch keyspace is gone afterwards.
		if rep, err := Verify(context.Background(), w.cfg, VerifyOptions{Scratch: scratch}); err != nil || rep.Live != strings.ToLower(v2) {
			var out bytes.Buffer
			rep.Write(&out)
			t.Errorf("verify of the served keyspace: %v\n%s", err, out.String())
		}
		var n int
		if err := w.s.Query("SELECT count(*) FROM system_schema.tables WHERE keyspace_name = ?", strings.ToLower(scratch)).Scan(&n); err != nil || n != 0 {
			t.Errorf("scratch keyspace %s has %d tables after a verify without Keep (%v), want none", scratch, n, err)
		}
	})
}

// sameViews fails with the rows that differ between two keyspaces.
func (w *world) sameViews(t *testing.T, a, b string) {
	t.Helper()
	ctx := context.Background()
	va, err := loadViews(ctx, w.s, a, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := loadViews(ctx, w.s, b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, tb := range viewTables {
		rows += len(va[tb.name])
	}
	if rows < int(w.events)/2 {
		t.Fatalf("only %d rows in %s", rows, a)
	}
	diffs := diffViews(va, vb)
	for i, d := range diffs {
		if i == 10 {
			t.Errorf("… %d more", len(diffs)-i)
			break
		}
		t.Errorf("%s vs %s: %s", a, b, d.text)
	}
}

// committed sums the committed offsets of group on the events topic.
func (w *world) committed(t *testing.T, group string) int64 {
	t.Helper()
	fo, err := kadm.NewClient(w.k.Client()).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	fo.Each(func(o kadm.OffsetResponse) {
		if o.Topic == w.cfg.Topics.Events.Name && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// get calls query as user and decodes the answer into out.
func (w *world) get(user, path string, out any) int {
	tok, _ := w.sys.Issuer.Issue(user, "", time.Hour)
	req, _ := http.NewRequest(http.MethodGet, w.sys.QueryURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(b, out) != nil {
		return -resp.StatusCode
	}
	return resp.StatusCode
}

// buildReplay builds the replay command.
func buildReplay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "replay")
	if b, err := exec.Command("go", "build", "-o", bin, "github.com/parley-im/parley/projector/cmd/replay").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return bin
}
