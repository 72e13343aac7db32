package deploy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// ServerTLS is a listener's certificate: PEM files, read again when they
// change, so a renewed certificate (an ACME client, a secret mounted by an
// orchestrator) takes effect without a restart. Empty: plain TCP.
type ServerTLS struct {
	// CertFile holds the certificate chain (leaf first), KeyFile its key.
	CertFile, KeyFile string
	// Logger reports reloads and files that no longer load.
	Logger *slog.Logger
}

// On says whether TLS is configured.
func (c ServerTLS) On() bool { return c.CertFile != "" || c.KeyFile != "" }

// certCheckEvery is how often a handshake may look at the files again.
const certCheckEvery = time.Second

// Config loads the certificate and returns a server tls.Config with TLS
// 1.2 as the minimum, offering HTTP/1.1 (what a WebSocket upgrade needs).
// A handshake looks at the
// files at most once a second: a changed pair that loads replaces the
// certificate; one that does not load (a half-written renewal) is logged
// and the previous certificate stays.
func (c ServerTLS) Config() (*tls.Config, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("tls: set both the certificate and the key file")
	}
	r := &certReloader{cfg: c, log: c.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: r.get,
	}, nil
}

type certReloader struct {
	cfg ServerTLS
	log *slog.Logger

	mu         sync.Mutex
	cert       *tls.Certificate
	certPEM    []byte
	keyPEM     []byte
	lastLooked time.Time
}

func (r *certReloader) load() error {
	certPEM, err := os.ReadFile(r.cfg.CertFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	keyPEM, err := os.ReadFile(r.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if r.cert != nil && bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("tls: %s and %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	if r.cert != nil {
		r.log.Info("tls: certificate reloaded", "cert", r.cfg.CertFile)
	}
	r.cert, r.certPEM, r.keyPEM = &cert, certPEM, keyPEM
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.lastLooked) >= certCheckEvery {
		r.lastLooked = now
		if err := r.load(); err != nil {
			r.log.Warn("tls: keeping the previous certificate", "err", err)
		}
	}
	return r.cert, nil
}

// SecurityHeaders sets the headers every HTTP answer of Parley carries,
// before h runs (h may override them, as the web client's page sets its
// own Content-Security-Policy): no MIME sniffing, no referrer, no framing,
// a policy that lets an API answer run nothing, and, when served over
// TLS (here, or to a trusted proxy: Secure), Strict-Transport-Security.
func SecurityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		if Secure(r) {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}

// ServerTLS reads <prefix>_TLS_CERT_FILE and <prefix>_TLS_KEY_FILE.
func (e *Env) ServerTLS(prefix string) ServerTLS {
	c := ServerTLS{CertFile: e.String(prefix+"_TLS_CERT_FILE", ""), KeyFile: e.String(prefix+"_TLS_KEY_FILE", "")}
	if (c.CertFile == "") != (c.KeyFile == "") {
		e.errs = append(e.errs, fmt.Errorf("%s_TLS_CERT_FILE and %s_TLS_KEY_FILE: set both or neither", prefix, prefix))
	}
	return c
}
