package enqueuer_test

import (
	"testing"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/storage/storagetest"
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

// A host's own pool or *sql.DB works without a *storage.DB: everything
// then runs on that handle.
func TestPostgresStoreOnHostHandles(t *testing.T) {
	storagetest.ForEachHandle(t, func(t *testing.T, kind storagetest.HandleKind) {
		enqueuertest.TestStore(t, func(t *testing.T) enqueuer.Store {
			s, err := enqueuer.NewPostgresStore(storagetest.Handle(t, kind), enqueuer.PostgresOptions{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}
