package pushserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/testenv"
)

// Request is one request a server accepted, decoded.
type Request struct {
	// Address is the device token (FCM, APNs) or the endpoint (Web Push,
	// webhook) it was for.
	Address string
	// The notification fields it carried.
	Title          string
	Body           string
	Badge          int64
	Collapse       string
	NotificationID string
	Kind           string
	Data           map[string]string
	// Priority is FCM's android.priority, APNs' apns-priority or Web
	// Push's Urgency.
	Priority string
	// Silent is true for a push that shows nothing (FCM: no notification;
	// APNs: background; Web Push, webhook: kind "clear").
	Silent bool
	// At is when the server accepted it.
	At time.Time
	// ProtoMajor is the request's HTTP major version.
	ProtoMajor int
	// Header is the request's header, Raw its body (decrypted for Web
	// Push).
	Header http.Header
	Raw    []byte
}

// Outcome is a scripted answer.
type Outcome int

const (
	// OK accepts the request (the default).
	OK Outcome = iota
	// InvalidToken answers as the provider does for a token or endpoint
	// that is gone (FCM 404 UNREGISTERED, APNs 410 Unregistered, Web Push
	// 410, webhook 410).
	InvalidToken
	// RateLimited answers 429 with Retry-After (the server's RetryAfter).
	RateLimited
	// Unavailable answers 503.
	Unavailable
)

// base is what every server shares: the TLS listener, the record of
// requests and the script.
type base struct {
	srv  *httptest.Server
	pool *x509.CertPool

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced whenever a request is handled
	received   int
	accepted   []Request
	rejections []string
	next       []Outcome
	byAddress  map[string]Outcome
	retryAfter time.Duration
}

// start serves h over TLS with a certificate for 127.0.0.1, ::1 and
// localhost generated now. http2 also offers HTTP/1.1 (so a server can
// refuse it with a reason) when h1 is true.
func (b *base) start(t testing.TB, h http.Handler) {
	t.Helper()
	cert, pool, err := testenv.SelfSigned("pushserver")
	if err != nil {
		t.Fatalf("pushserver: certificate: %v", err)
	}
	b.pool = pool
	b.changed = make(chan struct{})
	b.byAddress = map[string]Outcome{}
	b.retryAfter = 7 * time.Second
	b.srv = httptest.NewUnstartedServer(h)
	b.srv.EnableHTTP2 = true
	b.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
}

// URL is the server's base URL (https://127.0.0.1:port).
func (b *base) URL() string { return b.srv.URL }

// Certificate is the server's certificate (self-signed), for a pool that
// trusts several servers.
func (b *base) Certificate() *x509.Certificate { return b.srv.Certificate() }

// CertPool trusts the server's certificate (and nothing else).
func (b *base) CertPool() *x509.CertPool { return b.pool }

// CertPEM is the server's certificate in PEM, for a process that must
// trust it (a file named by PARLEY_NOTIFIER_CA_FILE).
func (b *base) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.srv.Certificate().Raw})
}

// Client is an HTTP client trusting the server.
func (b *base) Client() *http.Client { return b.srv.Client() }

// Close stops the server (also done when the test ends).
func (b *base) Close() { b.srv.Close() }

// SetRetryAfter sets the Retry-After of RateLimited answers (default 7 s;
// 0 sends none).
func (b *base) SetRetryAfter(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.retryAfter = d
}

// Next scripts the next k well-formed requests to be answered with o,
// after those already scripted.
func (b *base) Next(o Outcome, k int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range k {
		b.next = append(b.next, o)
	}
}

// Answer scripts every well-formed request for address (a token or an
// endpoint) to be answered with o; OK undoes it. Next takes precedence.
func (b *base) Answer(address string, o Outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o == OK {
		delete(b.byAddress, address)
		return
	}
	b.byAddress[address] = o
}

// Received is how many requests reached the server, accepted or not.
func (b *base) Received() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.received
}

// Requests are the accepted requests, in the order they were accepted.
func (b *base) Requests() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Request(nil), b.accepted...)
}

// Rejections are the reasons of the requests answered as malformed or
// unauthorized, in order.
func (b *base) Rejections() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.rejections...)
}

// WaitFor waits until n requests were accepted and returns them, or
// returns an error (with those accepted so far) when ctx ends first.
func (b *base) WaitFor(ctx context.Context, n int) ([]Request, error) {
	for {
		b.mu.Lock()
		if len(b.accepted) >= n {
			r := append([]Request(nil), b.accepted...)
			b.mu.Unlock()
			return r, nil
		}
		ch := b.changed
		got := append([]Request(nil), b.accepted...)
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return got, fmt.Errorf("pushserver: %d of %d requests accepted: %w", len(got), n, ctx.Err())
		}
	}
}

// arrived counts a request and tells waiters.
func (b *base) arrived() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.received++
	b.notify()
}

func (b *base) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// reject records why a request was refused.
func (b *base) reject(reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rejections = append(b.rejections, reason)
	b.notify()
}

// decide takes the scripted outcome of a well-formed request for
// address, and records it when it is OK. It returns the outcome and the
// Retry-After to send with RateLimited.
func (b *base) decide(address string, r Request) (Outcome, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.byAddress[address]
	if len(b.next) > 0 {
		o, b.next = b.next[0], b.next[1:]
	}
	if o == OK {
		r.At = time.Now()
		b.accepted = append(b.accepted, r)
		b.notify()
	}
	return o, b.retryAfter
}

// setRetryAfter writes the Retry-After header of a RateLimited answer.
func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	if d > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int64(d/time.Second)))
	}
}
