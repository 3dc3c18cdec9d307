package childproc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TempDir makes a temp dir named prefix<pid>-…, which SweepStale
// recognises once this process is gone.
func TempDir(prefix string) (string, error) {
	return os.MkdirTemp("", fmt.Sprintf("%s%d-", prefix, os.Getpid()))
}

// SweepStale removes the temp dirs made by TempDir(prefix) in processes
// that are no longer alive. Before removing one it kills (SIGKILL) the
// server whose pid is on the first line of pidFile inside it, if that is
// still running and is that server (its command line names the dir: the
// pid may have been reused); pidFile may be "".
func SweepStale(prefix, pidFile string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, d := range dirs {
		owner, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), prefix), "-")
		pid, err := strconv.Atoi(owner)
		if err != nil || pid == os.Getpid() || Alive(pid) {
			continue
		}
		if pidFile != "" {
			if b, err := os.ReadFile(filepath.Join(d, pidFile)); err == nil {
				first, _, _ := strings.Cut(string(b), "\n")
				if srv, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && Alive(srv) && runsIn(srv, d) {
					kill(srv)
				}
			}
		}
		_ = os.RemoveAll(d)
	}
}

// Tail returns the last n lines of b, for error messages quoting a log.
func Tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
