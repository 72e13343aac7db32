package notify

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// views are the reads the planner makes (projector.Tables).
type views interface {
	Conversation(ctx context.Context, id string) (projector.Conversation, bool, error)
	Members(ctx context.Context, conv string) ([]projector.Member, error)
	ConversationPrefs(ctx context.Context, user string) (map[string]projector.Prefs, error)
	PushTargets(ctx context.Context, user string) ([]projector.PushTarget, error)
	UnreadTotal(ctx context.Context, user string) (int64, error)
}

// planner turns an event into the pushes it causes. It reads the views as
// they are once the projector has applied the event (the caller waits for
// that), and asks connected whether a device has a session.
type planner struct {
	views     views
	preview   Preview
	connected func(user, device string, now time.Time) bool
	// providers are the providers with a sender: a target of another is
	// skipped (and counted).
	providers map[pb.PushProvider]bool
	skipped   func(reason string)
}

// maxPreviewBytes bounds a push's body: providers cap a whole payload at
// 4 KiB, and a lock screen shows far less.
const maxPreviewBytes = 240

// planWorkers bounds the concurrent reads for the members of one group.
const planWorkers = 16

// plan returns the pushes of ev, at now.
func (p *planner) plan(ctx context.Context, ev *pb.Event, now time.Time) ([]*pb.PushNotification, error) {
	switch b := ev.GetBody().(type) {
	case *pb.Event_MessageSent:
		return p.message(ctx, ev, b.MessageSent, now)
	case *pb.Event_ReadUpTo:
		// The reader's other devices: their notifications of the
		// conversation are cleared, their badge set.
		return p.forUsers(ctx, ev, []string{ev.GetActorUserId()}, now, func(n *pb.PushNotification) bool {
			n.Kind, n.Seq = pb.PushNotificationKind_PUSH_NOTIFICATION_KIND_CLEAR, b.ReadUpTo.GetUpToSeq()
			return n.GetTarget().GetDeviceId() != ev.GetActorDeviceId()
		})
	case *pb.Event_MessageRecalled:
		seq := b.MessageRecalled.GetMessageSeq()
		members, err := p.views.Members(ctx, ev.GetConversationId())
		if err != nil {
			return nil, err
		}
		// Those who had not read it may show its notification.
		var users []string
		for _, m := range members {
			if !m.Removed && m.UserID != b.MessageRecalled.GetSenderUserId() && m.ReadSeq < seq {
				users = append(users, m.UserID)
			}
		}
		return p.forUsers(ctx, ev, users, now, func(n *pb.PushNotification) bool {
			n.Kind, n.Seq = pb.PushNotificationKind_PUSH_NOTIFICATION_KIND_CLEAR, seq
			return true
		})
	}
	return nil, nil
}

