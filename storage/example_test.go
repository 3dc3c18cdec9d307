package storage_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/storage"
)

// A handler that checks a state another process has just changed must not
// read a lagging replica: UsePrimary makes every DB.Read under ctx go to
// the primary.
func ExampleUsePrimary() {
	ctx := storage.UsePrimary(context.Background())
	fmt.Println(storage.UsesPrimary(ctx))
	// Output: true
}

// InTx runs a transaction again after these errors; other errors are the
// caller's.
func ExampleIsRetryable() {
	serialization := fmt.Errorf("updating: %w", &pgconn.PgError{Code: "40001"})
	fmt.Println(storage.IsRetryable(serialization))
	fmt.Println(storage.IsRetryable(errors.New("constraint violated")))
	// Output:
	// true
	// false
}

// Ferry's schema ships inside the binary as numbered files.
func ExampleLoadMigrations() {
	migrations, err := storage.LoadMigrations(nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(migrations[0].Name)
	// Output: 0001_init.sql
}
