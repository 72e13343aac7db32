package blob_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
)

func TestKey(t *testing.T) {
	h := sha256hex("a cat picture")
	k, err := blob.Key("attachments", h)
	if err != nil || k != "attachments/sha256/"+h[:2]+"/"+h {
		t.Fatalf("Key = %q, %v", k, err)
	}
	if !blob.ValidKey(k) {
		t.Fatalf("Key gave %q, which ValidKey refuses", k)
	}
	for _, c := range []struct{ ns, hex string }{
		{"attachments", strings.ToUpper(h)}, {"attachments", h[:63]}, {"attachments", h + "0"},
		{"attachments", strings.Repeat("g", 64)}, {"", h}, {"Attachments", h}, {"a/b", h},
		{"-x", h}, {"..", h}, {strings.Repeat("n", 65), h},
	} {
		if k, err := blob.Key(c.ns, c.hex); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Key(%q, %q) = %q, %v; want ErrInvalidKey", c.ns, c.hex, k, err)
		}
	}
}

func TestFromEnvDefaults(t *testing.T) {
	c, err := blob.FromEnv(deploy.EnvFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != blob.BackendDir || c.Dir != blob.DefaultDir || !c.S3.TLS || c.S3.Region != "us-east-1" || c.S3.CreateBucket {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = blob.FromEnv(deploy.EnvFrom(map[string]string{
		"PARLEY_BLOB_BACKEND": "S3", "PARLEY_BLOB_S3_ENDPOINT": "minio.internal:9000", "PARLEY_BLOB_S3_BUCKET": "parley-blobs",
		"PARLEY_BLOB_S3_ACCESS_KEY": "AK", "PARLEY_BLOB_S3_SECRET_KEY": "SK", "PARLEY_BLOB_S3_REGION": "eu-west-3",
		"PARLEY_BLOB_S3_TLS": "false", "PARLEY_BLOB_S3_CREATE_BUCKET": "1",
	}))
	want := blob.S3Config{Endpoint: "minio.internal:9000", Bucket: "parley-blobs", AccessKey: "AK", SecretKey: "SK", Region: "eu-west-3", CreateBucket: true}
	if err != nil || c.Backend != blob.BackendS3 || c.S3 != want {
		t.Fatalf("s3 settings: %+v, %v; want %+v", c, err, want)
	}
}

// TestFromEnvErrors: every bad or missing setting is named, all at once.
func TestFromEnvErrors(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"PARLEY_BLOB_BACKEND": "ftp"}, []string{`PARLEY_BLOB_BACKEND="ftp": want dir or s3`}},
		{map[string]string{"PARLEY_BLOB_BACKEND": "s3"}, []string{
			"PARLEY_BLOB_S3_ENDPOINT is required", "PARLEY_BLOB_S3_BUCKET is required",
			"PARLEY_BLOB_S3_ACCESS_KEY is required", "PARLEY_BLOB_S3_SECRET_KEY is required"}},
		{map[string]string{"PARLEY_BLOB_BACKEND": "s3", "PARLEY_BLOB_S3_ENDPOINT": "https://s3.example.com", "PARLEY_BLOB_S3_BUCKET": "Bad_Bucket",
			"PARLEY_BLOB_S3_ACCESS_KEY": "a", "PARLEY_BLOB_S3_SECRET_KEY": "s", "PARLEY_BLOB_S3_TLS": "sometimes"}, []string{
			`PARLEY_BLOB_S3_ENDPOINT="https://s3.example.com": want host or host:port`,
			`PARLEY_BLOB_S3_BUCKET="Bad_Bucket"`, `PARLEY_BLOB_S3_TLS="sometimes": want true or false`}},
		{map[string]string{"PARLEY_BLOB_S3_CREATE_BUCKET": "maybe"}, []string{`PARLEY_BLOB_S3_CREATE_BUCKET="maybe"`}},
	} {
		_, err := blob.FromEnv(deploy.EnvFrom(c.env))
		if err == nil {
			t.Errorf("FromEnv(%v) accepted it", c.env)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("FromEnv(%v) = %q; want it to say %q", c.env, err, w)
			}
		}
	}
}

func TestNewConfigErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := blob.New(ctx, blob.Config{Backend: "tape"}); err == nil || !strings.Contains(err.Error(), `"tape"`) {
		t.Errorf("New with backend tape: %v", err)
	}
	if _, err := blob.New(ctx, blob.Config{Backend: blob.BackendS3}); err == nil || !strings.Contains(err.Error(), "endpoint is empty") {
		t.Errorf("New s3 without settings: %v", err)
	}
	if _, err := blob.New(ctx, blob.Config{Backend: blob.BackendS3, S3: blob.S3Config{Endpoint: "x:1", Bucket: "b", AccessKey: "a", SecretKey: "s", PartSize: 1 << 20}}); err == nil || !strings.Contains(err.Error(), "part size") {
		t.Errorf("New s3 with 1 MiB parts: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "nested", "blobs")
	s, err := blob.New(ctx, blob.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := s.(*blob.Dir); !ok || d.Root() != dir {
		t.Fatalf("New with the zero backend gave %T, want a Dir in %s", s, dir)
	}
}

// TestNewS3Bucket: NewS3 refuses a missing bucket unless told to create
// it, and refuses wrong credentials and an endpoint nobody answers at.
func TestNewS3Bucket(t *testing.T) {
	e := testenv.S3(t)
	ctx := context.Background()
	c := blob.S3Config{Endpoint: e.Endpoint, Bucket: e.Bucket + "-new", AccessKey: e.AccessKey, SecretKey: e.SecretKey}
	if _, err := blob.NewS3(ctx, c); err == nil || !strings.Contains(err.Error(), "PARLEY_BLOB_S3_CREATE_BUCKET") {
		t.Fatalf("NewS3 of a missing bucket: %v; want a hint to create it", err)
	}
	c.CreateBucket = true
	s, err := blob.NewS3(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client().RemoveBucket(context.Background(), c.Bucket) })
	if ok, err := e.Client().BucketExists(ctx, c.Bucket); !ok || err != nil {
		t.Fatalf("bucket %s after NewS3 with CreateBucket: exists=%v, %v", c.Bucket, ok, err)
	}
	if _, err := blob.NewS3(ctx, c); err != nil {
		t.Fatalf("NewS3 with CreateBucket of a bucket that now exists: %v", err)
	}
	if err := s.Put(ctx, testKey(t, "x"), strings.NewReader("x"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, testKey(t, "x")); err != nil {
		t.Fatal(err)
	}

	bad := c
	bad.SecretKey = "wrong"
	if _, err := blob.NewS3(ctx, bad); err == nil {
		t.Fatal("NewS3 with a wrong secret succeeded")
	}
	l := testenv.Listen(t)
	l.Close() // now nobody listens there
	gone := c
	gone.Endpoint = l.Addr().String()
	gctx, cancel := context.WithTimeout(ctx, 3*time.Second) // minio-go retries a refused connection
	defer cancel()
	if _, err := blob.NewS3(gctx, gone); err == nil {
		t.Fatal("NewS3 of an endpoint nobody listens at succeeded")
	}
}
