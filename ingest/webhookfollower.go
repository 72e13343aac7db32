package ingest

import (
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// WebhookFollowerConfig configures a WebhookFollower.
type WebhookFollowerConfig struct {
	Seeds []string
	// Topic is the webhooks topic (schemas.Webhooks).
	Topic string
	// KafkaOptions are applied after the follower's own (TLS, SASL).
	KafkaOptions []kgo.Opt
	Logger       *slog.Logger
}

// HeldWebhook is one webhook as the webhooks topic holds it.
type HeldWebhook struct {
	UserID  string
	Webhook *pb.Webhook
	// Created is its WebhookCreated's occurred_at: the webhook matches the
	// events that occurred from then on.
	Created time.Time
}

// WebhookFollower holds every webhook: it reads the compacted webhooks
// topic from its start and follows it, like BanFollower the bans. The
// webhook dispatcher plans its deliveries from it.
type WebhookFollower struct {
	*follower
	wmu      sync.RWMutex
	webhooks map[string]HeldWebhook // schemas.WebhookKey -> webhook
	// all is webhooks as a list, replaced (never changed) on every
	// change: the planner reads it for every event.
	all []HeldWebhook
}

// NewWebhookFollower connects to Kafka; Run reads.
func NewWebhookFollower(cfg WebhookFollowerConfig) (*WebhookFollower, error) {
	f := &WebhookFollower{webhooks: map[string]HeldWebhook{}}
	var err error
	f.follower, err = newFollower(followerConfig{Seeds: cfg.Seeds, Topic: cfg.Topic, ClientID: "parley-webhooks-follower",
		What: "webhooks", KafkaOptions: cfg.KafkaOptions, Logger: cfg.Logger}, f.apply)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Webhook returns user's webhook id.
func (f *WebhookFollower) Webhook(user, id string) (HeldWebhook, bool) {
	f.wmu.RLock()
	defer f.wmu.RUnlock()
	w, ok := f.webhooks[schemas.WebhookKey(user, id)]
	return w, ok
}

// All returns every webhook held, by owner and id. The slice is shared:
// read it, do not change it.
func (f *WebhookFollower) All() []HeldWebhook {
	f.wmu.RLock()
	defer f.wmu.RUnlock()
	return f.all
}

// changed rebuilds all after a change of webhooks (wmu held).
func (f *WebhookFollower) changed() {
	f.all = slices.SortedFunc(maps.Values(f.webhooks), func(a, b HeldWebhook) int {
		return strings.Compare(schemas.WebhookKey(a.UserID, a.Webhook.GetWebhookId()), schemas.WebhookKey(b.UserID, b.Webhook.GetWebhookId()))
	})
}

func (f *WebhookFollower) apply(r *kgo.Record) {
	key := string(r.Key)
	if r.Value == nil {
		f.wmu.Lock()
		delete(f.webhooks, key)
		f.changed()
		f.wmu.Unlock()
		return
	}
	var ev pb.Event
	if err := proto.Unmarshal(r.Value, &ev); err != nil {
		f.log.Error("webhooks: undecodable record skipped", "offset", r.Offset, "err", err)
		return
	}
	w := ev.GetWebhookCreated().GetWebhook()
	user := ev.GetActorUserId()
	if w == nil || schemas.WebhookKey(user, w.GetWebhookId()) != key || strings.ContainsRune(user, 0) {
		f.log.Error("webhooks: a record that is no WebhookCreated of its key skipped", "offset", r.Offset)
		return
	}
	f.wmu.Lock()
	f.webhooks[key] = HeldWebhook{UserID: user, Webhook: w, Created: ev.GetOccurredAt().AsTime()}
	f.changed()
	f.wmu.Unlock()
}
