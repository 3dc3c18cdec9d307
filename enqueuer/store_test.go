package enqueuer_test

import (
	"testing"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
)

func TestMemoryStoreConformance(t *testing.T) {
	enqueuertest.TestStore(t, func(t *testing.T) enqueuer.Store {
		return enqueuertest.NewStore(enqueuertest.StoreOptions{})
	})
}

func TestPostgresStoreConformance(t *testing.T) {
	enqueuertest.TestStore(t, func(t *testing.T) enqueuer.Store {
		return newPostgresStore(t, openDB(t))
	})
}
