package replay

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// janitorDevice is the device id of the gateway janitor's commands.
const janitorDevice = "parley-janitor"

// attachment is a new attachment of owner as a gateway builds it from an
// upload's bytes (schemas.CheckAttachment holds): a JPEG with its image
// info, mostly with a thumbnail; a voice note; a video; or a file, its
// name cleaned. Attachments of the same n share their bytes (sha256), as
// the same file uploaded twice.
func (g *generator) attachment(owner string) *pb.Attachment {
	g.next++
	n := g.rng.IntN(200)
	a := &pb.Attachment{AttachmentId: fmt.Sprintf("%032x", 1<<60+g.next), OwnerUserId: owner, Sha256: fmt.Sprintf("%064x", n+1),
		Size: int64(1000 + 37*n), UploadedAt: timestamppb.New(time.Now().Add(-time.Duration(g.rng.IntN(3)) * time.Hour))}
	switch n % 4 {
	case 0:
		a.Kind, a.ContentType, a.Name = pb.AttachmentKind_ATTACHMENT_KIND_IMAGE, "image/jpeg", fmt.Sprintf("IMG_%04d.jpg", n)
		a.Image = &pb.ImageInfo{Width: 4032, Height: 3024, Orientation: int32(1 + n%8), LocationStripped: n%3 == 0}
		if n%5 != 0 { // none could be made now and then
			a.Thumbnail = &pb.Thumbnail{Sha256: fmt.Sprintf("%064x", 1<<20+n), ContentType: "image/jpeg", Width: 512, Height: 384,
				Size: int64(300 + n)}
		}
	case 1:
		a.Kind, a.ContentType, a.Name = pb.AttachmentKind_ATTACHMENT_KIND_AUDIO, "audio/ogg", "voice note.ogg"
		a.Audio = &pb.AudioInfo{DurationMs: int64(1000 * (1 + n%30)), Waveform: []byte{0, 40, 200, 255, 90, 12}}
	case 2:
		a.Kind, a.ContentType, a.Name = pb.AttachmentKind_ATTACHMENT_KIND_VIDEO, "video/mp4", "clip.mp4"
		a.Video = &pb.VideoInfo{DurationMs: int64(500 * (1 + n%20)), Width: 1920, Height: 1080}
	default:
		a.Kind, a.ContentType = pb.AttachmentKind_ATTACHMENT_KIND_FILE, "application/pdf"
		a.Name = schemas.CleanFileName(fmt.Sprintf("../reports/Q%d résumé.pdf", n%4+1))
	}
	return a
}

// upload: the gateway records an upload of a member (UploadAttachment);
// now and then the same one again (no event). Refused: an attachment
// owned by another user, a malformed one, another attachment under an id
// in use, an upload by a non-member.
func (g *generator) upload(c *genConv, cmd *pb.Command) []*pb.Command {
	u := cmd.GetUserId()
	a, valid := g.attachment(u), true
	switch r := g.rng.IntN(40); {
	case r == 0:
		a.OwnerUserId, valid = u+"x", false
	case r == 1:
		a.Sha256, valid = strings.ToUpper(a.GetSha256()), false
	case r == 2 && len(c.uploads) > 0: // another attachment under an id in use
		a.AttachmentId, valid = slices.Sorted(maps.Keys(c.uploads))[0], false
	case r == 3:
		if s := g.stranger(c); s != "" {
			as(cmd, s)
			a.OwnerUserId, u, valid = s, s, false
		}
	}
	cmd.Body = &pb.Command_UploadAttachment{UploadAttachment: &pb.UploadAttachment{Attachment: a}}
	out := []*pb.Command{cmd}
	if valid {
		if c.uploads == nil {
			c.uploads = map[string]*pb.Attachment{}
		}
		c.uploads[a.GetAttachmentId()] = a
		if g.rng.IntN(8) == 0 { // the same upload again, as after a lost answer: recorded already
			again := g.cmd(c.id, u)
			again.Body = cmd.Body
			out = append(out, again)
		}
	}
	return out
}

// uploadsOf lists the unsent uploads of u in c, sorted by id.
func (c *genConv) uploadsOf(u string) []*pb.Attachment {
	var out []*pb.Attachment
	for _, id := range slices.Sorted(maps.Keys(c.uploads)) {
		if a := c.uploads[id]; a.GetOwnerUserId() == u {
			out = append(out, a)
		}
	}
	return out
}

// attach makes m, a send by u, carry some of u's unsent uploads (a third
// of the sends when u has some), sometimes without a caption; or, now
// and then, an upload of another member or an id never uploaded
// (ATTACHMENT_NOT_FOUND). It returns the attachments the send carries if
// it is accepted, and false when it is refused for them.
func (g *generator) attach(c *genConv, u string, m *pb.SendMessage) ([]*pb.Attachment, bool) {
	mine := c.uploadsOf(u)
	switch r := g.rng.IntN(30); {
	case r == 0:
		var others []string
		for _, id := range slices.Sorted(maps.Keys(c.uploads)) {
			if c.uploads[id].GetOwnerUserId() != u {
				others = append(others, id)
			}
		}
		if len(others) > 0 {
			m.AttachmentIds = []string{others[g.rng.IntN(len(others))]}
			return nil, false
		}
	case r == 1:
		g.next++
		m.AttachmentIds = []string{fmt.Sprintf("%032x", 1<<61+g.next)}
		return nil, false
	case r < 12 && len(mine) > 0:
		var atts []*pb.Attachment
		for _, i := range g.rng.Perm(len(mine))[:1+g.rng.IntN(min(len(mine), 3))] {
			atts = append(atts, mine[i])
			m.AttachmentIds = append(m.AttachmentIds, mine[i].GetAttachmentId())
		}
		if g.rng.IntN(3) == 0 {
			m.Text = "" // the attachments alone
		}
		return atts, true
	}
	return nil, true
}

