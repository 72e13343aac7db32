package projector

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
)

// TestTakeoverAfterSIGKILL runs the projector binary with a static instance
// id, SIGKILLs it once it applied a log, appends more events and starts it
// again with the same id: it reports how long the restarted process took to
// apply again (its partitions are handed back at once, without waiting for
// the dead member's session to time out). /healthz answers 200 while it
// runs and applies.
func TestTakeoverAfterSIGKILL(t *testing.T) {
	k, c := testenv.Kafka(t), testenv.MigratedCassandra(t)
	prefix := k.Name("p") + "."
	topics := schemas.Prefixed(prefix)
	adm := kadm.NewClient(k.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res, err := adm.CreateTopic(ctx, schemas.DefaultPartitions, 1, nil, topics.Events.Name); err != nil || res.Err != nil {
		t.Fatalf("create %s: %v %v", topics.Events.Name, err, res.Err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, topics.Events.Name, topics.DeadLetters.Name)
	})
	e := &env{t: t, k: k, c: c, topic: topics.Events.Name, keyspace: c.Keyspace, s: session(t, c.Hosts)}
	group := deploy.GroupName(prefix, "projector")

	bin := filepath.Join(t.TempDir(), "projector")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/parley-im/parley/projector/cmd/projector").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var proc *exec.Cmd
	var logRead chan struct{} // closed once the process's stderr is read to its end
	// start runs the binary and returns the address of its /healthz. The
	// process binds a free port itself (PARLEY_HTTP_ADDR 127.0.0.1:0) and
	// names it in its "projector starting" log line.
	start := func() string {
		t.Helper()
		proc = exec.Command(bin)
		proc.Env = append(os.Environ(),
			"PARLEY_KAFKA_SEEDS="+strings.Join(k.Seeds, ","),
			"PARLEY_CASSANDRA_HOSTS="+strings.Join(c.Hosts, ","),
			"PARLEY_KEYSPACE="+c.Keyspace,
			"PARLEY_TOPIC_PREFIX="+prefix,
			"PARLEY_INSTANCE_ID=takeover-1",
			"PARLEY_HTTP_ADDR=127.0.0.1:0",
		)
		proc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stderr, err := proc.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
		addr := make(chan string, 1)
		var last []string // the last lines, for a process that exits at once
		logRead = make(chan struct{})
		go func() {
			defer close(logRead)
			defer close(addr)
			echo := testing.Verbose() && os.Getenv("PARLEY_TEST_LOG") != ""
			sc := bufio.NewScanner(stderr)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if echo {
					fmt.Fprintln(os.Stderr, sc.Text())
				}
				last = append(last[max(0, len(last)-19):], sc.Text())
				var line struct{ Msg, Ops string }
				if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "projector starting" {
					addr <- line.Ops
				}
			}
			_, _ = io.Copy(io.Discard, stderr) // a line too long for the scanner: never block the process
		}()
		select {
		case a, ok := <-addr:
			if !ok {
				<-logRead
				t.Fatalf("the projector exited before it started:\n%s", strings.Join(last, "\n"))
			}
			return a
		case <-time.After(time.Minute):
			t.Fatal(`no "projector starting" line a minute after the start`)
			return ""
		}
	}
	kill := func() {
		if proc == nil || proc.Process == nil {
			return
		}
		_ = proc.Process.Signal(syscall.SIGKILL)
		<-logRead // Wait closes the pipe: read it to the end first
		_ = proc.Wait()
	}
	t.Cleanup(kill)

	s := newSim(5, "g:takeover", 24)
	s.step(300)
	ops := start()
	e.waitApplied(e.keyspace, group, e.produce(s.log...), 90*time.Second)
	testenv.Eventually(t, 30*time.Second, func() string {
		if code, b := healthz(ops); code != http.StatusOK {
			return fmt.Sprintf("/healthz of a projector that applied everything: %d %+v", code, b)
		}
		return ""
	})

	kill()
	more := e.produce(s.step(200)...)
	restarted := time.Now()
	start()
	e.waitApplied(e.keyspace, group, more, 90*time.Second)
	t.Logf("restarted with the same instance id: applying again after %v (session timeout %v)",
		time.Since(restarted).Round(time.Millisecond), deploy.DefaultSessionTimeout)
	e.checkModel(t, s, e.dump(e.keyspace))
}

func healthz(addr string) (int, deploy.HealthBody) {
	var b deploy.HealthBody
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, b
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&b)
	return resp.StatusCode, b
}
