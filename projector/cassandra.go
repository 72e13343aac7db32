package projector

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// newSession connects to Cassandra. The session is not bound to a keyspace:
// every statement names its tables in full.
func newSession(cfg Config) (*gocql.Session, error) {
	c := gocql.NewCluster(cfg.Hosts...)
	c.Consistency = cfg.Consistency
	c.Timeout = cfg.CassandraTimeout
	c.ConnectTimeout = cfg.CassandraTimeout
	// Contact points given as host:port all on one port: use it for the
	// nodes the driver discovers too (it would assume 9042).
	if p := commonPort(cfg.Hosts); p != 0 {
		c.Port = p
	}
	c.Logger = slogCQL{cfg.Logger.With("component", "gocql")}
	s, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("projector: cassandra session (hosts %v): %w", cfg.Hosts, err)
	}
	return s, nil
}

func commonPort(hosts []string) int {
	port := 0
	for _, h := range hosts {
		_, ps, err := net.SplitHostPort(h)
		if err != nil {
			return 0
		}
		p, err := strconv.Atoi(ps)
		if err != nil || (port != 0 && p != port) {
			return 0
		}
		port = p
	}
	return port
}

// slogCQL passes the driver's warnings and errors to slog; its info and
// debug lines (every connection event) are dropped.
type slogCQL struct{ log *slog.Logger }

func (l slogCQL) attrs(fields []gocql.LogField) []any {
	out := make([]any, 0, len(fields))
	for _, f := range fields {
		out = append(out, slog.Any(f.Name, f.Value.Any()))
	}
	return out
}

func (l slogCQL) Error(msg string, fields ...gocql.LogField) {
	l.log.Error(msg, l.attrs(fields)...)
}

func (l slogCQL) Warning(msg string, fields ...gocql.LogField) {
	l.log.Warn(msg, l.attrs(fields)...)
}

func (slogCQL) Info(string, ...gocql.LogField)  {}
func (slogCQL) Debug(string, ...gocql.LogField) {}
