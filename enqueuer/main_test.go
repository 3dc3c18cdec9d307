package enqueuer_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestMain(m *testing.M) { storagetest.Main(m) }

var quiet = slog.New(slog.DiscardHandler)

// openDB opens a storage.DB on a fresh migrated database.
func openDB(t testing.TB) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), storage.Config{PrimaryURL: storagetest.URL(t), MaxConns: 16, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

func newPostgresStore(t testing.TB, db *storage.DB) *enqueuer.PostgresStore {
	t.Helper()
	s, err := enqueuer.NewPostgresStore(db, enqueuer.PostgresOptions{Logger: quiet})
	require.NoError(t, err)
	return s
}

// counts returns how many repositories are in each state.
func counts(t testing.TB, s enqueuer.Store) map[enqueuer.State]int {
	t.Helper()
	out := map[enqueuer.State]int{}
	for _, st := range enqueuer.States {
		rs, err := s.List(context.Background(), enqueuer.ListOptions{State: st, Limit: 100_000})
		require.NoError(t, err)
		if len(rs) > 0 {
			out[st] = len(rs)
		}
	}
	return out
}

var epoch = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
