//go:build unix

package storagetest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// credential is the OS user the server runs as.
type credential = syscall.Credential

// serverCredential is the postgres OS user when running as root (the
// server refuses to run as root), else nil (run as ourselves).
func serverCredential() (*credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root and there is no 'postgres' OS user to run the server as (install the postgresql package)", ErrUnavailable)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// asUser makes cmd run as c (nil: as ourselves).
func asUser(cmd *exec.Cmd, c *credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c}
}

// chownTo gives dir to c (nil: leaves it alone).
func chownTo(dir string, c *credential) error {
	if c == nil {
		return nil
	}
	return os.Chown(dir, int(c.Uid), int(c.Gid))
}

// uidOf is the uid the server runs as.
func uidOf(c *credential) int {
	if c == nil {
		return os.Getuid()
	}
	return int(c.Uid)
}
