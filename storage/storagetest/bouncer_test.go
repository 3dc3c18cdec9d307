package storagetest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage/storagetest"
)

// Through the bouncer two clients share one server connection between
// transactions (transaction pooling), and session state set by one client
// shows up for the other: what Ferry must never rely on, proven here to
// be what the tests run against.
func TestBouncerPoolsTransactions(t *testing.T) {
	ctx := context.Background()
	url := storagetest.BouncerURL(t)
	a, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer a.Close(ctx)
	b, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer b.Close(ctx)

	var pidA, pidB int
	require.NoError(t, a.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pidA))
	_, err = a.Exec(ctx, `SET work_mem = '7MB'`)
	require.NoError(t, err)
	require.NoError(t, b.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pidB))
	require.Equal(t, pidA, pidB, "two idle clients in turn get the same server connection")
	var name string
	require.NoError(t, b.QueryRow(ctx, `SELECT current_setting('work_mem')`).Scan(&name))
	require.Equal(t, "7MB", name, "a session's SET reaches the next client")

	// The tables are the database's own: Ferry's schema is there.
	var n int
	require.NoError(t, b.QueryRow(ctx, `SELECT count(*) FROM ferry_schema_migrations`).Scan(&n))
	require.Positive(t, n)
}
