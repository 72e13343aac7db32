package blob

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/parley-im/parley/schemas/deploy"
)

// Backends.
const (
	BackendDir = "dir"
	BackendS3  = "s3"
)

// DefaultDir is Config.Dir when unset: relative to the working directory.
const DefaultDir = "data/blobs"

// Config chooses and configures the Store New returns.
type Config struct {
	// Backend is BackendDir (default) or BackendS3.
	Backend string
	// Dir is the data directory of the dir backend (default DefaultDir).
	Dir string
	// S3 configures the s3 backend.
	S3 S3Config
}

// Defaults returns c with every unset field given its default.
func (c Config) Defaults() Config {
	if c.Backend == "" {
		c.Backend = BackendDir
	}
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	c.S3 = c.S3.Defaults()
	return c
}

// Validate reports every invalid field at once; the S3 fields only for the
// s3 backend.
func (c Config) Validate() error {
	switch c.Backend {
	case BackendDir:
		if c.Dir == "" {
			return errors.New("blob: Config.Dir is empty")
		}
		return nil
	case BackendS3:
		return c.S3.Validate()
	default:
		return fmt.Errorf("blob: Config.Backend %q: want %q or %q", c.Backend, BackendDir, BackendS3)
	}
}

// New returns the Store c configures (see NewDir and NewS3).
func New(ctx context.Context, c Config) (Store, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Backend == BackendS3 {
		return NewS3(ctx, c.S3)
	}
	return NewDir(c.Dir)
}

// FromEnv reads the attachment storage settings (listed with their
// defaults in the top-level README, "Settings"):
//
//	PARLEY_BLOB_BACKEND             dir (default) or s3
//	PARLEY_BLOB_DIR                 data directory of dir (default data/blobs)
//	PARLEY_BLOB_S3_ENDPOINT         host[:port], no scheme (s3: required)
//	PARLEY_BLOB_S3_BUCKET           bucket (s3: required)
//	PARLEY_BLOB_S3_ACCESS_KEY       (s3: required)
//	PARLEY_BLOB_S3_SECRET_KEY       (s3: required)
//	PARLEY_BLOB_S3_REGION           default us-east-1
//	PARLEY_BLOB_S3_TLS              https; default true
//	PARLEY_BLOB_S3_CREATE_BUCKET    create a missing bucket; default false
//
// The error names every variable that is malformed, or missing for the
// backend chosen; a main reports it with the other settings' errors and
// refuses to start.
func FromEnv(e *deploy.Env) (Config, error) {
	var errs []error
	boolean := func(name string, def bool) bool {
		v := e.String(name, strconv.FormatBool(def))
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", name, v))
			return def
		}
		return b
	}
	c := Config{
		Backend: strings.ToLower(e.String("PARLEY_BLOB_BACKEND", BackendDir)),
		Dir:     e.String("PARLEY_BLOB_DIR", DefaultDir),
		S3: S3Config{
			Endpoint:     e.String("PARLEY_BLOB_S3_ENDPOINT", ""),
			Bucket:       e.String("PARLEY_BLOB_S3_BUCKET", ""),
			AccessKey:    e.String("PARLEY_BLOB_S3_ACCESS_KEY", ""),
			SecretKey:    string(e.Secret("PARLEY_BLOB_S3_SECRET_KEY")),
			Region:       e.String("PARLEY_BLOB_S3_REGION", "us-east-1"),
			TLS:          boolean("PARLEY_BLOB_S3_TLS", true),
			CreateBucket: boolean("PARLEY_BLOB_S3_CREATE_BUCKET", false),
		},
	}
	switch c.Backend {
	case BackendDir:
	case BackendS3:
		for _, v := range []struct{ name, val string }{
			{"PARLEY_BLOB_S3_ENDPOINT", c.S3.Endpoint}, {"PARLEY_BLOB_S3_BUCKET", c.S3.Bucket},
			{"PARLEY_BLOB_S3_ACCESS_KEY", c.S3.AccessKey}, {"PARLEY_BLOB_S3_SECRET_KEY", c.S3.SecretKey},
		} {
			if v.val == "" {
				errs = append(errs, fmt.Errorf("%s is required with PARLEY_BLOB_BACKEND=s3", v.name))
			}
		}
		if ep := c.S3.Endpoint; strings.Contains(ep, "://") || strings.Contains(ep, "/") {
			errs = append(errs, fmt.Errorf("PARLEY_BLOB_S3_ENDPOINT=%q: want host or host:port, without a scheme or path (https is PARLEY_BLOB_S3_TLS)", ep))
		}
		if b := c.S3.Bucket; b != "" && !validBucket(b) {
			errs = append(errs, fmt.Errorf("PARLEY_BLOB_S3_BUCKET=%q: want 3 to 63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit", b))
		}
	default:
		errs = append(errs, fmt.Errorf("PARLEY_BLOB_BACKEND=%q: want dir or s3", c.Backend))
	}
	return c, errors.Join(errs...)
}

// validBucket checks S3's bucket naming rules (the common subset every
// S3-compatible store accepts).
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 || strings.Contains(b, "..") {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (c != '-' && c != '.' || i == 0 || i == len(b)-1) {
			return false
		}
	}
	return true
}
