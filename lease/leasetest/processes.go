package leasetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// Environment variables that turn a re-executed test binary into a
// contender of ContendAcrossProcesses.
const (
	envDir   = "FERRY_LEASETEST_DIR"
	envStart = "FERRY_LEASETEST_START" // unix nanoseconds
	envUntil = "FERRY_LEASETEST_UNTIL"
)

// ProcessOptions tunes ContendAcrossProcesses. The zero value is ready to
// use.
type ProcessOptions struct {
	// Processes is how many OS processes contend. Default 2.
	Processes int
	// Workers is how many goroutines contend in each process. Default 4.
	Workers int
	// Duration is how long they contend. Default 2s.
	Duration time.Duration
	// Env is added to the children's environment; pass the connection
	// details of the backend here (children must not start their own).
	Env []string
}

// IsChild reports whether this process is a contender started by
// ContendAcrossProcesses. A test that sets up a backend for the children
// must skip that setup in them.
func IsChild() bool { return os.Getenv(envDir) != "" }

// ContendAcrossProcesses checks mutual exclusion between OS processes. It
// re-executes the test binary, running only the calling top-level test,
// opts.Processes times; in each child, newLocker builds a Locker from the
// environment (see ProcessOptions.Env) and workers contend for key as in
// Contend, keeping the shared counter, the last token and an "inside"
// marker in files of a shared temp dir. The parent fails the test when a
// child fails (two holders at once, a token that did not increase, a
// failed Release) or when the counter lost updates.
func ContendAcrossProcesses(t *testing.T, key string, opts ProcessOptions, newLocker func(t *testing.T) lease.Locker) {
	t.Helper()
	if opts.Processes <= 0 {
		opts.Processes = 2
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Duration <= 0 {
		opts.Duration = 2 * time.Second
	}
	if IsChild() {
		runChild(t, key, opts, newLocker)
		return
	}

	dir := t.TempDir()
	// Children start together, after each has had time to connect.
	start := time.Now().Add(time.Second)
	until := start.Add(opts.Duration)
	env := append(os.Environ(), opts.Env...)
	env = append(env, envDir+"="+dir,
		envStart+"="+strconv.FormatInt(start.UnixNano(), 10),
		envUntil+"="+strconv.FormatInt(until.UnixNano(), 10))
	var wg sync.WaitGroup
	outputs := make([]bytes.Buffer, opts.Processes)
	errs := make([]error, opts.Processes)
	pids := make([]int, opts.Processes)
	for i := range opts.Processes {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = &outputs[i], &outputs[i]
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting contender %d: %v", i, err)
		}
		pids[i] = cmd.Process.Pid
		wg.Go(func() { errs[i] = cmd.Wait() })
	}
	wg.Wait()
	var total int64
	for i, err := range errs {
		if err != nil {
			t.Errorf("contender process %d failed: %v\n%s", i, err, outputs[i].String())
			continue
		}
		n, rerr := dirLedger{dir}.read(fmt.Sprintf("acquired-%d", pids[i]))
		if rerr != nil {
			t.Errorf("contender %d: %v", i, rerr)
		}
		t.Logf("contender process %d: %d acquisitions", i, n)
		total += n
	}
	counter, err := dirLedger{dir}.read("counter")
	if err != nil {
		t.Fatal(err)
	}
	if counter != total {
		t.Errorf("counter = %d after %d acquisitions: updates were lost, so two processes held the lease at once", counter, total)
	}
	if total == 0 {
		t.Errorf("no process ever acquired %q", key)
	}
}

func runChild(t *testing.T, key string, opts ProcessOptions, newLocker func(t *testing.T) lease.Locker) {
	dir := os.Getenv(envDir)
	start, err1 := strconv.ParseInt(os.Getenv(envStart), 10, 64)
	until, err2 := strconv.ParseInt(os.Getenv(envUntil), 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad %s/%s: %v %v", envStart, envUntil, err1, err2)
	}
	lk := newLocker(t)
	time.Sleep(time.Until(time.Unix(0, start)))
	res := contend(t, lk, key, dirLedger{dir}, opts.Workers, time.Unix(0, until))
	if err := (dirLedger{dir}).write(fmt.Sprintf("acquired-%d", os.Getpid()), res.Acquired); err != nil {
		t.Fatal(err)
	}
	t.Logf("pid %d: %s", os.Getpid(), res)
}
