package projector

import (
	"context"
	"errors"
	"fmt"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// revocationsView: the revoked devices of each user, ((user_id),
// device_id), from the user's stream: DeviceRevoked writes the whole row,
// DeviceRestored deletes it, both at the stream's version clock, so the row
// is the stream's newest event about the device in any order of
// application. Read by query (Revocation), which refuses a token naming a
// revoked device.
type revocationsView struct {
	insert, remove, selectDevice string
	rows                         jsonRows
}

func newRevocations(keyspace string) revocationsView {
	return revocationsView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.device_revocations (user_id, device_id, reason, revoked_by, version) VALUES (?, ?, ?, ?, ?)
			USING TIMESTAMP ?`),
		remove:       qualify(keyspace, `DELETE FROM ${keyspace}.device_revocations USING TIMESTAMP ? WHERE user_id = ? AND device_id = ?`),
		selectDevice: qualify(keyspace, `SELECT reason, revoked_by, version FROM ${keyspace}.device_revocations WHERE user_id = ? AND device_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.device_revocations`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.device_revocations WHERE user_id = ?`), keyArity: 1,
		},
	}
}

func revocationsPart(user string) string { return "device_revocations\x00" + user }

func (v revocationsView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	user, ver := ev.GetActorUserId(), ev.GetVersion()
	ts := versionTS(ver)
	switch b := ev.GetBody().(type) {
	case *pb.Event_DeviceRevoked:
		r := b.DeviceRevoked
		return []stmt{{v.insert, []any{user, r.GetDeviceId(), nullable(r.GetReason()), ev.GetActorService(), ver, ts}, revocationsPart(user), "", ts}}, nil
	case *pb.Event_DeviceRestored:
		return []stmt{{v.remove, []any{ts, user, b.DeviceRestored.GetDeviceId()}, revocationsPart(user), "", ts}}, nil
	}
	return nil, nil
}

// Revocation is a row of the device_revocations view: a revoked device.
type Revocation struct {
	Reason    string
	RevokedBy string // the service principal that revoked
	Version   int64  // the user stream's version of the revocation
}

// Revocation reads the revocation of user's device (found false: the
// device is not revoked).
func (t *Tables) Revocation(ctx context.Context, user, device string) (r Revocation, found bool, err error) {
	var reason *string
	err = t.s.Query(t.revocations.selectDevice, user, device).ScanContext(ctx, &reason, &r.RevokedBy, &r.Version)
	if errors.Is(err, gocql.ErrNotFound) {
		return Revocation{}, false, nil
	}
	if err != nil {
		return Revocation{}, false, fmt.Errorf("projector: read revocation: %w", err)
	}
	if reason != nil {
		r.Reason = *reason
	}
	return r, true, nil
}