// message plans the pushes of a MessageSent: every other member's
// disconnected devices, except in a conversation the member muted, unless
// the message mentions the member by name.
func (p *planner) message(ctx context.Context, ev *pb.Event, m *pb.MessageSent, now time.Time) ([]*pb.PushNotification, error) {
	conv := ev.GetConversationId()
	// The members and the conversation (its title, for the preview) at
	// once.
	var (
		members []projector.Member
		c       = projector.Conversation{ID: conv}
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		members, err = p.views.Members(gctx, conv)
		return err
	})
	if p.preview != PreviewNone {
		g.Go(func() (err error) {
			c, _, err = p.views.Conversation(gctx, conv)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sender := ev.GetActorUserId()
	var users []string
	for _, mem := range members {
		if !mem.Removed && mem.UserID != sender {
			users = append(users, mem.UserID)
		}
	}
	title, body := p.texts(c, sender, m)
	return p.forUsers(ctx, ev, users, now, func(n *pb.PushNotification) bool {
		n.Kind, n.Seq, n.Title, n.Body = pb.PushNotificationKind_PUSH_NOTIFICATION_KIND_MESSAGE, ev.GetSeq(), title, body
		n.Mention = slices.Contains(m.GetMentionUserIds(), n.GetUserId())
		return true
	}, func(ctx context.Context, user string) (bool, error) {
		if slices.Contains(m.GetMentionUserIds(), user) {
			return true, nil // a mention is pushed even when muted
		}
		prefs, err := p.views.ConversationPrefs(ctx, user)
		if err != nil {
			return false, err
		}
		if prefs[conv].MutedAt(now) {
			p.skipped("muted")
			return false, nil
		}
		return true, nil
	})
}

// texts are a message push's title and body under the preview setting.
func (p *planner) texts(c projector.Conversation, sender string, m *pb.MessageSent) (title, body string) {
	if p.preview == PreviewNone {
		return "", ""
	}
	group := schemas.IsGroupConversationID(c.ID) || c.Kind == "group"
	title = sender
	if group {
		title = c.Title
		if title == "" {
			title = "Group"
		}
	}
	text := clipText(schemas.MessagePreviewText(m.GetText(), m.GetAttachments()), maxPreviewBytes)
	if p.preview == PreviewSender {
		text = "New message"
	}
	if group {
		return title, sender + ": " + text
	}
	return title, text
}

// forUsers builds the pushes of ev for the disconnected devices of users
// with a target of a configured provider: fill sets the kind and the
// content and says whether the device gets one; allow, when given, can
// leave a user out after its targets were found (read only then, as the
// badge is, both at once).
func (p *planner) forUsers(ctx context.Context, ev *pb.Event, users []string, now time.Time,
	fill func(*pb.PushNotification) bool, allow ...func(context.Context, string) (bool, error)) ([]*pb.PushNotification, error) {
	var (
		mu  sync.Mutex
		out []*pb.PushNotification
	)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(planWorkers)
	for _, user := range users {
		g.Go(func() error {
			targets, err := p.views.PushTargets(ctx, user)
			if err != nil || len(targets) == 0 {
				return err
			}
			var mine []*pb.PushNotification
			for _, t := range targets {
				n := &pb.PushNotification{UserId: user, Target: targetOf(t), ConversationId: ev.GetConversationId(),
					Collapse: ev.GetConversationId(), EventAt: ev.GetOccurredAt(), Version: ev.GetVersion()}
				if !fill(n) {
					continue
				}
				if !p.providers[n.GetTarget().GetProvider()] {
					p.skipped("no_provider")
					continue
				}
				if p.connected(user, t.DeviceID, now) {
					p.skipped("connected")
					continue
				}
				n.Id = notificationID(ev, n)
				mine = append(mine, n)
			}
			if len(mine) == 0 {
				return nil
			}
			// Whether the user is left out and the badge, at once: the
			// unread total is read in vain only for a user left out.
			var (
				denied atomic.Bool
				badge  int64
			)
			ug, uctx := errgroup.WithContext(ctx)
			for _, a := range allow {
				ug.Go(func() error {
					ok, err := a(uctx, user)
					if err == nil && !ok {
						denied.Store(true)
					}
					return err
				})
			}
			ug.Go(func() (err error) {
				badge, err = p.views.UnreadTotal(uctx, user)
				return err
			})
			if err := ug.Wait(); err != nil || denied.Load() {
				return err
			}
			for _, n := range mine {
				n.Badge = badge
			}
			mu.Lock()
			out = append(out, mine...)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *pb.PushNotification) int {
		return cmp.Or(strings.Compare(a.GetUserId(), b.GetUserId()), strings.Compare(a.GetTarget().GetDeviceId(), b.GetTarget().GetDeviceId()))
	})
	return out, nil
}

// notificationID is the same for the same event, kind and device however
// often it is planned.
func notificationID(ev *pb.Event, n *pb.PushNotification) string {
	h := sha256.New()
	for _, s := range []string{ev.GetConversationId(), strconv.FormatInt(ev.GetVersion(), 10), strconv.FormatInt(ev.GetSeq(), 10),
		n.GetKind().String(), n.GetUserId(), n.GetTarget().GetDeviceId()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// targetOf is the protobuf form of a push_targets row.
func targetOf(t projector.PushTarget) *pb.PushTarget {
	out := &pb.PushTarget{DeviceId: t.DeviceID, Token: t.Token, ApnsTopic: t.APNSTopic, Endpoint: t.Endpoint,
		P256Dh: t.P256DH, Auth: t.Auth}
	if v, ok := pb.PushProvider_value["PUSH_PROVIDER_"+strings.ToUpper(t.Provider)]; ok {
		out.Provider = pb.PushProvider(v)
	}
	if v, ok := pb.ApnsEnvironment_value["APNS_ENVIRONMENT_"+strings.ToUpper(t.APNSEnvironment)]; ok {
		out.ApnsEnvironment = pb.ApnsEnvironment(v)
	}
	if t.Locale != "" {
		out.Locale = &t.Locale
	}
	if !t.RegisteredAt.IsZero() {
		out.RegisteredAt = timestamppb.New(t.RegisteredAt)
	}
	return out
}

// clipText cuts s to at most n bytes at a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
