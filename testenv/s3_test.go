package testenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { Main(m) }

var validBucket = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

func TestBucketNameValid(t *testing.T) {
	for _, name := range []string{
		"TestS3", "TestBlobConformance/s3/Overwrite", "Test_Under_Score", "---", "",
		"TestA/" + strings.Repeat("Ünïcode-", 20), strings.Repeat("x", 300),
	} {
		b := bucketName(name)
		if !validBucket.MatchString(b) {
			t.Errorf("bucketName(%q) = %q: not a valid S3 bucket name", name, b)
		}
		if bucketName(name) == b {
			t.Errorf("bucketName(%q) gave %q twice", name, b)
		}
	}
}

// TestS3BucketPerTest: S3 gives a test a bucket of its own on a server that
// takes the credentials, and removes it, objects and all, when the test
// passes.
func TestS3BucketPerTest(t *testing.T) {
	var s *S3Env
	t.Run("inner", func(t *testing.T) {
		s = S3(t)
		if !validBucket.MatchString(s.Bucket) {
			t.Fatalf("bucket %q is not a valid name", s.Bucket)
		}
		ctx := context.Background()
		if _, err := s.Client().PutObject(ctx, s.Bucket, "a/b", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		o, err := s.Client().GetObject(ctx, s.Bucket, "a/b", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if b, err := io.ReadAll(o); err != nil || string(b) != "hello" {
			t.Fatalf("read back %q, %v", b, err)
		}
		if other := S3(t); other.Bucket == s.Bucket {
			t.Fatalf("two calls gave the same bucket %s", s.Bucket)
		}
	})
	if s == nil {
		return
	}
	ok, err := s.Client().BucketExists(context.Background(), s.Bucket)
	if err != nil || ok {
		t.Fatalf("bucket %s after its test passed: exists=%v, %v; want removed", s.Bucket, ok, err)
	}
	bad, err := newS3Client(s.Endpoint, s.AccessKey, "not-the-secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ListBuckets(context.Background()); err == nil {
		t.Fatal("the server accepted a wrong secret")
	}
}

// TestLoadEnvWithoutS3: the env.json of an older testenv (no s3 fields)
// still loads, for Kafka and Cassandra, and says it has no S3 server.
func TestLoadEnvWithoutS3(t *testing.T) {
	dir := t.TempDir()
	old := `{"kafka_seeds":["127.0.0.1:1"],"cassandra_hosts":["127.0.0.1:2"],"dir":"` + dir + `","kafka_pid":2147483000,"cassandra_pid":2147483001,"fetch_time":"1s","kafka_start_time":"1s","cassandra_start_time":"1s"}`
	f := filepath.Join(dir, EnvFileName)
	if err := os.WriteFile(f, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if env.HasS3() {
		t.Fatal("an env.json without s3 fields reports an S3 server")
	}
	if got := len(env.Status()); got != 2 {
		t.Fatalf("Status lists %d processes; want kafka and cassandra only", got)
	}
	if !strings.Contains(errNoS3.Error(), "restart") {
		t.Fatalf("the error for it does not say to restart: %v", errNoS3)
	}
}

const s3ChildVar = "PARLEY_TESTENV_S3_CHILD"

// TestKilledOwnerLeavesNoS3 starts a lone S3 server in a child process,
// SIGKILLs the child, and checks the kernel takes versitygw down with it.
func TestKilledOwnerLeavesNoS3(t *testing.T) {
	if os.Getenv(s3ChildVar) != "" {
		srv, err := startLoneS3(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewEncoder(os.Stdout).Encode(map[string]int{"s3_pid": srv.p.pid})
		select {} // wait to be killed
	}
	if testing.Short() {
		t.Skip("starts an S3 server")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledOwnerLeavesNoS3$")
	cmd.Env = append(os.Environ(), s3ChildVar+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if json.Unmarshal(sc.Bytes(), &got) == nil && got["s3_pid"] != 0 {
			break
		}
	}
	pid := got["s3_pid"]
	if pid == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not report a started S3 server; stderr:\n%s", stderr.String())
	}
	p := &proc{name: "s3", exe: "versitygw", pid: pid}
	if !pidAlive(pid) || !p.ours() {
		t.Fatalf("versitygw %d not running before the kill", pid)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	err = WaitFor(context.Background(), time.Minute, func() string {
		if pidAlive(pid) && p.ours() {
			return fmt.Sprintf("versitygw %d outlived its killed owner", pid)
		}
		return ""
	})
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal(err)
	}
}
