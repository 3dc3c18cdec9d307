package enqueuer_test

import (
	"testing"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
)

// postgresLocker is the locker of the Postgres variants: the lease lives in
// the same database as the repositories.
func postgresLocker(t testing.TB, db *storage.DB) lease.Locker {
	t.Helper()
	return pglease.New(db, pglease.Options{Holder: t.Name()})
}
