package scan

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/parley-im/parley/schemas/deploy"
)

// Config says where clamd listens. An empty Address turns scanning off.
type Config struct {
	// Network is "tcp" or "unix"; Address is host:port or a socket path.
	Network, Address string
	// Timeout bounds one scan (DefaultTimeout).
	Timeout time.Duration
}

// Enabled reports whether c names a clamd.
func (c Config) Enabled() bool { return c.Address != "" }

// Clamd is the client of the clamd c names.
func (c Config) Clamd() *Clamd {
	return &Clamd{Network: c.Network, Address: c.Address, Timeout: c.Timeout}
}

// ParseAddress reads "tcp:host:port" or "unix:/path/to/clamd.ctl".
func ParseAddress(s string) (network, address string, err error) {
	network, address, ok := strings.Cut(s, ":")
	switch {
	case !ok || address == "":
	case network == "unix":
		return network, address, nil
	case network == "tcp":
		if host, port, err := net.SplitHostPort(address); err == nil && host != "" && port != "" {
			return network, address, nil
		}
	}
	return "", "", fmt.Errorf("%q: want tcp:host:port or unix:/path/to/socket", s)
}

// FromEnv reads the virus scanning settings (listed with their defaults in
// the top-level README, "Settings"):
//
//	PARLEY_GATEWAY_CLAMD          tcp:host:port or unix:/path; empty (default): no scanning
//	PARLEY_GATEWAY_CLAMD_TIMEOUT  bound of one scan (default 1m)
//
// A malformed address is the error; a malformed timeout is reported by
// e.Err, with the other settings read through e.
func FromEnv(e *deploy.Env) (Config, error) {
	c := Config{Timeout: e.Duration("PARLEY_GATEWAY_CLAMD_TIMEOUT", DefaultTimeout)}
	addr := e.String("PARLEY_GATEWAY_CLAMD", "")
	if addr == "" {
		return c, nil
	}
	network, address, err := ParseAddress(addr)
	if err != nil {
		return c, fmt.Errorf("PARLEY_GATEWAY_CLAMD=%w", err)
	}
	c.Network, c.Address = network, address
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c, nil
}
