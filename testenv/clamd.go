package testenv

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway/scan"
)

// EICARSignature is the name the signature database Clamd writes gives the
// EICAR test file; clamd reports it with ".UNOFFICIAL" appended (a
// database it did not get from ClamAV).
const EICARSignature = "Parley.Test.EICAR"

// EICAR returns the EICAR anti-virus test file: 68 harmless bytes every
// scanner reports as infected. It is put together here so that no file of
// the repository carries it whole.
func EICAR() []byte {
	parts := []string{`X5O!P%@AP[4\PZX54(P^)7CC)7}$`, "EICAR-STANDARD-", "ANTIVIRUS-TEST-FILE!", "$H+H*"}
	return []byte(strings.Join(parts, ""))
}

// ClamdOptions tunes the clamd ClamdWith starts.
type ClamdOptions struct {
	// TCP listens on 127.0.0.1 (a port from FreePorts) instead of a unix
	// socket.
	TCP bool
	// StreamMaxLength, MaxFileSize and MaxScanSize are clamd's limits in
	// bytes (default 1000 MiB each, above the gateway's largest file).
	StreamMaxLength, MaxFileSize, MaxScanSize int64
	// AlertExceedsMax makes clamd report a file past MaxFileSize or
	// MaxScanSize ("Heuristics.Limits.Exceeded…") instead of answering OK.
	AlertExceedsMax bool
}

// ClamdServer is one clamd a test started, with a signature database that
// knows only the EICAR test file.
type ClamdServer struct {
	// Network ("unix" or "tcp") and Address are where it listens.
	Network, Address string
	// Dir holds its configuration, database and log.
	Dir  string
	bin  string
	conf string
	t    testing.TB
	p    *proc
}

// clamdBinary finds clamd on PATH or where Debian's clamav-daemon puts it
// (sbin directories are often not on a user's PATH).
func clamdBinary() (string, error) {
	if p, err := exec.LookPath("clamd"); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, "clamd")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: clamd not found on PATH nor in /usr/sbin; install ClamAV's daemon (Debian/Ubuntu: apt-get install clamav-daemon)", ErrMissingTool)
}

// Clamd starts a clamd for this test on a unix socket (ClamdWith with no
// options). It skips the test when clamd is not installed, and under
// -short.
func Clamd(t testing.TB) *ClamdServer { t.Helper(); return ClamdWith(t, ClamdOptions{}) }

// ClamdWith starts a clamd for this test: its configuration, a signature
// database of one body signature (the EICAR test file, anywhere in a
// stream) and its temporary files in a directory of the test, no
// signatures from the network. It returns once clamd answers PING, and
// stops it at cleanup.
func ClamdWith(t testing.TB, opts ClamdOptions) *ClamdServer {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs clamd (skipped with -short)")
	}
	bin, err := clamdBinary()
	if err != nil {
		t.Skipf("%v", err)
	}
	dir := t.TempDir()
	db, tmp := filepath.Join(dir, "db"), filepath.Join(dir, "tmp")
	for _, d := range []string{db, tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sig := EICARSignature + ":0:*:" + hex.EncodeToString(EICAR()) + "\n"
	if err := os.WriteFile(filepath.Join(db, "parley-test.ndb"), []byte(sig), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &ClamdServer{Dir: dir, bin: bin, conf: filepath.Join(dir, "clamd.conf"), t: t}
	var listen string
	if opts.TCP {
		ports, err := FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		c.Network, c.Address = "tcp", fmt.Sprintf("127.0.0.1:%d", ports[0])
		listen = fmt.Sprintf("TCPSocket %d\nTCPAddr 127.0.0.1\n", ports[0])
	} else {
		// A socket path has at most 107 bytes: a short directory of its
		// own rather than the test's.
		sock, err := os.MkdirTemp("", "clamd-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(sock) })
		c.Network, c.Address = "unix", filepath.Join(sock, "clamd.sock")
		listen = "LocalSocket " + c.Address + "\nLocalSocketMode 600\n"
	}
	limit := func(v int64) string {
		if v <= 0 {
			v = 1000 << 20
		}
		return fmt.Sprint(v)
	}
	alert := "no"
	if opts.AlertExceedsMax {
		alert = "yes"
	}
	conf := "Foreground yes\n" + listen +
		"DatabaseDirectory " + db + "\n" +
		"TemporaryDirectory " + tmp + "\n" +
		"StreamMaxLength " + limit(opts.StreamMaxLength) + "\n" +
		"MaxFileSize " + limit(opts.MaxFileSize) + "\n" +
		"MaxScanSize " + limit(opts.MaxScanSize) + "\n" +
		"AlertExceedsMax " + alert + "\n" +
		"SelfCheck 0\n" +
		"ReadTimeout 30\n" +
		"CommandReadTimeout 30\n" +
		"MaxThreads 4\n"
	if err := os.WriteFile(c.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(c.Stop)
	return c
}

// Start starts clamd (again, after Stop) on the same address and
// database, and returns once it answers PING.
func (c *ClamdServer) Start() {
	c.t.Helper()
	if c.p != nil && c.p.alive() {
		return
	}
	p, err := startProcess(c.bin, c.Dir, "clamd", "clamd", true, []string{"--config-file=" + c.conf}, nil)
	if err != nil {
		c.t.Fatalf("testenv: %v", err)
	}
	p.logFile = filepath.Join(c.Dir, "stdout.log")
	if err := p.waitReady(context.Background(), time.Minute, func(ctx context.Context) error {
		return scan.Clamd{Network: c.Network, Address: c.Address}.Ping(ctx)
	}); err != nil {
		p.stop(5 * time.Second)
		c.t.Fatalf("%v", err)
	}
	c.p = p
}

// Stop stops clamd (SIGTERM, then SIGKILL after 5 s); its address then
// refuses connections.
func (c *ClamdServer) Stop() {
	if c.p != nil {
		c.p.stop(5 * time.Second)
	}
	if c.Network == "unix" {
		_ = os.Remove(c.Address)
	}
}
