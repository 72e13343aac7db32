package deploy

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads a main's settings from environment variables, collecting every
// malformed value so a main reports them all at once and refuses to start,
// rather than running with a value it did not mean. Every name read is
// remembered (Names) with its default, for the settings table in the README.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
	names  []Setting
}

// Setting is one variable read through an Env.
type Setting struct{ Name, Default string }

// NewEnv reads the process environment.
func NewEnv() *Env { return &Env{lookup: os.LookupEnv} }

// EnvFunc reads through getenv, an empty value meaning unset (commands
// that take their environment as a function).
func EnvFunc(getenv func(string) string) *Env {
	return &Env{lookup: func(k string) (string, bool) { v := getenv(k); return v, v != "" }}
}

// EnvFrom reads from a map (tests).
func EnvFrom(m map[string]string) *Env {
	return &Env{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

func (e *Env) get(name, def string) (string, bool) {
	e.names = append(e.names, Setting{name, def})
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return def, false
	}
	return v, true
}

func (e *Env) fail(name, v, want string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%q: want %s", name, v, want))
}

// String is the value of name, or def when unset or empty.
func (e *Env) String(name, def string) string {
	v, _ := e.get(name, def)
	return v
}

// Required is the value of name; unset is an error.
func (e *Env) Required(name string) string {
	v, ok := e.get(name, "")
	if !ok {
		e.errs = append(e.errs, fmt.Errorf("%s is required", name))
	}
	return v
}

// List is a comma-separated list (empty items dropped), or def.
func (e *Env) List(name string, def ...string) []string {
	v, ok := e.get(name, strings.Join(def, ","))
	if !ok {
		return def
	}
	return SplitList(v)
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Int is a whole number ≥ 0, or def.
func (e *Env) Int(name string, def int) int {
	v, ok := e.get(name, strconv.Itoa(def))
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.fail(name, v, "a whole number ≥ 0")
		return def
	}
	return n
}

// Float is a number ≥ 0, or def.
func (e *Env) Float(name string, def float64) float64 {
	v, ok := e.get(name, strconv.FormatFloat(def, 'g', -1, 64))
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		e.fail(name, v, "a number ≥ 0")
		return def
	}
	return f
}

// Duration is a Go duration ("500ms", "6s", "24h") ≥ 0, or def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v, ok := e.get(name, def.String())
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.fail(name, v, "a duration such as 500ms, 6s or 24h")
		return def
	}
	return d
}

// Bool is true/false/1/0, or def.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.get(name, strconv.FormatBool(def))
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, v, "true or false")
		return def
	}
	return b
}

// Secret is the content of the file name_FILE (a trailing newline
// dropped), or else the value of name; nil when neither is set. An
// unreadable file is an error of Err, which never quotes the secret.
func (e *Env) Secret(name string) []byte {
	if f := e.String(name+"_FILE", ""); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s_FILE: %w", name, err))
			return nil
		}
		return []byte(strings.TrimRight(string(b), "\r\n"))
	}
	v, ok := e.lookup(name)
	e.names = append(e.names, Setting{name, ""})
	if !ok || strings.TrimSpace(v) == "" {
		return nil
	}
	return []byte(strings.TrimSpace(v))
}

// Err is every malformed or missing setting, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Names is every setting read so far, in order.
func (e *Env) Names() []Setting { return append([]Setting(nil), e.names...) }

// Membership reads the consumer-group settings shared by every main:
// PARLEY_INSTANCE_ID (static membership; default def, "" for dynamic),
// PARLEY_GROUP_SESSION_TIMEOUT and PARLEY_GROUP_HEARTBEAT_INTERVAL.
func (e *Env) Membership(defInstance string) Membership {
	return Membership{
		InstanceID:        e.String("PARLEY_INSTANCE_ID", defInstance),
		SessionTimeout:    e.Duration("PARLEY_GROUP_SESSION_TIMEOUT", DefaultSessionTimeout),
		HeartbeatInterval: e.Duration("PARLEY_GROUP_HEARTBEAT_INTERVAL", 0),
	}
}

// Cassandra reads the Cassandra client settings shared by every main. The
// password is a Secret: PARLEY_CASSANDRA_PASSWORD_FILE names a file that
// holds it (a mounted secret), else PARLEY_CASSANDRA_PASSWORD is the value.
func (e *Env) Cassandra() Cassandra {
	return Cassandra{
		Hosts:       e.List("PARLEY_CASSANDRA_HOSTS", "127.0.0.1:9042"),
		Timeout:     e.Duration("PARLEY_CASSANDRA_TIMEOUT", 10*time.Second),
		Consistency: e.String("PARLEY_CASSANDRA_CONSISTENCY", "LOCAL_QUORUM"),
		Username:    e.String("PARLEY_CASSANDRA_USERNAME", ""),
		Password:    string(e.Secret("PARLEY_CASSANDRA_PASSWORD")),
		CAFile:      e.String("PARLEY_CASSANDRA_TLS_CA", ""),
		CertFile:    e.String("PARLEY_CASSANDRA_TLS_CERT", ""),
		KeyFile:     e.String("PARLEY_CASSANDRA_TLS_KEY", ""),
		ServerName:  e.String("PARLEY_CASSANDRA_TLS_SERVER_NAME", ""),
	}
}
