package redislease_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/redistest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/redislease"
)

func newClient(t testing.TB, opts *redis.Options) *redis.Client {
	t.Helper()
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	srv := redistest.New(t)
	client := newClient(t, srv.Options())
	var n atomic.Int64
	leasetest.Run(t, func(t *testing.T) lease.Locker {
		// One server for the suite; a prefix per subtest keeps them apart.
		return redislease.New(client, redislease.Options{Prefix: fmt.Sprintf("suite%d:", n.Add(1))})
	})
}

func TestHeldErrorNamesHolder(t *testing.T) {
	client := newClient(t, redistest.New(t).Options())
	host, _ := os.Hostname()
	leasetest.CheckHolderNames(t, redislease.New(client, redislease.Options{Holder: "enqueuer:7f9c"}), "enqueuer:7f9c",
		redislease.New(client, redislease.Options{}), fmt.Sprintf("%s/%d", host, os.Getpid()))
}

// Redis loses everything (a restart without persistence, say): the lease
// is gone, but the next token is still larger than every earlier one.
func TestTokensSurviveDataLoss(t *testing.T) {
	client := newClient(t, redistest.New(t).Options())
	lk := redislease.New(client, redislease.Options{})
	var last int64
	for i := range 3 {
		l, err := lk.Acquire(t.Context(), "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if l.Token() <= last {
			t.Fatalf("round %d: token %d after %d", i, l.Token(), last)
		}
		last = l.Token()
		if err := client.FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		if err := l.Renew(t.Context()); !errors.Is(err, lease.ErrLost) {
			t.Errorf("Renew after the data was lost: %v, want ErrLost", err)
		}
	}
}

func TestKeysShareAHashTag(t *testing.T) {
	client := newClient(t, redistest.New(t).Options())
	lk := redislease.New(client, redislease.Options{Prefix: "p:"})
	l, err := lk.Acquire(t.Context(), "a/b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"p:{a/b}": true, "p:{a/b}:token": true}
	if len(keys) != 2 || !want[keys[0]] || !want[keys[1]] {
		t.Errorf("keys %v, want %v", keys, want)
	}
	if ttl := client.PTTL(t.Context(), "p:{a/b}").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("lease key PTTL %s", ttl)
	}
	if ttl := client.PTTL(t.Context(), "p:{a/b}:token").Val(); ttl != -1 {
		t.Errorf("counter PTTL %s, want none (-1)", ttl)
	}
	_ = l.Release(t.Context())
}

// countingHook counts the commands a client sends.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestOneCommandEach(t *testing.T) {
	client := newClient(t, redistest.New(t).Options())
	hook := &countingHook{}
	client.AddHook(hook)
	leasetest.CheckRoundTrips(t, redislease.New(client, redislease.Options{}), hook.n.Load, leasetest.RoundTrips{})
}

func TestProcesses(t *testing.T) {
	const envSock = "FERRY_REDISLEASE_TEST_SOCKET"
	var opts leasetest.ProcessOptions
	if !leasetest.IsChild() {
		opts.Env = []string{envSock + "=" + redistest.New(t).Addr()}
	}
	leasetest.ContendAcrossProcesses(t, "enqueuer", opts, func(t *testing.T) lease.Locker {
		return redislease.New(newClient(t, &redis.Options{Network: "unix", Addr: os.Getenv(envSock)}), redislease.Options{})
	})
}
