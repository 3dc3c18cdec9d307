//go:build unix && !linux

package childproc

import (
	"os/exec"
	"syscall"
)

// start forks cmd in its own process group. Without Pdeathsig a child
// outlives a parent that crashes; SweepStale kills it on a later run.
func start(cmd *exec.Cmd, _ syscall.Signal) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	return cmd.Start()
}

// Supported reports whether Start can run processes here: it can.
func Supported() error { return nil }
