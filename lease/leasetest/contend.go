package leasetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lease"
)

// ContentionResult is what a contention run observed.
type ContentionResult struct {
	Acquired int64 // successful acquisitions
	Attempts int64 // Acquire calls
}

// String formats the result for logs.
func (r ContentionResult) String() string {
	return fmt.Sprintf("%d acquisitions in %d attempts", r.Acquired, r.Attempts)
}

// contentionTTL is long so that only a broken Locker, not a slow machine,
// lets a second holder in.
const contentionTTL = 10 * time.Second

// ledger is the shared state that holders touch only while they hold the
// lease. It detects two holders at once, tokens that do not increase, and
// lost counter updates.
type ledger interface {
	enter(token int64) error // fails if someone else is inside
	leave() error
	increment() error // a deliberately non-atomic read-modify-write
}

// Contend runs workers goroutines for d, each repeatedly acquiring key,
// incrementing a shared counter while it holds the lease, and releasing
// it. It reports as test errors two holders at once, a token that did not
// increase, a lost update of the counter, a failed Release, and a key that
// is still held at the end.
func Contend(t testing.TB, lk lease.Locker, key string, workers int, d time.Duration) ContentionResult {
	t.Helper()
	l := &memLedger{}
	res := contend(t, lk, key, l, workers, time.Now().Add(d))
	if got := l.counter.Load(); got != res.Acquired {
		t.Errorf("counter = %d after %d acquisitions: updates were lost, so two holders overlapped", got, res.Acquired)
	}
	if res.Acquired == 0 {
		t.Errorf("no worker ever acquired %q in %s", key, d)
	}
	ctx := context.Background()
	if last, err := lk.Acquire(ctx, key, time.Minute); err != nil {
		t.Errorf("Acquire after contention: %v (a release was lost)", err)
	} else if err := last.Release(ctx); err != nil {
		t.Errorf("Release after contention: %v", err)
	}
	return res
}

func contend(t testing.TB, lk lease.Locker, key string, led ledger, workers int, deadline time.Time) ContentionResult {
	var acquired, attempts atomic.Int64
	var failed atomic.Bool
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		failed.Store(true)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) && !failed.Load() {
				attempts.Add(1)
				l, err := lk.Acquire(ctx, key, contentionTTL)
				if errors.Is(err, lease.ErrHeld) {
					time.Sleep(time.Duration(rand.N(500)) * time.Microsecond)
					continue
				}
				if err != nil {
					fail("worker %d: Acquire: %v", w, err)
					return
				}
				if err := led.enter(l.Token()); err != nil {
					fail("worker %d: %v", w, err)
				}
				if err := led.increment(); err != nil {
					fail("worker %d: %v", w, err)
				}
				acquired.Add(1)
				if err := led.leave(); err != nil {
					fail("worker %d: %v", w, err)
				}
				if err := l.Release(ctx); err != nil {
					fail("worker %d: Release(token %d): %v", w, l.Token(), err)
				}
			}
		})
	}
	wg.Wait()
	return ContentionResult{Acquired: acquired.Load(), Attempts: attempts.Load()}
}

// memLedger is a ledger for goroutines of one process. Its fields are
// atomics only to keep the race detector, which cannot see a remote
// lock, quiet; the increment is still a separate load and store.
type memLedger struct {
	holding   atomic.Bool
	lastToken atomic.Int64
	counter   atomic.Int64
}

func (m *memLedger) enter(token int64) error {
	if !m.holding.CompareAndSwap(false, true) {
		return fmt.Errorf("got token %d while another worker held the lease", token)
	}
	if prev := m.lastToken.Load(); token <= prev {
		return fmt.Errorf("got token %d after token %d", token, prev)
	}
	m.lastToken.Store(token)
	return nil
}

func (m *memLedger) leave() error {
	m.holding.Store(false)
	return nil
}

func (m *memLedger) increment() error {
	n := m.counter.Load()
	time.Sleep(time.Duration(rand.N(100)) * time.Microsecond) // widen the window for a lost update
	m.counter.Store(n + 1)
	return nil
}

// dirLedger is a ledger in files of a directory that several processes
// share: a marker file created exclusively while holding, the last token
// and the counter.
type dirLedger struct{ dir string }

func (d dirLedger) enter(token int64) error {
	f, err := os.OpenFile(filepath.Join(d.dir, "holding"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("pid %d got token %d while another holder was inside", os.Getpid(), token)
		}
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	prev, err := d.read("token")
	if err != nil {
		return err
	}
	if token <= prev {
		return fmt.Errorf("pid %d got token %d after token %d", os.Getpid(), token, prev)
	}
	return d.write("token", token)
}

func (d dirLedger) leave() error { return os.Remove(filepath.Join(d.dir, "holding")) }

func (d dirLedger) increment() error {
	n, err := d.read("counter")
	if err != nil {
		return err
	}
	return d.write("counter", n+1)
}

func (d dirLedger) read(name string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func (d dirLedger) write(name string, v int64) error {
	return os.WriteFile(filepath.Join(d.dir, name), []byte(strconv.FormatInt(v, 10)), 0o600)
}
