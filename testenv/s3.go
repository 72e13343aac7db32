package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Region is the region Versity Gateway answers for (its default).
const s3Region = "us-east-1"

// versityBinary makes sure the versitygw binary of VersityGatewayVersion is
// in the cache and returns its path. It is built from the Go module proxy
// with `go install` (about 3 minutes of one core the first time, then
// nothing: the binary's presence is the marker). The build writes into a
// staging directory and renames the binary into place, so an interrupted
// build never leaves a binary that looks complete.
func versityBinary(ctx context.Context, logf func(string, ...any)) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "bin", "versitygw-"+VersityGatewayVersion)
	bin := filepath.Join(dir, "versitygw")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// One build at a time, across processes (parallel test binaries).
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: %q not found on PATH; it builds Versity Gateway %s (install Go, https://go.dev/dl)", ErrMissingTool, "go", VersityGatewayVersion)
	}
	stage, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	logf("testenv: building versitygw %s with go install (first use only, about 3 minutes)", VersityGatewayVersion)
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, goTool, "install", "-p", "1", versityGatewayModule+"@"+VersityGatewayVersion)
	// Outside any module, with this repository's settings kept out: the
	// version is the one pinned, whatever go.work or GOFLAGS say.
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+stage, "GOFLAGS=-buildvcs=false", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("testenv: building versitygw %s (go install %s@%s) failed: %w\n%s",
			VersityGatewayVersion, versityGatewayModule, VersityGatewayVersion, err, tail(out.String(), 30))
	}
	if err := os.Rename(filepath.Join(stage, "versitygw"), bin); err != nil {
		return "", err
	}
	logf("testenv: versitygw %s built in %s", VersityGatewayVersion, time.Since(t0).Round(time.Second))
	return bin, nil
}

// s3Creds are the root credentials of one S3 server, random per start.
type s3Creds struct{ access, secret string }

func newS3Creds() s3Creds {
	return s3Creds{access: "PT" + strings.ToUpper(randHex(9)), secret: randHex(20)}
}

// startS3 runs Versity Gateway's posix backend on 127.0.0.1:port with its
// buckets under dir/data. The credentials go in its environment, not on its
// command line, so they are not in ps. A port taken between FreePorts and
// the bind fails the start, as for the JVMs.
func startS3(ctx context.Context, bin, dir string, port int, creds s3Creds, tied bool, timeout time.Duration) (*proc, error) {
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProcess(bin, dir, "s3", "versitygw", tied,
		[]string{"--port", addr, "--quiet", "posix", data},
		[]string{"ROOT_ACCESS_KEY=" + creds.access, "ROOT_SECRET_KEY=" + creds.secret})
	if err != nil {
		return nil, err
	}
	p.logFile = filepath.Join(dir, "stdout.log")
	if err := p.waitReady(ctx, timeout, func(ctx context.Context) error { return probeS3(ctx, addr, creds) }); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// probeS3 succeeds when the server answers a signed ListBuckets: it is up
// and takes the credentials.
func probeS3(ctx context.Context, endpoint string, creds s3Creds) error {
	cl, err := newS3Client(endpoint, creds.access, creds.secret)
	if err != nil {
		return err
	}
	_, err = cl.ListBuckets(ctx)
	return err
}

func newS3Client(endpoint, access, secret string) (*minio.Client, error) {
	return minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(access, secret, ""),
		Region: s3Region,
	})
}

// errNoS3 is what a test gets from an env.json written before testenv ran an
// S3 server.
var errNoS3 = errors.New("testenv: this env has no S3 server (its env.json was written by an older testenv): restart it (go tool task env:down, then env:up; or run the tests with go tool task test)")

// loneS3 is an S3 server started by a test binary that has no Env to attach
// to and needs nothing else, so it does not start Kafka and Cassandra for
// it (see S3).
type loneS3 struct {
	Endpoint, AccessKey, SecretKey string
	dir                            string
	p                              *proc
}

func startLoneS3(ctx context.Context) (*loneS3, error) {
	bin, err := versityBinary(ctx, func(string, ...any) {})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "parley-testenv-s3-")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	creds := newS3Creds()
	p, err := startS3(ctx, bin, dir, ports[0], creds, true, time.Minute)
	if err != nil {
		return nil, err
	}
	return &loneS3{Endpoint: fmt.Sprintf("127.0.0.1:%d", ports[0]), AccessKey: creds.access, SecretKey: creds.secret, dir: dir, p: p}, nil
}
