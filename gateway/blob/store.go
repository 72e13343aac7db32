package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Store keeps blobs under keys. Every method is safe for concurrent use.
type Store interface {
	// Put stores size bytes read from r under key, replacing what was
	// there. size -1 means unknown: r is read to EOF. A known size that r
	// does not deliver exactly (fewer bytes, or more) fails with
	// ErrSizeMismatch. Put streams: it never holds the whole blob in memory.
	// An empty contentType is stored as application/octet-stream. On any
	// error nothing new is visible under key.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Open opens the blob under key for reading, or fails with ErrNotFound.
	// The Object reads a consistent version even if key is replaced
	// meanwhile (S3: its reads are bounded by ctx too).
	Open(ctx context.Context, key string) (Object, error)
	// Stat describes the blob under key, or fails with ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the blob under key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Touch makes the modification time of the blob under key now, keeping
	// its bytes and content type, or fails with ErrNotFound.
	Touch(ctx context.Context, key string) error
	// List calls fn for every blob whose key starts with prefix, in no
	// particular order, with Info.ContentType left empty. An error from fn
	// stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(key string, info Info) error) error
}

// Object is an open blob. It is an io.ReadSeeker and an io.ReaderAt, so
// http.ServeContent answers Range requests from it.
type Object interface {
	io.ReadSeekCloser
	io.ReaderAt
	Info() Info
}

// FileObject is an Object that is an open local file (Dir's): a server
// gives the *os.File itself to net/http, which sends it with sendfile(2).
type FileObject interface {
	Object
	OSFile() *os.File
}

// Info describes a stored blob.
type Info struct {
	Size        int64
	ModTime     time.Time
	ContentType string
}

var (
	// ErrNotFound: no blob under the key.
	ErrNotFound = errors.New("blob: not found")
	// ErrInvalidKey: the key is not a valid blob key (see the package doc).
	ErrInvalidKey = errors.New("blob: invalid key")
	// ErrSizeMismatch: Put read more or fewer bytes than its size said.
	ErrSizeMismatch = errors.New("blob: size mismatch")
)

// DefaultContentType is stored for a Put without a content type.
const DefaultContentType = "application/octet-stream"

// MaxKeyBytes is the longest key a Store accepts.
const MaxKeyBytes = 1024

// Key is the key of a blob in namespace whose SHA-256 is sha256hex:
// "<namespace>/sha256/<ab>/<sha256hex>", with <ab> its first two digits
// (256 directories per namespace, so none grows too large). sha256hex must
// be 64 lowercase hex digits; namespace 1 to 64 bytes of lowercase letters,
// digits, '_' and '-', starting with a letter or digit.
func Key(namespace, sha256hex string) (string, error) {
	if !validNamespace(namespace) {
		return "", fmt.Errorf("%w: namespace %q: want 1 to 64 of a-z, 0-9, '_', '-', starting with a letter or digit", ErrInvalidKey, namespace)
	}
	if !isSHA256Hex(sha256hex) {
		return "", fmt.Errorf("%w: %q is not a SHA-256 in 64 lowercase hex digits", ErrInvalidKey, sha256hex)
	}
	return namespace + "/sha256/" + sha256hex[:2] + "/" + sha256hex, nil
}

func validNamespace(ns string) bool {
	if len(ns) == 0 || len(ns) > 64 || ns[0] == '_' || ns[0] == '-' {
		return false
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidKey reports whether a Store accepts key: 1 to MaxKeyBytes bytes of
// '/'-separated segments of A-Z, a-z, 0-9, '.', '_' and '-', none empty and
// none starting with '.'. So a key never escapes Dir's directory, never
// names its .tmp directory, and is the same object name on every S3 server.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > MaxKeyBytes {
		return false
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg[0] == '.' {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

func checkKey(key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	return nil
}

// exactReader delivers the bytes of r, failing with ErrSizeMismatch when r
// ends before size bytes or has more than size. The excess is detected in
// the Read that delivers the last expected byte, so a consumer that reads
// exactly size bytes (minio-go does) still sees the error and aborts, and
// nothing is committed. size -1 passes r through. It checks ctx on every
// Read, so a Put from a reader that never ends stops when ctx does. It
// deliberately hides any io.ReaderAt of r: minio-go would upload parts of a
// ReaderAt in parallel, a part buffer per thread.
type exactReader struct {
	ctx  context.Context
	r    io.Reader
	left int64 // -1: unknown size
	done bool
}

func newExactReader(ctx context.Context, r io.Reader, size int64) *exactReader {
	if size < 0 {
		size = -1
	}
	return &exactReader{ctx: ctx, r: r, left: size}
}

func (e *exactReader) Read(p []byte) (int, error) {
	if err := e.ctx.Err(); err != nil {
		return 0, err
	}
	if e.done {
		return 0, io.EOF
	}
	if e.left < 0 {
		return e.r.Read(p)
	}
	if e.left == 0 {
		if err := e.noMore(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		return n, fmt.Errorf("%w: the reader ended %d bytes short", ErrSizeMismatch, e.left)
	case err != nil && err != io.EOF:
		return n, err
	case e.left == 0:
		if err := e.noMore(); err != nil {
			return 0, err
		}
		return n, nil
	}
	return n, nil
}

// noMore checks that r has nothing beyond the expected size.
func (e *exactReader) noMore() error {
	var b [1]byte
	for range 100 {
		n, err := e.r.Read(b[:])
		if n > 0 {
			return fmt.Errorf("%w: the reader has more bytes than the size given", ErrSizeMismatch)
		}
		if err == io.EOF {
			e.done = true
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
