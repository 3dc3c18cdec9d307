//go:build !unix

package childproc

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
)

func start(*exec.Cmd, syscall.Signal) error { return Supported() }

// Supported reports whether Start can run processes here: it cannot.
func Supported() error { return fmt.Errorf("%w (GOOS=%s)", ErrUnsupported, runtime.GOOS) }
