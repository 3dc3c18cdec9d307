package harness

import (
	"context"
	"time"
)

// sleep waits d or until ctx ends (a timer that stops with the context).
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
