//go:build unix

package childproc

import (
	"errors"
	"syscall"
)

// Alive reports whether a process with this pid exists.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func kill(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }
