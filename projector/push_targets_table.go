package projector

import (
	"context"
	"fmt"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// pushTargetsView: where each device of a user gets its pushes,
// ((user_id), device_id), from the user's stream: PushTargetRegistered
// inserts the whole row — every column, those its provider does not use
// written null — and PushTargetUnregistered deletes it, both at the user
// stream's version clock (every cell of the table is on it). So a
// registration replacing another (a new token, another provider) leaves
// nothing of the old one, and the row is the stream's newest event for
// the device in any order of application: a registration replayed after
// the unregistration that followed it stays below the deletion, a later
// registration is above it. Read by the notifier (PushTargets).
type pushTargetsView struct {
	insert, remove string
	selectUser     string
	rows           jsonRows
}

func newPushTargets(keyspace string) pushTargetsView {
	return pushTargetsView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.push_targets (user_id, device_id, provider, device_token, apns_topic,
			apns_environment, endpoint, p256dh, auth, locale, registered_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			USING TIMESTAMP ?`),
		remove: qualify(keyspace, `DELETE FROM ${keyspace}.push_targets USING TIMESTAMP ? WHERE user_id = ? AND device_id = ?`),
		selectUser: qualify(keyspace, `SELECT device_id, provider, device_token, apns_topic, apns_environment, endpoint, p256dh, auth,
			locale, registered_at, version FROM ${keyspace}.push_targets WHERE user_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.push_targets`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.push_targets WHERE user_id = ?`), keyArity: 1,
		},
	}
}

func pushTargetsPart(user string) string { return "push_targets\x00" + user }

// nullable is s, or nil (null) when empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func apnsEnvironmentName(e pb.ApnsEnvironment) string {
	if e == pb.ApnsEnvironment_APNS_ENVIRONMENT_UNSPECIFIED || pb.ApnsEnvironment_name[int32(e)] == "" {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(e.String(), "APNS_ENVIRONMENT_"))
}

func (v pushTargetsView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	user, ver := ev.GetActorUserId(), ev.GetVersion()
	ts := versionTS(ver)
	switch b := ev.GetBody().(type) {
	case *pb.Event_PushTargetRegistered:
		t := b.PushTargetRegistered.GetTarget()
		var locale, registered any
		if t.Locale != nil {
			locale = t.GetLocale()
		}
		if t.GetRegisteredAt() != nil {
			registered = t.GetRegisteredAt().AsTime()
		}
		return []stmt{{v.insert, []any{user, t.GetDeviceId(), schemas.ProviderName(t.GetProvider()), nullable(t.GetToken()),
			nullable(t.GetApnsTopic()), nullable(apnsEnvironmentName(t.GetApnsEnvironment())), nullable(t.GetEndpoint()),
			nullable(t.GetP256Dh()), nullable(t.GetAuth()), locale, registered, ver, ts}, pushTargetsPart(user), t.GetDeviceId(), ts}}, nil
	case *pb.Event_PushTargetUnregistered:
		dev := b.PushTargetUnregistered.GetDeviceId()
		return []stmt{{v.remove, []any{ts, user, dev}, pushTargetsPart(user), dev, ts}}, nil
	}
	return nil, nil
}

// PushTarget is a row of the push_targets view: where one device of the
// reader gets its pushes. Provider and ApnsEnvironment are the lower-case
// names ("fcm", "apns", "web_push", "webhook"; "sandbox", "production");
// fields its provider does not use are empty.
type PushTarget struct {
	DeviceID        string
	Provider        string
	Token           string
	APNSTopic       string
	APNSEnvironment string
	Endpoint        string
	P256DH, Auth    string
	Locale          string // "": the user's default
	RegisteredAt    time.Time
	// Version is the user stream's version of the registration.
	Version int64
}

// PushTargets reads the push targets of user's devices, by device id (one
// partition).
func (t *Tables) PushTargets(ctx context.Context, user string) ([]PushTarget, error) {
	iter := t.s.Query(t.pushTargets.selectUser, user).IterContext(ctx)
	var out []PushTarget
	var p PushTarget
	var token, topic, env, endpoint, p256dh, auth, locale *string
	var registered *time.Time
	for iter.Scan(&p.DeviceID, &p.Provider, &token, &topic, &env, &endpoint, &p256dh, &auth, &locale, &registered, &p.Version) {
		deref := func(s *string) string {
			if s == nil {
				return ""
			}
			return *s
		}
		p.Token, p.APNSTopic, p.APNSEnvironment, p.Endpoint = deref(token), deref(topic), deref(env), deref(endpoint)
		p.P256DH, p.Auth, p.Locale = deref(p256dh), deref(auth), deref(locale)
		if registered != nil {
			p.RegisteredAt = *registered
		}
		out = append(out, p)
		p, registered = PushTarget{}, nil
		token, topic, env, endpoint, p256dh, auth, locale = nil, nil, nil, nil, nil, nil, nil
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read push targets: %w", err)
	}
	return out, nil
}
