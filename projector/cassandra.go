package projector

import (
	"fmt"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// newSession connects to Cassandra with the deployment's session builder
// (deploy.Cassandra). The session is not bound to a keyspace: every
// statement names its tables in full.
func newSession(cfg Config) (*gocql.Session, error) {
	s, err := cfg.Cassandra.Session()
	if err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	return s, nil
}
