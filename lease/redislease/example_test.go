package redislease_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/redistest"
	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/redislease"
)

// Two workers share one Redis; the second is told who holds the key, and
// gets a larger fencing token once the first lets go.
func Example() {
	ctx := context.Background()
	srv, err := redistest.Start(ctx) // a throwaway redis-server
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	client := redis.NewClient(srv.Options())
	defer client.Close()

	a := redislease.New(client, redislease.Options{Holder: "worker-a"})
	b := redislease.New(client, redislease.Options{Holder: "worker-b"})

	first, err := a.Acquire(ctx, "registry:enqueuer", 30*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = b.Acquire(ctx, "registry:enqueuer", 30*time.Second)
	var held *lease.HeldError
	if errors.As(err, &held) {
		fmt.Println("held by", held.Holder)
	}
	if err := first.Release(ctx); err != nil {
		fmt.Println(err)
		return
	}
	second, err := b.Acquire(ctx, "registry:enqueuer", 30*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Release(ctx)
	fmt.Println("larger token:", second.Token() > first.Token())

	// Output:
	// held by worker-a
	// larger token: true
}
