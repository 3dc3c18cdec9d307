package redislease

import (
	"context"
	"fmt"
)

// bounded runs call and returns when it does or when ctx ends, whichever
// comes first. go-redis ignores a context's deadline unless the client was
// made with ContextTimeoutEnabled, and then waits up to its ReadTimeout
// (3s by default) for each of its retries (3 by default): a hung server
// held a Guard's release, bounded by ReleaseTimeout, for 9 seconds. A call
// that ctx cut short is left to end on the client's own timeouts; its
// goroutine ends with it.
func bounded[T any](ctx context.Context, call func() (T, error)) (T, error) {
	if ctx.Done() == nil {
		return call()
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := call()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("redislease: the Redis call did not answer in time: %w", context.Cause(ctx))
	}
}
