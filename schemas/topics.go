package schemas

import "time"

// Topic describes one Kafka topic of the Parley contract: everything a
// deployer or an analytics consumer needs to know to create or read it.
type Topic struct {
	Name       string
	Partitions int32
	// Retention is how long records are kept; 0 means forever (retention.ms=-1).
	Retention time.Duration
	// Cleanup is the cleanup.policy: "delete" or "compact".
	Cleanup string
	// Doc is one line for schemas/README.md and for error messages.
	Doc string
	// Configs are further topic configs set at creation.
	Configs map[string]string
}

// DefaultPartitions is the partition count of the keyed topics. Commands,
// events and the ingest changelog MUST share it: a conversation lives in the
// same partition number of each, which is what lets ingest decide a
// conversation from one partition of commands alone.
const DefaultPartitions int32 = 12

var (
	// Commands holds what devices asked for, appended by gateways.
	Commands = Topic{
		Name: "parley.commands", Partitions: DefaultPartitions,
		Retention: 7 * 24 * time.Hour, Cleanup: "delete",
		Doc: "device intents appended by gateways; key = conversation id",
	}
	// Events is the canonical log, written only by ingest, kept forever.
	Events = Topic{
		Name: "parley.events", Partitions: DefaultPartitions,
		Retention: 0, Cleanup: "delete",
		Doc: "canonical facts decided by ingest; key = conversation id; kept forever",
	}
	// IngestState is the compacted changelog ingest restores its decider state from.
	IngestState = Topic{
		Name: "parley.ingest.state", Partitions: DefaultPartitions,
		Retention: 0, Cleanup: "compact",
		Doc: "compacted decider state per conversation, written in the ingest transaction",
		// Compaction only cleans closed segments: roll them hourly (or at
		// 64 MiB) and clean once a fifth is stale, so the time to restore a
		// partition follows the live state, not the age of the log.
		Configs: map[string]string{"segment.ms": "3600000", "segment.bytes": "67108864", "min.cleanable.dirty.ratio": "0.2"},
	}
	// Signals carries ephemeral typing and presence between gateways.
	Signals = Topic{
		Name: "parley.signals", Partitions: DefaultPartitions,
		Retention: 10 * time.Minute, Cleanup: "delete",
		Doc: "ephemeral typing and presence between gateways; never stored in views",
	}
	// Repairs carries requests to re-apply a conversation whose views lost
	// rows (projector/repair); keyed by conversation id, so a request shares
	// the partition number of the conversation's events.
	Repairs = Topic{
		Name: "parley.repairs", Partitions: DefaultPartitions,
		Retention: 24 * time.Hour, Cleanup: "delete",
		Doc: "requests to re-apply a conversation whose views lost rows; private to Parley",
	}
	// Push carries the notifier's planned pushes (PushNotification), one
	// record per device, keyed by user id, with the provider in header
	// HeaderPushProvider; its deliverers read it, one consumer group per
	// provider.
	Push = Topic{
		Name: "parley.push", Partitions: DefaultPartitions,
		Retention: 24 * time.Hour, Cleanup: "delete",
		Doc: "pushes planned by the notifier, one per device; key = user id; private to the notifier",
	}
	// Bans holds every standing ban (UserBanned, keyed by user id; an
	// unban is the user's tombstone), written by ingest in the transaction
	// of the ban's events. Every decider and gateway reads it from the
	// start and follows it, so a ban decided on one partition reaches the
	// deciders of all the others (ingest/README.md, "Bans"). Device
	// revocations ride along, keyed by "<user> <device>" (DeviceRevoked;
	// a restore is the tombstone).
	Bans = Topic{
		Name: "parley.bans", Partitions: 1,
		Retention: 0, Cleanup: "compact",
		Doc:     "standing bans by user id (the UserBanned event) and device revocations by \"<user> <device>\" (DeviceRevoked); tombstone when lifted, written by ingest; compacted",
		Configs: map[string]string{"segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.2"},
	}
	// Webhooks holds every webhook (WebhookCreated, keyed by WebhookKey;
	// a deleted webhook's tombstone), written by ingest in the transaction
	// of the webhook's events. The webhook dispatcher reads it from the
	// start and follows it (projector/notify/README.md, "Webhooks").
	Webhooks = Topic{
		Name: "parley.webhooks", Partitions: 1,
		Retention: 0, Cleanup: "compact",
		Doc:     "outgoing webhooks by owner and id (the WebhookCreated event; tombstone when deleted), written by ingest; compacted",
		Configs: map[string]string{"segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.2"},
	}
	// WebhookDeliveries carries the dispatcher's planned deliveries
	// (WebhookDelivery), keyed by WebhookKey so each webhook's deliveries
	// keep their order; its sender reads it.
	WebhookDeliveries = Topic{
		Name: "parley.webhook-deliveries", Partitions: DefaultPartitions,
		Retention: 24 * time.Hour, Cleanup: "delete",
		Doc: "deliveries planned by the webhook dispatcher, one per (webhook, event); key = owner and webhook id; private to the dispatcher",
	}
	// DeadLetters receives events a side consumer could not process.
	DeadLetters = Topic{
		Name: "parley.deadletters", Partitions: 1,
		Retention: 30 * 24 * time.Hour, Cleanup: "delete",
		Doc: "poison messages from projector and other side consumers, with the failure in headers",
	}
)

// AllTopics lists every topic Parley creates, in provisioning order.
func AllTopics() []Topic { return Prefixed("").All() }

// Record header names carried by every record on commands and events.
const (
	HeaderType          = "parley-type"           // e.g. "MessageSent"; route without decoding
	HeaderSchemaVersion = "parley-schema-version" // major version of the protobuf package, e.g. "1"
)

// HeaderPushProvider names the provider of a parley.push record ("fcm",
// "apns", "web_push", "webhook": schemas.ProviderName).
const HeaderPushProvider = "parley-push-provider"

// SchemaVersion is the value written to HeaderSchemaVersion.
const SchemaVersion = "1"

// TopicSet is one deployment's topics.
type TopicSet struct {
	Commands, Events, IngestState, Signals, Repairs, Push, DeadLetters, Bans Topic
	Webhooks, WebhookDeliveries                                              Topic
}

// Prefixed returns the contract's topics with prefix before each name, so
// several Parley deployments (or test runs) can share one Kafka cluster.
// Every component of a deployment must use the same prefix
// (PARLEY_TOPIC_PREFIX in the mains). Prefixed("") is the contract as is.
func Prefixed(prefix string) TopicSet {
	p := func(t Topic) Topic { t.Name = prefix + t.Name; return t }
	return TopicSet{Commands: p(Commands), Events: p(Events), IngestState: p(IngestState),
		Signals: p(Signals), Repairs: p(Repairs), Push: p(Push), DeadLetters: p(DeadLetters), Bans: p(Bans),
		Webhooks: p(Webhooks), WebhookDeliveries: p(WebhookDeliveries)}
}

// All lists the set's topics in provisioning order.
func (s TopicSet) All() []Topic {
	return []Topic{s.Commands, s.Events, s.IngestState, s.Signals, s.Repairs, s.Push, s.DeadLetters, s.Bans, s.Webhooks, s.WebhookDeliveries}
}
