package blob_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway/blob"
)

// killChildVar carries, to the child process of testKilledMidPut, the
// settings of the store it writes to (JSON).
const killChildVar = "PARLEY_BLOB_TEST_KILL_CHILD"

const (
	killStaged = 10 << 20 // what the child's Puts have read when it is killed
	killSize   = 20 << 20 // what they said they would put
)

// testKilledMidPut starts a child process that Puts two blobs of 20 MiB,
// one over an existing blob and one under a new key, from readers that stop
// after 10 MiB (S3: after the first part was uploaded), and SIGKILLs it
// there. Afterwards the existing key still holds its old blob, the new key
// holds nothing, and what the Puts left is invisible (dir: staged files,
// removed by NewDir once they are an hour old; s3: incomplete uploads).
func testKilledMidPut(t *testing.T, be backend, env map[string]string) {
	ctx := context.Background()
	s := openStore(t, env)
	old := randomBytes(4096)
	existing, fresh := testKey(t, "killed over"), testKey(t, "killed new")
	put(t, s, existing, old, "text/plain")

	settings, err := json.Marshal(map[string]any{"env": env, "keys": []string{existing, fresh}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBlobKilledPutChild$")
	cmd.Env = append(os.Environ(), killChildVar+"="+string(settings))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	staged := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "staged" {
				staged <- true
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(staged)
	}()
	select {
	case ok := <-staged:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("the child ended before its Puts were under way:\n%s", stderr.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the child's Puts did not get under way in 2 minutes:\n%s", stderr.String())
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	s = openStore(t, env) // as a restarted gateway would
	if got, info := readAll(t, s, existing); !bytes.Equal(got, old) || info.ContentType != "text/plain" {
		t.Fatalf("the key overwritten by the killed Put: %d bytes, %+v; want the old blob", len(got), info)
	}
	if _, err := s.Stat(ctx, fresh); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("the key first written by the killed Put: %v; want ErrNotFound", err)
	}
	var keys []string
	if err := s.List(ctx, "", func(k string, _ blob.Info) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{existing}) {
		t.Fatalf("List after the kill = %v; want only %s", keys, existing)
	}
	left := be.leftovers(t, env)
	t.Logf("%s: the killed Puts left %d invisible leftovers: %v", be.name, len(left), left)
	if len(left) != 2 {
		t.Fatalf("want the two killed Puts' leftovers (and only them) to be there, invisibly; got %v", left)
	}
	if be.name == "dir" {
		// NewDir removes staged files once they are an hour old.
		for _, f := range left {
			past := time.Now().Add(-2 * time.Hour)
			if err := os.Chtimes(f, past, past); err != nil {
				t.Fatal(err)
			}
		}
		openStore(t, env)
		if left := be.leftovers(t, env); len(left) != 0 {
			t.Fatalf("NewDir kept staged files two hours old: %v", left)
		}
	}
}

// TestBlobKilledPutChild is the child process of testKilledMidPut; run on
// its own it does nothing.
func TestBlobKilledPutChild(t *testing.T) {
	raw := os.Getenv(killChildVar)
	if raw == "" {
		t.Skip("the child of the kill test (TestBlobDir, TestBlobS3: KilledMidPutLeavesNothingVisible)")
	}
	var settings struct {
		Env  map[string]string
		Keys []string
	}
	if err := json.Unmarshal([]byte(raw), &settings); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, settings.Env)
	var reached sync.WaitGroup
	for _, k := range settings.Keys {
		reached.Add(1)
		go func() {
			r := &stallingReader{r: io.LimitReader(endless(3), killSize), at: killStaged, reached: reached.Done}
			err := s.Put(context.Background(), k, r, killSize, "application/octet-stream")
			fmt.Fprintf(os.Stderr, "Put %s returned %v, which it should not have before the kill\n", k, err)
			os.Exit(3)
		}()
	}
	reached.Wait()
	fmt.Println("staged")
	select {} // wait to be killed
}

// stallingReader delivers at bytes of r, calls reached, and then blocks
// forever, as a client that stops sending does.
type stallingReader struct {
	r       io.Reader
	at      int
	read    int
	reached func()
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.read >= s.at {
		if s.reached != nil {
			s.reached()
			s.reached = nil
		}
		select {}
	}
	if left := s.at - s.read; len(p) > left {
		p = p[:left]
	}
	n, err := s.r.Read(p)
	s.read += n
	return n, err
}
