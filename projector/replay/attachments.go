package replay

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/parley-im/parley/projector"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// checkAttachments checks the live attachment views against what the log
// says of each attachment (logCheck's model), beyond equality with a
// rebuild (which a projector bug shared by both would pass):
//
//   - every attachments row is an attachment the log recorded in its
//     conversation, and every attachment the log recorded has a row;
//   - its message_seq is the MessageSent that carried it (null: not sent)
//     and its deleted_reason the log's AttachmentDeleted (null: none);
//   - a row not deleted — one the gateway serves — belongs to a message
//     that is not recalled and carries it, or is an upload not sent yet:
//     no served attachment lacks a live reference;
//   - its attachment_blobs rows (the file, and the thumbnail when it has
//     one), its owner_attachments row and its attachment_uploads row
//     exist, name it as the log does, and are deleted exactly when the log
//     deleted it (a blob row left live keeps bytes nobody may fetch; one
//     deleted under a served attachment lets its bytes be collected); the
//     attachment_uploads row lists it as pending (neither sent nor
//     deleted) exactly while the log does, which is what the janitor
//     expires.
//
// Rows of conversations the log check did not read are not looked at.
func checkAttachments(live views, check *logCheck) []rowDiff {
	check.mu.Lock()
	defer check.mu.Unlock()
	var out []rowDiff
	report := func(conv, format string, args ...any) {
		out = append(out, rowDiff{conv, fmt.Sprintf(format, args...)})
	}
	type key struct{ conv, id string }
	// model returns the log's attachment, and whether its conversation
	// was read.
	model := func(conv, id string) (*attachmentModel, bool) {
		c := check.convs[conv]
		if c == nil {
			return nil, false
		}
		return c.attachments[id], true
	}
	deleted := func(a *attachmentModel) bool {
		return a.deleted != pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_UNSPECIFIED
	}
	name := func(k key) string { return fmt.Sprintf("attachment %s of %s", k.id, k.conv) }

	rows := map[key]bool{}
	for _, r := range sortedRows(live, "attachments") {
		k := key{str(r["conversation_id"]), str(r["attachment_id"])}
		a, read := model(k.conv, k.id)
		switch {
		case !read:
			continue
		case a == nil:
			report(k.conv, "%s: a row in the live views, not recorded in the log", name(k))
			continue
		}
		rows[k] = true
		if owner := str(r["owner_user_id"]); owner != a.att.GetOwnerUserId() {
			report(k.conv, "%s: owner_user_id live %s, log %s", name(k), orNull(r["owner_user_id"]), quotedOrNull(a.att.GetOwnerUserId()))
		}
		if seq := num(r["message_seq"]); seq != a.sentSeq {
			report(k.conv, "%s: message_seq live %s, log %s", name(k), orNull(r["message_seq"]), countOrNull(a.sentSeq))
		}
		reason, want := str(r["deleted_reason"]), ""
		if deleted(a) {
			want = deletedName(a.deleted)
		}
		if reason != want {
			report(k.conv, "%s: deleted_reason live %s, log %s", name(k), orNull(r["deleted_reason"]), quotedOrNull(want))
		}
		// Served: it must have a live reference, its message (an upload
		// not sent yet is its owner's to send; the columns above say
		// whether the log agrees).
		if seq := num(r["message_seq"]); reason == "" && seq != 0 {
			msg := check.convs[k.conv].messages[seq]
			switch {
			case msg == nil || !slices.Contains(msg.attachments, k.id):
				report(k.conv, "%s: served as an attachment of message %d, which does not carry it by the log", name(k), seq)
			case msg.recalledBy != "":
				report(k.conv, "%s: served, but its message %d was recalled by %s: no live message references it", name(k), seq, msg.recalledBy)
			}
		}
	}
	for _, conv := range slices.Sorted(maps.Keys(check.convs)) {
		c := check.convs[conv]
		for _, id := range slices.Sorted(maps.Keys(c.attachments)) {
			if !rows[key{conv, id}] {
				report(conv, "%s: recorded in the log, no row in the live views", name(key{conv, id}))
			}
		}
	}

	// The indexes: every row names an attachment of the log and says
	// deleted (or pending) as the log does; every attachment has its rows.
	seen := map[string]bool{}
	flag := func(v json.RawMessage) bool {
		var b bool
		_ = json.Unmarshal(v, &b)
		return b
	}
	index := func(table string, check func(k key, a *attachmentModel, r row) string) {
		for _, r := range sortedRows(live, table) {
			k := key{str(r["conversation_id"]), str(r["attachment_id"])}
			a, read := model(k.conv, k.id)
			n := rowName(viewTable(table), r)
			switch {
			case !read:
				continue
			case a == nil:
				report(k.conv, "%s: %s names no attachment the log recorded", n, name(k))
				continue
			}
			seen[n] = true
			if p := check(k, a, r); p != "" {
				report(k.conv, "%s: %s", n, p)
			}
		}
	}
	deletedCol := func(a *attachmentModel, r row, what string) string {
		if got := flag(r["deleted"]); got != deleted(a) {
			return fmt.Sprintf("deleted live %v, log %v (%s)", got, deleted(a), what)
		}
		return ""
	}
	index("attachment_blobs", func(k key, a *attachmentModel, r row) string {
		sha := a.att.GetSha256()
		if str(r["role"]) == "thumbnail" {
			sha = a.att.GetThumbnail().GetSha256()
		}
		if str(r["sha256"]) != sha {
			return fmt.Sprintf("the %s of %s is %s by the log", str(r["role"]), name(k), quotedOrNull(sha))
		}
		return deletedCol(a, r, "a blob is collected once every row of it is deleted")
	})
	index("owner_attachments", func(k key, a *attachmentModel, r row) string {
		if str(r["owner_user_id"]) != a.att.GetOwnerUserId() {
			return fmt.Sprintf("%s is %s's by the log", name(k), a.att.GetOwnerUserId())
		}
		return deletedCol(a, r, "the owner's quota counts what is not deleted")
	})
	index("attachment_uploads", func(k key, a *attachmentModel, r row) string {
		livePending, logPending := !flag(r["sent"]) && !flag(r["deleted"]), a.sentSeq == 0 && !deleted(a)
		if livePending != logPending {
			return fmt.Sprintf("pending (neither sent nor deleted) live %v, log %v (what the janitor expires)", livePending, logPending)
		}
		return ""
	})
	for _, conv := range slices.Sorted(maps.Keys(check.convs)) {
		c := check.convs[conv]
		for _, id := range slices.Sorted(maps.Keys(c.attachments)) {
			a := c.attachments[id].att
			want := []string{
				rowName(viewTable("attachment_blobs"), jsonRow("sha256", a.GetSha256(), "conversation_id", conv, "attachment_id", id, "role", "file")),
				rowName(viewTable("owner_attachments"), jsonRow("owner_user_id", a.GetOwnerUserId(), "conversation_id", conv, "attachment_id", id)),
				rowName(viewTable("attachment_uploads"), jsonRow("hour", projector.UploadHour(a.GetUploadedAt().AsTime()), "conversation_id", conv,
					"attachment_id", id)),
			}
			if th := a.GetThumbnail(); th != nil {
				want = append(want, rowName(viewTable("attachment_blobs"), jsonRow("sha256", th.GetSha256(), "conversation_id", conv,
					"attachment_id", id, "role", "thumbnail")))
			}
			for _, n := range want {
				if !seen[n] {
					report(conv, "%s: missing in the live views (%s is recorded in the log)", n, name(key{conv, id}))
				}
			}
		}
	}
	return out
}

// jsonRow is a row of columns and values, as CQL JSON gives them.
func jsonRow(kv ...any) row {
	r := row{}
	for i := 0; i < len(kv); i += 2 {
		b, _ := json.Marshal(kv[i+1])
		r[kv[i].(string)] = b
	}
	return r
}

func quotedOrNull(s string) string {
	if s == "" {
		return "null"
	}
	return fmt.Sprintf("%q", s)
}
