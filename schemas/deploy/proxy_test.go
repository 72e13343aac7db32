package deploy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// seen is what a handler behind Wrap and SecurityHeaders was told.
type seen struct {
	remote, xff, proto string
	hsts               bool
}

func through(t *testing.T, p TrustedProxies, peer string, hdr map[string]string) seen {
	t.Helper()
	var got seen
	h := p.Wrap(SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.remote, got.xff, got.proto = r.RemoteAddr, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto")
	})))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = peer
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	got.hsts = w.Header().Get("Strict-Transport-Security") != ""
	return got
}

func TestTrustedProxies(t *testing.T) {
	p, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.7", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	fwd := map[string]string{"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https"}

	t.Run("trusted peer", func(t *testing.T) {
		got := through(t, p, "10.1.2.3:5555", fwd)
		if got.remote != "198.51.100.9:0" || !got.hsts {
			t.Fatalf("got %+v, want the forwarded client and HSTS", got)
		}
	})
	t.Run("untrusted peer: headers removed", func(t *testing.T) {
		got := through(t, p, "203.0.113.5:4444", fwd)
		if got.remote != "203.0.113.5:4444" || got.xff != "" || got.proto != "" || got.hsts {
			t.Fatalf("got %+v, want the peer itself, no forwarding headers and no HSTS", got)
		}
	})
	t.Run("no proxies configured", func(t *testing.T) {
		got := through(t, nil, "10.1.2.3:5555", fwd)
		if got.remote != "10.1.2.3:5555" || got.xff != "" || got.hsts {
			t.Fatalf("got %+v, want nothing believed", got)
		}
	})
	t.Run("spoofed entries left of the client", func(t *testing.T) {
		// The client wrote "1.2.3.4"; its real address was appended by the
		// outer proxy (10.9.9.9), which the inner proxy appended in turn.
		got := through(t, p, "192.0.2.7:80", map[string]string{"X-Forwarded-For": "1.2.3.4, 198.51.100.9, 10.9.9.9"})
		if got.remote != "198.51.100.9:0" {
			t.Fatalf("client %q, want 198.51.100.9:0", got.remote)
		}
	})
	t.Run("http at the proxy", func(t *testing.T) {
		got := through(t, p, "[::1]:80", map[string]string{"X-Forwarded-For": "2001:db8::5", "X-Forwarded-Proto": "http"})
		if got.remote != "[2001:db8::5]:0" || got.hsts {
			t.Fatalf("got %+v, want the IPv6 client and no HSTS", got)
		}
	})
	t.Run("malformed hop", func(t *testing.T) {
		got := through(t, p, "10.1.2.3:5555", map[string]string{"X-Forwarded-For": "198.51.100.9, not-an-ip"})
		if got.remote != "10.1.2.3:0" {
			t.Fatalf("client %q, want the proxy itself when its hop is unreadable", got.remote)
		}
	})
	t.Run("all hops trusted", func(t *testing.T) {
		got := through(t, p, "10.1.2.3:5555", map[string]string{"X-Forwarded-For": "10.4.4.4"})
		if got.remote != "10.4.4.4:0" {
			t.Fatalf("client %q, want the leftmost hop", got.remote)
		}
	})
}

func TestTrustedProxiesEnv(t *testing.T) {
	e := EnvFrom(map[string]string{"P": "10.0.0.0/8, ::1", "BAD": "10.0.0.0/8,example.org"})
	if p := e.TrustedProxies("P"); len(p) != 2 || e.Err() != nil {
		t.Fatalf("P: %v, %v", p, e.Err())
	}
	e.TrustedProxies("BAD")
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "BAD") {
		t.Fatalf("BAD accepted: %v", err)
	}
}
