package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one server process testenv started (a JVM, or versitygw).
type proc struct {
	name string
	pid  int
	// exe is a word of the process's command line ("java", "versitygw"):
	// a pid from env.json is signalled only while it still runs that, not
	// once it is reused by something else.
	exe     string
	logFile string // the component's own log, shown when start fails
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returns (only for processes we started)
	// restart starts the same JVM again on the same ports and data (only
	// for processes this process started; see Env.Restart).
	restart func(ctx context.Context) (*proc, error)
}

// startJava starts java with args in dir, stdout and stderr to dir/stdout.log.
// tied=true makes the kernel kill the JVM when the starting process dies
// (PR_SET_PDEATHSIG), so a killed test binary leaves no orphan JVM; the
// background `testenv up` passes false and records the pid instead.
func startJava(java, dir, name string, tied bool, args []string) (*proc, error) {
	return startProcess(java, dir, name, "java", tied, args, nil)
}

// startProcess starts bin with args and env (added to this process's) in
// dir, as startJava does; exe is what proc.ours looks for.
func startProcess(bin, dir, name, exe string, tied bool, args, env []string) (*proc, error) {
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if tied {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testenv: starting %s: %w", name, err)
	}
	p := &proc{name: name, pid: cmd.Process.Pid, exe: exe, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(p.pid)), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// alive reports whether the process still runs.
func (p *proc) alive() bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	return pidAlive(p.pid)
}

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie still answers kill 0; treat it as gone.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return false
		}
	}
	return true
}

// ours reports whether the pid still runs the program this proc started
// (always true for a process this process started and has not reaped).
func (p *proc) ours() bool {
	if p.exited != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
	return err == nil && strings.Contains(string(b), p.exe)
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs.
func (p *proc) stop(grace time.Duration) {
	if p == nil || !p.alive() {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.alive() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	for i := 0; i < 100 && p.alive(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// rssKiB reads the resident set size of the process from /proc.
func (p *proc) rssKiB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

// waitReady polls probe until it succeeds, the process dies, or ctx ends; the
// error then carries the last lines of the component's log.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		if !p.alive() {
			return fmt.Errorf("testenv: %s exited during start (last probe: %v); last log lines:\n%s", p.name, last, p.logTail())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: %s not ready after %s (last probe: %v); last log lines:\n%s", p.name, timeout, last, p.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *proc) logTail() string {
	var parts []string
	for _, f := range []string{p.logFile, filepath.Join(filepath.Dir(p.logFile), "..", "stdout.log")} {
		if b, err := os.ReadFile(f); err == nil && len(b) > 0 {
			parts = append(parts, "== "+filepath.Clean(f)+"\n"+tail(string(b), 20))
		}
	}
	return strings.Join(parts, "\n")
}

// FreePorts asks the kernel for n free TCP ports on 127.0.0.1 and lets them
// go again. Only for a child process that can take nothing but an address
// (the Kafka and Cassandra JVMs): between the pick and the child's bind
// another process may take a port, and the child then fails to start with
// "address in use". A server in this process takes a listener instead
// (Listen, or net.Listen on 127.0.0.1:0, handed over as it is), and a Go
// child that only needs some port of its own is given 127.0.0.1:0.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ProcessCPU is the CPU time (user and system) process pid has used, from
// /proc (in clock ticks of 1/100 s); false when it cannot be read.
func ProcessCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}
