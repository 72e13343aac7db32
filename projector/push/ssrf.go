package push

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// errForbiddenAddress is what the dial-time check answers for an address
// a webhook may not reach.
var errForbiddenAddress = errors.New("address not publicly routable")

// forbiddenPrefixes are address ranges beyond those netip classifies
// (loopback, private, link-local, multicast, unspecified) that a webhook
// must not reach.
var forbiddenPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2002::/16"),       // 6to4, can embed any IPv4 address
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
}

// publicAddress says whether ip is a publicly routable unicast address.
func publicAddress(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// publicOnly is a net.Dialer Control function refusing to connect to
// anything but a public address. It runs after name resolution, on the
// address actually dialed, so a name resolving (or re-resolving) to an
// internal address is caught.
func publicOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", errForbiddenAddress, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !publicAddress(ip) {
		return fmt.Errorf("%w: %s", errForbiddenAddress, host)
	}
	return nil
}
