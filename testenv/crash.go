package testenv

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// Kill SIGKILLs one server of an Env this process started ("kafka",
// "cassandra" or "s3") and waits until it is gone: a crash, with no shutdown hook,
// no flush and no goodbye to clients. Restart brings it back.
func (e *Env) Kill(name string) error {
	p, err := e.proc(name)
	if err != nil {
		return err
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("testenv: %s (pid %d) still running 30s after SIGKILL", name, p.pid)
	}
}

// Pause stops one server with SIGSTOP (a machine that hangs rather than
// dies); Resume continues it.
func (e *Env) Pause(name string) error { return e.signal(name, syscall.SIGSTOP) }

// Resume continues a server stopped by Pause.
func (e *Env) Resume(name string) error { return e.signal(name, syscall.SIGCONT) }

func (e *Env) signal(name string, sig syscall.Signal) error {
	p, err := e.proc(name)
	if err != nil {
		return err
	}
	return syscall.Kill(p.pid, sig)
}

// Restart starts a killed server again on its ports, with its data, and returns
// once it answers its protocol. A running one is an error.
func (e *Env) Restart(ctx context.Context, name string) error {
	p, err := e.proc(name)
	if err != nil {
		return err
	}
	if p.alive() {
		return fmt.Errorf("testenv: %s (pid %d) is still running; Kill it first", name, p.pid)
	}
	np, err := p.restart(ctx)
	if err != nil {
		return fmt.Errorf("testenv: restarting %s: %w", name, err)
	}
	for i, q := range e.procs {
		if q == p {
			np.restart = p.restart
			e.procs[i] = np
		}
	}
	switch name {
	case "kafka":
		e.KafkaPID = np.pid
	case "cassandra":
		e.CassandraPID = np.pid
	case "s3":
		e.S3PID = np.pid
	}
	return e.write()
}

func (e *Env) proc(name string) (*proc, error) {
	for _, p := range e.procs {
		if p.name == name {
			if p.restart == nil || p.exited == nil {
				return nil, fmt.Errorf("testenv: %s was not started by this process: it can be crashed and restarted only by its owner", name)
			}
			return p, nil
		}
	}
	return nil, fmt.Errorf("testenv: no server named %q (want kafka, cassandra or s3)", name)
}
