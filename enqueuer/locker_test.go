package enqueuer_test

import (
	"testing"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/storage"
)

// postgresLocker is the locker for the Postgres variants.
func postgresLocker(t testing.TB, db *storage.DB) lease.Locker {
	t.Helper()
	return leasetest.NewLocker(leasetest.Options{})
}
