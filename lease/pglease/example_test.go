package pglease_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// A worker holds a repository's lease while it migrates it, and fences
// its writes with the lease's token: once another worker has taken over,
// a late write from the first one is refused.
func Example() {
	ctx := context.Background()
	srv, err := storagetest.Start(ctx, storagetest.ServerOptions{}) // a throwaway Postgres
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: srv.URL("postgres")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if err := storage.MigrateWith(ctx, db, storage.MigrateOptions{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := db.Exec(ctx, `CREATE TABLE repos (path text PRIMARY KEY, state text NOT NULL);
		INSERT INTO repos VALUES ('gitlab-org/gitlab', 'default')`); err != nil {
		fmt.Println(err)
		return
	}

	// setState is a write fenced by the lease l.
	setState := func(l lease.Lease, state string) error {
		return storage.InTx(ctx, db, func(tx pgx.Tx) error {
			if err := pglease.Fence(ctx, tx, l.Key(), l.Token()); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE repos SET state = $1 WHERE path = 'gitlab-org/gitlab'`, state)
			return err
		})
	}

	locker := pglease.New(db, pglease.Options{Holder: "worker-a"})
	err = lease.Guard(ctx, locker, "repo:gitlab-org/gitlab", 30*time.Second,
		func(ctx context.Context, l lease.Lease) error {
			return setState(l, "pre_importing")
		})
	fmt.Println("worker-a:", err)

	stale, _ := locker.Acquire(ctx, "repo:gitlab-org/gitlab", 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // worker-a stalls past its ttl
	fresh, _ := pglease.New(db, pglease.Options{Holder: "worker-b"}).Acquire(ctx, "repo:gitlab-org/gitlab", time.Minute)
	fmt.Println("worker-b:", setState(fresh, "importing"))
	err = setState(stale, "import_done")
	fmt.Println("worker-a, late:", errors.Is(err, lease.ErrFenced))

	var state string
	_ = db.QueryRow(ctx, `SELECT state FROM repos`).Scan(&state)
	fmt.Println("state:", state)

	// Output:
	// worker-a: <nil>
	// worker-b: <nil>
	// worker-a, late: true
	// state: importing
}
