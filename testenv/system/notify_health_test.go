package system_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// mainProc is a main's binary run as a child process of the test, with
// its settings in env: started, SIGKILLed and started again at will, and
// killed with the test.
type mainProc struct {
	t   *testing.T
	bin string
	env []string
	cmd *exec.Cmd
}

// run starts the binary (again), its stderr to stderr.
func (p *mainProc) run(stderr io.Writer) {
	p.t.Helper()
	p.cmd = exec.Command(p.bin)
	p.cmd.Env, p.cmd.Stderr = p.env, stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
}

// kill SIGKILLs the running binary and waits for it.
func (p *mainProc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// notifierProc is the notifier binary run against sys, as a separate
// process that can be killed and started again.
type notifierProc struct {
	mainProc
	out *opsWriter
}

// newNotifierProc builds projector/cmd/notifier and returns it, not yet
// started, with sys's Kafka, Cassandra, topics and groups, its ops
// listener on a port of its own choosing, and the provider settings in
// providers.
func newNotifierProc(t *testing.T, sys *system.System, c *testenv.CassandraEnv, providers ...string) *notifierProc {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "notifier")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/parley-im/parley/projector/cmd/notifier").CombinedOutput(); err != nil {
		t.Fatalf("go build notifier: %v\n%s", err, out)
	}
	env := append(os.Environ(),
		"PARLEY_KAFKA_SEEDS="+strings.Join(sys.Options().Seeds, ","),
		"PARLEY_CASSANDRA_HOSTS="+strings.Join(c.Hosts, ","),
		"PARLEY_KEYSPACE="+c.Keyspace,
		"PARLEY_TOPIC_PREFIX="+strings.TrimSuffix(sys.Topics.Commands.Name, schemas.Commands.Name),
		"PARLEY_NOTIFIER_GROUP="+sys.GroupOf("notifier"),
		"PARLEY_NOTIFIER_PROJECTOR="+sys.GroupOf("projector"),
		"PARLEY_NOTIFIER_FROM_START=true",
		"PARLEY_HTTP_ADDR=127.0.0.1:0",
	)
	p := &notifierProc{mainProc: mainProc{t: t, bin: bin, env: append(env, providers...)}}
	t.Cleanup(p.kill)
	return p
}

// start runs the binary (again).
func (p *notifierProc) start() {
	p.t.Helper()
	p.out = &opsWriter{found: make(chan string, 1)}
	p.run(p.out)
}

// opsURL is the running binary's ops listener, from its start log line.
func (p *notifierProc) opsURL() string {
	p.t.Helper()
	select {
	case addr := <-p.out.found:
		p.out.found <- addr
		return "http://" + addr
	case <-time.After(time.Minute):
		p.t.Fatal("the notifier logged no ops address within a minute")
		return ""
	}
}

// healthz is one GET /healthz of the running binary.
func (p *notifierProc) healthz() (int, deploy.HealthBody, error) {
	var body deploy.HealthBody
	resp, err := http.Get(p.opsURL() + "/healthz")
	if err != nil {
		return 0, body, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, err
}

// waitReady waits until the running binary's /healthz answers 200 and
// returns its body.
func (p *notifierProc) waitReady() deploy.HealthBody {
	p.t.Helper()
	var body deploy.HealthBody
	testenv.Eventually(p.t, 2*time.Minute, func() string {
		code, b, err := p.healthz()
		if err != nil || code != http.StatusOK {
			return fmt.Sprintf("notifier /healthz: %d %+v %v", code, b, err)
		}
		body = b
		return ""
	})
	return body
}

// opsWriter takes the binary's JSON log, finds the ops listener's address
// in its "notifier starting" line, and copies the log to the test's
// stderr under -v.
type opsWriter struct {
	mu    sync.Mutex
	buf   []byte
	found chan string
	seen  bool
}

func (w *opsWriter) Write(b []byte) (int, error) {
	if testing.Verbose() {
		_, _ = os.Stderr.Write(b)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		var line struct {
			Msg string `json:"msg"`
			Ops string `json:"ops"`
		}
		if !w.seen && json.Unmarshal(w.buf[:i], &line) == nil && line.Msg == "notifier starting" && line.Ops != "" {
			w.seen = true
			w.found <- line.Ops
		}
		w.buf = w.buf[i+1:]
	}
}

// TestE2ENotifierHealthz runs the notifier binary with the webhook
// provider: its /healthz answers 200 once it is connected to Kafka and
// Cassandra, its planner and deliverer are members of their groups with
// their assignments and it reads the signals topic; every check is named
// in the body.
func TestE2ENotifierHealthz(t *testing.T) {
	t.Parallel()
	sys, c := start(t, 1)
	p := newNotifierProc(t, sys, c, "PARLEY_WEBHOOK_SECRET=0123456789abcdef0123456789abcdef")
	p.start()
	body := p.waitReady()
	for _, name := range []string{"kafka", "cassandra", "consumers"} {
		if body.Checks[name] != "ok" {
			t.Errorf("check %s: %q in %+v", name, body.Checks[name], body)
		}
	}
	if body.Status != "ok" || len(body.Checks) != 3 {
		t.Fatalf("/healthz body %+v", body)
	}
}
