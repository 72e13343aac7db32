package schemas

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// ServingRow is the row of <base>.serving (cql/0002_serving.cql) that names
// the keyspace query serves the views from.
const ServingRow = "views"

// ServingKeyspace reads the serving pointer of the base keyspace: the
// keyspace it names (lower case, as Cassandra stores unquoted names), or
// base itself when it names none or has no serving table (a keyspace
// migrated before version 2).
func ServingKeyspace(ctx context.Context, s *gocql.Session, base string) (string, error) {
	if err := CheckKeyspace(base); err != nil {
		return "", err
	}
	var ks string
	err := s.Query(fmt.Sprintf("SELECT keyspace_name FROM %s.serving WHERE name = ?", base), ServingRow).ScanContext(ctx, &ks)
	var reqErr gocql.RequestError
	switch {
	case errors.Is(err, gocql.ErrNotFound) || (err == nil && ks == ""):
		return base, nil
	case errors.As(err, &reqErr) && reqErr.Code() == gocql.ErrCodeInvalid:
		return base, nil // unconfigured table
	case err != nil:
		return "", fmt.Errorf("schemas: read the serving pointer in %s: %w", base, err)
	}
	return strings.ToLower(ks), nil
}
