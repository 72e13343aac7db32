package deploy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the reverse proxies (addresses or CIDR prefixes) that
// may tell a listener who the client is and whether it came over TLS, for a
// deployment where TLS ends at the proxy. Only a request whose peer is one
// of them has its X-Forwarded-For and X-Forwarded-Proto believed; from any
// other peer the forwarding headers are removed before a handler sees them,
// so a client cannot claim another address or a TLS it did not use.
// Empty: no proxy is trusted, and the peer is the client.
type TrustedProxies []netip.Prefix

// forwardedHeaders are removed from requests of untrusted peers.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip", "Forwarded"}

// ParseTrustedProxies reads addresses ("10.0.0.7", "::1") and prefixes
// ("10.0.0.0/8").
func ParseTrustedProxies(list []string) (TrustedProxies, error) {
	var out TrustedProxies
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want an IP address or a CIDR prefix", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// TrustedProxies reads name as a comma-separated list of addresses and
// prefixes.
func (e *Env) TrustedProxies(name string) TrustedProxies {
	list := e.List(name)
	p, err := ParseTrustedProxies(list)
	if err != nil {
		e.fail(name, strings.Join(list, ","), "IP addresses or CIDR prefixes, comma-separated")
	}
	return p
}

func (p TrustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, pr := range p {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

type forwardedTLSKey struct{}

// Wrap makes h see the client a trusted proxy forwarded for: r.RemoteAddr
// becomes the client's address (port 0: the proxy does not pass it on), and
// ForwardedTLS reports a proxy's X-Forwarded-Proto of https. The client is
// the rightmost X-Forwarded-For entry that is not itself a trusted proxy
// (entries left of it were written by the client and prove nothing).
func (p TrustedProxies) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, ok := peerAddr(r.RemoteAddr)
		if !ok || !p.trusts(peer) {
			if hasForwarded(r.Header) {
				r = r.Clone(r.Context())
				for _, k := range forwardedHeaders {
					r.Header.Del(k)
				}
			}
			h.ServeHTTP(w, r)
			return
		}
		client := peer
		hops := forwardedFor(r.Header)
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(hops[i])
			if err != nil {
				break // a malformed hop: stop at the last one we could read
			}
			client = a.Unmap()
			if !p.trusts(client) {
				break
			}
		}
		ctx := r.Context()
		if protos := r.Header.Values("X-Forwarded-Proto"); len(protos) > 0 {
			// The proxy nearest to us appends last.
			last := protos[len(protos)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if strings.EqualFold(strings.TrimSpace(last), "https") {
				ctx = context.WithValue(ctx, forwardedTLSKey{}, true)
			}
		}
		r = r.Clone(ctx)
		r.RemoteAddr = netip.AddrPortFrom(client, 0).String()
		h.ServeHTTP(w, r)
	})
}

// ForwardedTLS says whether r reached a trusted proxy over TLS (Wrap).
func ForwardedTLS(r *http.Request) bool {
	v, _ := r.Context().Value(forwardedTLSKey{}).(bool)
	return v
}

// Secure says whether r came over TLS, to this listener or to a trusted
// proxy in front of it.
func Secure(r *http.Request) bool { return r.TLS != nil || ForwardedTLS(r) }

func peerAddr(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	return a.Unmap(), err == nil
}

func hasForwarded(h http.Header) bool {
	for _, k := range forwardedHeaders {
		if _, ok := h[http.CanonicalHeaderKey(k)]; ok {
			return true
		}
	}
	return false
}

func forwardedFor(h http.Header) []string {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		for s := range strings.SplitSeq(v, ",") {
			s = strings.TrimSpace(s)
			// An IPv6 hop may come bracketed, or with a port.
			if a, err := netip.ParseAddrPort(s); err == nil {
				s = a.Addr().String()
			}
			hops = append(hops, strings.Trim(s, "[]"))
		}
	}
	return hops
}