// withAttachments returns, half of the time, a recent message of c that
// carries attachments, else (or when there is none) m.
func (g *generator) withAttachments(c *genConv, m *genMessage) *genMessage {
	if g.rng.IntN(2) == 0 {
		return m
	}
	var with []*genMessage
	for _, r := range c.recent {
		if len(r.atts) > 0 {
			with = append(with, r)
		}
	}
	if len(with) == 0 {
		return m
	}
	return with[g.rng.IntN(len(with))]
}

// sendAttachments records that a send accepted in c carried atts.
func (c *genConv) sendAttachments(atts []*pb.Attachment) {
	for _, a := range atts {
		delete(c.uploads, a.GetAttachmentId())
	}
}

// expire: the gateway's janitor asks to expire an upload of c, as its
// owner (ExpireAttachment): mostly one not sent, which goes (the decider's
// TTL is short); sometimes one sent or an id never uploaded (no event).
func (g *generator) expire(c *genConv, cmd *pb.Command) {
	cmd.DeviceId = janitorDevice
	var id string
	switch r := g.rng.IntN(10); {
	case r < 7 && len(c.uploads) > 0:
		ids := slices.Sorted(maps.Keys(c.uploads))
		id = ids[g.rng.IntN(len(ids))]
		cmd.UserId = c.uploads[id].GetOwnerUserId()
		delete(c.uploads, id)
	case r < 9:
		for _, m := range c.recent {
			if len(m.atts) > 0 {
				id, cmd.UserId = m.atts[0].GetAttachmentId(), m.sender
			}
		}
	}
	if id == "" {
		g.next++
		id = fmt.Sprintf("%032x", 1<<62+g.next)
	}
	cmd.Body = &pb.Command_ExpireAttachment{ExpireAttachment: &pb.ExpireAttachment{AttachmentId: id}}
}

// copies are the forwarder's copies of atts, as the gateway makes them
// for a forward: new ids, owned by user, uploaded now, the same bytes.
func (g *generator) copies(atts []*pb.Attachment, user string) []*pb.Attachment {
	var out []*pb.Attachment
	for _, a := range atts {
		c := proto.Clone(a).(*pb.Attachment)
		g.next++
		c.AttachmentId, c.OwnerUserId, c.UploadedAt = fmt.Sprintf("%032x", 1<<59+g.next), user, timestamppb.Now()
		out = append(out, c)
	}
	return out
}

// attachmentCounts are the attachment commands the workload appended and
// the events they came to.
type attachmentCounts struct {
	uploads, sends, expiries, forwards int // commands: uploads, sends and forwards with attachments, expiries
	recorded, copies                   int // AttachmentUploaded of uploads, of forwards' copies
	sent, sentAttachments              int // MessageSent with attachments, and their attachments
	expired, recalled                  int // AttachmentDeleted by reason
}

// event counts an event of the log; cmd is the command it names.
func (n *attachmentCounts) event(ev *pb.Event, cmd *pb.Command) {
	switch b := ev.GetBody().(type) {
	case *pb.Event_AttachmentUploaded:
		if cmd.GetUploadAttachment() != nil {
			n.recorded++
		} else {
			n.copies++
		}
	case *pb.Event_MessageSent:
		if k := len(b.MessageSent.GetAttachments()); k > 0 {
			n.sent++
			n.sentAttachments += k
		}
	case *pb.Event_AttachmentDeleted:
		if b.AttachmentDeleted.GetReason() == pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_EXPIRED {
			n.expired++
		} else {
			n.recalled++
		}
	}
}

// command counts a command appended.
func (n *attachmentCounts) command(cmd *pb.Command) {
	switch {
	case cmd.GetUploadAttachment() != nil:
		n.uploads++
	case len(cmd.GetSendMessage().GetAttachmentIds()) > 0:
		n.sends++
	case len(cmd.GetForwardMessage().GetAttachments()) > 0:
		n.forwards++
	case cmd.GetExpireAttachment() != nil:
		n.expiries++
	}
}

func (n attachmentCounts) String() string {
	return fmt.Sprintf("%d uploads → %d recorded; %d sends with attachments and %d forwards of messages with attachments → "+
		"%d sent (%d attachments, %d of them forwarded copies); %d expiries → %d deleted as expired; %d deleted with their recalled message",
		n.uploads, n.recorded, n.sends, n.forwards, n.sent, n.sentAttachments, n.copies, n.expiries, n.expired, n.recalled)
}
