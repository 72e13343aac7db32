package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// DefaultTimeout bounds one request to a provider, answer included,
	// when a Config leaves Timeout zero.
	DefaultTimeout = 10 * time.Second
	// userAgent is sent with every request.
	userAgent = "parley-notifier"
	// maxResponseBytes bounds how much of an answer is read: the providers'
	// error bodies are a few hundred bytes.
	maxResponseBytes = 64 << 10
)

// transportConfig is what the clients' HTTP transports differ in.
type transportConfig struct {
	rootCAs *x509.CertPool
	// http2Only makes the transport speak HTTP/2 and nothing else (APNs).
	http2Only bool
	// dialControl checks each address dialed (the webhook's SSRF guard);
	// it also disables proxies, which would dial in its place.
	dialControl func(network, address string, c syscall.RawConn) error
}

// newHTTPClient is a client that follows no redirects (a provider never
// redirects a push, and a webhook redirect could lead anywhere) and whose
// requests are bounded by the context Send gives them.
func newHTTPClient(tc transportConfig) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: tc.rootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 5 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   true,
	}
	if tc.dialControl != nil {
		t.Proxy = nil
		dialer.Control = tc.dialControl
	}
	if tc.http2Only {
		var p http.Protocols
		p.SetHTTP2(true)
		t.Protocols = &p
	}
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// answer is a provider's answer, its body read (bounded) and closed.
type answer struct {
	status int
	header http.Header
	body   []byte
	proto  int
}

// do sends req and reads the answer. A failure to get one is a
// *RetryError whose text names the host only, never the URL (a Web Push
// or webhook URL is a credential of sorts), or what errClassify makes of
// it when it recognises it.
func do(ctx context.Context, c *http.Client, req *http.Request, errClassify func(error) error) (*answer, error) {
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errClassify != nil {
			if e := errClassify(err); e != nil {
				return nil, e
			}
		}
		if ctx.Err() != nil {
			return nil, &RetryError{Err: fmt.Errorf("%s: %w", req.URL.Host, ctx.Err())}
		}
		return nil, &RetryError{Err: fmt.Errorf("%s: %w", req.URL.Host, err)}
	}
	return readAnswer(resp, req.URL.Host)
}

// readAnswer reads (at most maxResponseBytes of) resp's body and closes
// it.
func readAnswer(resp *http.Response, host string) (*answer, error) {
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, &RetryError{Status: resp.StatusCode, Err: fmt.Errorf("%s: reading the answer: %w", host, err)}
	}
	// Drain a little more so the connection can be reused; never much.
	_, _ = io.CopyN(io.Discard, resp.Body, maxResponseBytes)
	return &answer{status: resp.StatusCode, header: resp.Header, body: body, proto: resp.ProtoMajor}, nil
}

// newRequest is a POST of body to u with ctx.
func newRequest(ctx context.Context, u string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, &RefusedError{Reason: "building the request: " + sanitizeURLError(err)}
	}
	return req, nil
}

// sanitizeURLError is err's text without the URL it may quote.
func sanitizeURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return "invalid URL"
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3); 0 when absent, unparseable or in the past.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// clip bounds a provider's text quoted in an error.
func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	const most = 200
	if len(s) > most {
		s = s[:most] + "…"
	}
	return strconv.Quote(s)
}

// checkBaseURL checks a configured provider URL: absolute, https (http
// too when allowHTTP), with a host and without user info, query or
// fragment.
func checkBaseURL(field, s string, allowHTTP bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s: not a URL: %q", field, s)
	}
	ok := u.Scheme == "https" || allowHTTP && u.Scheme == "http"
	if !ok || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s: must be an https URL with a host and no user info, query or fragment, got %q", field, s)
	}
	return nil
}
