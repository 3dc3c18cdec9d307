package childproc

import (
	"os/exec"
	"runtime"
	"syscall"
)

// start forks cmd in its own process group with Pdeathsig. Pdeathsig fires
// when the *thread* that forked the child exits, so Start's goroutine,
// which forks and then waits for the child, is locked to its thread and
// never unlocks it: the thread is discarded when the goroutine ends, after
// the child did.
func start(cmd *exec.Cmd, deathSig syscall.Signal) error {
	runtime.LockOSThread()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = deathSig
	cmd.SysProcAttr.Setpgid = true
	return cmd.Start()
}

// Supported reports whether Start can run processes here: it can.
func Supported() error { return nil }
