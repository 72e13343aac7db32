package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config locates a bucket of an S3-compatible store.
type S3Config struct {
	// Endpoint is host or host:port, without a scheme (s3.amazonaws.com,
	// minio.internal:9000, 127.0.0.1:7070).
	Endpoint string
	Bucket   string
	// AccessKey and SecretKey are static credentials (an access key of a
	// user or service account allowed to get, put, copy, delete and list
	// objects of Bucket).
	AccessKey, SecretKey string
	// Region is the bucket's region (default us-east-1; most other
	// S3-compatible stores ignore it).
	Region string
	// TLS selects https (default true in FromEnv; false only for a store
	// on a trusted network or loopback).
	TLS bool
	// CreateBucket creates Bucket when it does not exist; otherwise a
	// missing bucket fails NewS3.
	CreateBucket bool
	// PartSize is the size of each part of a multipart upload, used for
	// every Put larger than it or of unknown size, and what such a Put
	// holds in memory (default 8 MiB, at least 5 MiB; S3 allows 10,000
	// parts, so it also bounds the largest blob: 80 GiB by default).
	PartSize int64
}

// DefaultPartSize is S3Config.PartSize when unset.
const DefaultPartSize = 8 << 20

const minPartSize = 5 << 20 // S3's smallest part (but the last)

// Defaults returns c with every unset field given its default.
func (c S3Config) Defaults() S3Config {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	return c
}

// Validate reports every invalid field at once.
func (c S3Config) Validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("blob: S3 endpoint is empty"))
	} else if strings.Contains(c.Endpoint, "://") || strings.Contains(c.Endpoint, "/") {
		errs = append(errs, fmt.Errorf("blob: S3 endpoint %q: want host or host:port, without a scheme or path (https is the TLS setting)", c.Endpoint))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("blob: S3 bucket is empty"))
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		errs = append(errs, errors.New("blob: S3 access key and secret key are both required"))
	}
	if c.PartSize != 0 && c.PartSize < minPartSize {
		errs = append(errs, fmt.Errorf("blob: S3 part size %d: want at least %d (5 MiB)", c.PartSize, minPartSize))
	}
	return errors.Join(errs...)
}

// S3 is the Store of objects in one bucket of an S3-compatible store; the
// blob under key is the object named key.
type S3 struct {
	cl       *minio.Client
	bucket   string
	partSize uint64
}

// NewS3 connects to the bucket of c, creating it when it is missing and
// c.CreateBucket is set. It fails when the store cannot be reached, the
// credentials are refused or the bucket is missing.
func NewS3(ctx context.Context, c S3Config) (*S3, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cl, err := minio.New(c.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure: c.TLS,
		Region: c.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: S3 client for %s: %w", c.Endpoint, err)
	}
	s := &S3{cl: cl, bucket: c.Bucket, partSize: uint64(c.PartSize)}
	ok, err := cl.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("blob: S3 bucket %s at %s: %w", c.Bucket, c.Endpoint, err)
	}
	if ok {
		return s, nil
	}
	if !c.CreateBucket {
		return nil, fmt.Errorf("blob: S3 bucket %s does not exist at %s: create it, or let Parley create it (PARLEY_BLOB_S3_CREATE_BUCKET=true)", c.Bucket, c.Endpoint)
	}
	if err := cl.MakeBucket(ctx, c.Bucket, minio.MakeBucketOptions{Region: c.Region}); err != nil {
		if code := minio.ToErrorResponse(err).Code; code != minio.BucketAlreadyOwnedByYou && code != minio.BucketAlreadyExists {
			return nil, fmt.Errorf("blob: creating S3 bucket %s at %s: %w", c.Bucket, c.Endpoint, err)
		}
	}
	return s, nil
}

// Bucket is the bucket of the store.
func (s *S3) Bucket() string { return s.bucket }

// Put implements Store. A Put of at most PartSize bytes is one streamed
// PUT; a larger one, or one of unknown size, is a multipart upload with one
// part in memory at a time, aborted when it fails.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if contentType == "" {
		contentType = DefaultContentType
	}
	if size < 0 {
		size = -1
	}
	_, err := s.cl.PutObject(ctx, s.bucket, key, newExactReader(ctx, r, size), size, minio.PutObjectOptions{
		ContentType: contentType,
		PartSize:    s.partSize,
	})
	if err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	return nil
}

// Open implements Store. It sends the GET at once, so a missing key fails
// here; seeking sends a new ranged GET, bounded by ctx like every read.
func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	obj, err := s.cl.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.err("open", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, s.err("open", key, err)
	}
	return &s3Object{Object: obj, info: s3Info(st)}, nil
}

type s3Object struct {
	*minio.Object
	info Info
}

func (o *s3Object) Info() Info { return o.info }

func s3Info(st minio.ObjectInfo) Info {
	return Info{Size: st.Size, ModTime: st.LastModified, ContentType: st.ContentType}
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	st, err := s.cl.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.err("stat", key, err)
	}
	return s3Info(st), nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.cl.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(s.err("delete", key, err), ErrNotFound) {
			return nil
		}
		return s.err("delete", key, err)
	}
	return nil
}

// Touch implements Store by rewriting the object inside the store: a
// multipart upload of the same key whose parts are copied from the object
// itself (UploadPartCopy, up to 5 GiB a part), with the same content type.
// Its completion is a new write on every S3-compatible store, so
// LastModified becomes now; the bytes never pass through Parley. (A copy
// onto itself with replaced metadata would be one request, but some stores,
// Versity Gateway among them, then update only the metadata and keep the
// old LastModified.) Like a Put, it is all or nothing: a failure or a crash
// leaves the object as it was (and at most an incomplete upload).
func (s *S3) Touch(ctx context.Context, key string) (err error) {
	st, err := s.Stat(ctx, key)
	if err != nil {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: st.ContentType}
	if st.Size == 0 {
		// Nothing to copy a part from: put the empty blob again.
		return s.Put(ctx, key, strings.NewReader(""), 0, st.ContentType)
	}
	core := minio.Core{Client: s.cl}
	id, err := core.NewMultipartUpload(ctx, s.bucket, key, opts)
	if err != nil {
		return s.err("touch", key, err)
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = core.AbortMultipartUpload(actx, s.bucket, key, id)
		}
	}()
	var parts []minio.CompletePart
	for off, n := int64(0), 1; off < st.Size; off, n = off+maxCopyPart, n+1 {
		p, err := core.CopyObjectPart(ctx, s.bucket, key, s.bucket, key, id, n, off, min(maxCopyPart, st.Size-off), nil)
		if err != nil {
			return s.err("touch", key, err)
		}
		parts = append(parts, p)
	}
	if _, err := core.CompleteMultipartUpload(ctx, s.bucket, key, id, parts, opts); err != nil {
		return s.err("touch", key, err)
	}
	return nil
}

// maxCopyPart is the largest part UploadPartCopy copies.
const maxCopyPart = 5 << 30

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string, fn func(key string, info Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine when fn fails
	for o := range s.cl.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("blob: list %q: %w", prefix, o.Err)
		}
		if strings.HasSuffix(o.Key, "/") {
			continue // a directory marker some stores list
		}
		if err := fn(o.Key, Info{Size: o.Size, ModTime: o.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// err maps a missing object to ErrNotFound.
func (s *S3) err(op, key string, err error) error {
	r := minio.ToErrorResponse(err)
	if r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("blob: %s %s: %w", op, key, err)
}
