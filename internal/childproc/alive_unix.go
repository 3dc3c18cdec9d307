//go:build unix

package childproc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// Alive reports whether a process with this pid exists.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func kill(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }

// runsIn reports whether process pid was started with dir on its command
// line, as the servers Start runs are (data directory, config file): a
// pid read from a stale pid file may since have been given to any other
// process (pid_max is often 32768). Where /proc is missing it cannot be
// told, and it reports true.
func runsIn(pid int, dir string) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		_, serr := os.Stat("/proc/self/cmdline")
		return serr != nil
	}
	return bytes.Contains(raw, []byte(dir))
}
