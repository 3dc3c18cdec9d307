package wait_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/wait"
)

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := wait.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestSleepNonPositiveReportsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if err := wait.Sleep(ctx, 0); err != nil {
		t.Fatalf("live ctx: err = %v", err)
	}
	cancel()
	if err := wait.Sleep(ctx, -time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: err = %v", err)
	}
}

func ExampleSleep() {
	err := wait.Sleep(context.Background(), time.Millisecond)
	fmt.Println(err)
	// Output: <nil>
}
