package importserver_test

import (
	"context"
	"testing"
	"time"

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

// An import that finishes while a refused start is in flight must not turn
// the refusal (429, 425) into ErrStateChanged (409): the enqueuer reads a
// 409 as "your earlier start went through". A test-only statement trigger
// holds the begin statement, after its snapshot, until the other import
// has finished.
func TestPostgresRefusalWhileAnImportFinishes(t *testing.T) {
	t.Parallel() // waits on Postgres: overlaps with the rest
	ctx := context.Background()
	pool := storagetest.Pool(t)
	store, err := importserver.NewPostgresStore(storage.FromPool(pool), importserver.PostgresOptions{})
	require.NoError(t, err)
	const gateKey = 424242
	_, err = pool.Exec(ctx, `CREATE FUNCTION ferry_test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_advisory_xact_lock_shared(424242); RETURN NULL; END $$`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `CREATE TRIGGER ferry_test_gate BEFORE INSERT ON ferry_importserver_imports
		FOR EACH STATEMENT EXECUTE FUNCTION ferry_test_gate()`)
	require.NoError(t, err)

	begin := func(path string, typ importserver.Type, maxRunning int) importserver.Import {
		i, err := store.Begin(ctx, importserver.BeginRequest{Path: path, Type: typ, Owner: "o", MaxRunning: maxRunning})
		require.NoError(t, err)
		return i
	}
	finish := func(i importserver.Import) {
		_, _, err := store.Finish(ctx, importserver.Outcome{Path: i.Path, Run: i.Run, Status: i.Type.Outcome(importserver.Complete)})
		require.NoError(t, err)
	}
	// refusedWhileFinishing starts req with the begin statement held at the
	// gate, finishes other meanwhile and returns Begin's error.
	refusedWhileFinishing := func(req importserver.BeginRequest, other importserver.Import) error {
		gate, err := pool.Acquire(ctx)
		require.NoError(t, err)
		defer gate.Release()
		_, err = gate.Exec(ctx, `SELECT pg_advisory_lock($1)`, gateKey)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			_, err := store.Begin(ctx, req)
			done <- err
		}()
		require.Eventually(t, func() bool {
			var waiting int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
				AND objid = $1 AND NOT granted`, gateKey).Scan(&waiting)
			return err == nil && waiting == 1
		}, 10*time.Second, time.Millisecond, "the begin statement waits at the gate")
		finish(other)
		_, err = gate.Exec(ctx, `SELECT pg_advisory_unlock($1)`, gateKey)
		require.NoError(t, err)
		return <-done
	}

	begin("running", importserver.PreImport, 0)
	err = refusedWhileFinishing(importserver.BeginRequest{Path: "refused", Type: importserver.PreImport, Owner: "o", MaxRunning: 2},
		begin("finishing", importserver.PreImport, 0))
	require.ErrorIs(t, err, importserver.ErrTooManyImports)

	err = refusedWhileFinishing(importserver.BeginRequest{Path: "early", Type: importserver.FinalImport, Owner: "o"},
		begin("early", importserver.PreImport, 0))
	require.ErrorIs(t, err, importserver.ErrPreImportInProgress)
}
