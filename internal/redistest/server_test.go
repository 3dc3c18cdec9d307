package redistest_test

import (
	"errors"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/redistest"
)

func TestRestartKeepsData(t *testing.T) {
	srv := redistest.New(t)
	client := redis.NewClient(srv.Options())
	defer client.Close()
	ctx := t.Context()
	if err := client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := client.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after restart: %q, %v", got, err)
	}
}

func TestStopRemovesEverything(t *testing.T) {
	s, err := redistest.Start(t.Context())
	if errors.Is(err, redistest.ErrUnavailable) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Addr()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop", dir)
	}
}
