//go:build !unix

package storagetest

import (
	"os"
	"os/exec"
)

// credential is empty here: Start refuses to run (childproc.Supported).
type credential struct{}

func serverCredential() (*credential, error) { return nil, nil }

func asUser(*exec.Cmd, *credential) {}

func chownTo(string, *credential) error { return nil }

func uidOf(*credential) int { return os.Getuid() }
