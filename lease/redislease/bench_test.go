package redislease_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/redistest"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/lease/redislease"
)

// BenchmarkAcquireRelease compares an uncontended Acquire+Release with two
// PINGs on the same client (the target), and, to show where the
// time goes, with two plain SET PX writes and with two runs of a script
// that only does a SET PX: the least that two writes in Lua, which the
// lease's atomic compare-and-set steps need, cost.
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	client := newClient(b, redistest.New(b).Options())
	twice := func(cmd func() error) func(*testing.B) {
		return func(b *testing.B) {
			for range 2 {
				if err := cmd(); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	set := redis.NewScript(`return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])`)
	leasetest.BenchAcquireRelease(b, redislease.New(client, redislease.Options{}), "bench", 5000,
		leasetest.Baseline{Name: "ping", Line: "redislease-acquire-release", Target: 1.3,
			Run:  twice(func() error { return client.Ping(ctx).Err() }),
			Note: "Acquire+Release vs two PINGs on the same client"},
		leasetest.Baseline{Name: "set", Line: "redislease-acquire-release-vs-writes",
			Run:  twice(func() error { return client.Set(ctx, "bench:write", "x", time.Minute).Err() }),
			Note: "vs two SET PX writes"},
		leasetest.Baseline{Name: "script", Line: "redislease-acquire-release-vs-scripts",
			Run:  twice(func() error { return set.Run(ctx, client, []string{"bench:script"}, "x", 60000).Err() }),
			Note: "vs two EVALSHA of a script that only does SET PX"},
	)
}

func BenchmarkContended(b *testing.B) {
	lk := redislease.New(newClient(b, redistest.New(b).Options()), redislease.Options{})
	r := leasetest.BenchContended(b, lk, "bench", 50)
	fmt.Printf("ferry-bench: redislease-contended-acquire %s (go-redis default pool)\n", r)
}
