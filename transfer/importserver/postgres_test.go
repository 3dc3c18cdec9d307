package importserver_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

// The conformance suite on every kind of Handle: a pool, a database/sql
// DB, a pool whose Ferry tables live in another schema, and a *sql.DB
// through PgBouncer in transaction-pooling mode.
func TestPostgresStore(t *testing.T) {
	t.Parallel() // waits on Postgres and on the child process: overlaps with the rest
	storagetest.ForEachHandle(t, func(t *testing.T, kind storagetest.HandleKind) {
		importservertest.TestStore(t, func(t *testing.T) importserver.Store {
			s, err := importserver.NewPostgresStore(storagetest.Handle(t, kind), importserver.PostgresOptions{})
			require.NoError(t, err)
			return s
		})
	})
}

// Behind a transaction-pooling PgBouncer a host turns pgx's server-side
// prepared statements off; the store works the same with parameter types
// from the Go values alone (exec) and with values quoted into the SQL
// (simple protocol).
func TestPostgresStoreWithoutPreparedStatements(t *testing.T) {
	t.Parallel() // waits on Postgres and on the child process: overlaps with the rest
	for name, mode := range map[string]pgx.QueryExecMode{"exec": pgx.QueryExecModeExec,
		"simple_protocol": pgx.QueryExecModeSimpleProtocol} {
		t.Run(name, func(t *testing.T) {
			importservertest.TestStore(t, func(t *testing.T) importserver.Store {
				cfg, err := pgxpool.ParseConfig(storagetest.URL(t))
				require.NoError(t, err)
				cfg.ConnConfig.DefaultQueryExecMode = mode
				pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
				require.NoError(t, err)
				t.Cleanup(pool.Close)
				s, err := importserver.NewPostgresStore(storage.FromPool(pool), importserver.PostgresOptions{})
				require.NoError(t, err)
				return s
			})
		})
	}
}
