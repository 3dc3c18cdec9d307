package childproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// ErrExited is returned by WaitReady when the process ended before it was
// ready.
var ErrExited = errors.New("childproc: process exited")

// ErrUnsupported is returned by Start on systems where throwaway servers
// cannot be run (anything but Linux and other Unix systems).
var ErrUnsupported = errors.New("childproc: throwaway server processes need Linux or another Unix system")

// Process is a started child process.
type Process struct {
	proc    *os.Process
	exited  chan struct{}
	waitErr error
}

// Start starts cmd so that it does not outlive this process where the
// system allows: on Linux in its own process group with the kernel sending
// it deathSig when this process dies; on other Unix systems in its own
// process group (a crashed parent's children are left to SweepStale); on
// other systems it fails with ErrUnsupported. cmd.SysProcAttr may carry
// other fields, such as a Credential.
func Start(cmd *exec.Cmd, deathSig syscall.Signal) (*Process, error) {
	p := &Process{exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		defer close(p.exited)
		if err := start(cmd, deathSig); err != nil {
			started <- err
			return
		}
		p.proc = cmd.Process
		started <- nil
		p.waitErr = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended; valid once Exited is closed.
func (p *Process) Err() error { return p.waitErr }

// Signal sends sig to the process (SIGSTOP and SIGCONT make a server hang
// and come back, for tests of clients facing a hung server).
func (p *Process) Signal(sig os.Signal) error { return p.proc.Signal(sig) }

// Pid is the process id.
func (p *Process) Pid() int { return p.proc.Pid }

// Stop sends sig and waits up to grace for the process to end, then sends
// hard and waits for it.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration, hard syscall.Signal) {
	_ = p.proc.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.proc.Signal(hard)
		<-p.exited
	}
}

// WaitReady calls probe every interval until it succeeds, the process
// exits (ErrExited, with how), ctx ends, or timeout passes (the last probe
// error).
func WaitReady(ctx context.Context, p *Process, timeout, interval time.Duration, probe func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%w: %v", ErrExited, p.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
	}
}
