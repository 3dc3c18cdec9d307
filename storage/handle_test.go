package storage_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// handleUnderTest is a Handle and a way to count the connections its pool
// has lent out, to prove every path gives them back.
type handleUnderTest struct {
	h     storage.Handle
	inUse func() int
}

func newHandleUnderTest(t *testing.T, kind storagetest.HandleKind, url string) handleUnderTest {
	t.Helper()
	switch kind {
	case storagetest.KindPool, storagetest.KindSchema:
		pool, err := pgxpool.New(context.Background(), url)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		h := storage.FromPool(pool)
		if kind == storagetest.KindSchema {
			h, err = storage.WithSchema(h, storagetest.Schema)
			require.NoError(t, err)
		}
		return handleUnderTest{h: h, inUse: func() int { return int(pool.Stat().AcquiredConns()) }}
	default:
		db, err := sql.Open("pgx", url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		h, err := storage.FromSQL(db)
		require.NoError(t, err)
		return handleUnderTest{h: h, inUse: func() int { return db.Stats().InUse }}
	}
}

// requireSettled waits until no connection is lent out and the goroutines
// are back to at most base (FromSQL runs one per held connection). It polls
// on the test's goroutine: require.Eventually's own goroutines would count.
func requireSettled(t *testing.T, hu handleUnderTest, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for hu.inUse() > 0 || runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("connections lent out: %d; goroutines: %d, before: %d\n%s",
				hu.inUse(), runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHandleConformance(t *testing.T) {
	storagetest.ForEachHandle(t, func(t *testing.T, kind storagetest.HandleKind) {
		ctx := t.Context()
		hu := newHandleUnderTest(t, kind, storagetest.URL(t))
		h := hu.h
		_, err := h.Exec(ctx, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)`)
		require.NoError(t, err)
		// Subtests run on goroutines of their own: count from inside them.
		base := func() int { return runtime.NumGoroutine() }

		t.Run("exec and query row", func(t *testing.T) {
			base := base()
			tag, err := h.Exec(ctx, `INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')`)
			require.NoError(t, err)
			require.EqualValues(t, 3, tag.RowsAffected())
			var name string
			require.NoError(t, h.QueryRow(ctx, `SELECT name FROM items WHERE id = $1`, 2).Scan(&name))
			require.Equal(t, "b", name)
			require.ErrorIs(t, h.QueryRow(ctx, `SELECT name FROM items WHERE id = 99`).Scan(&name), pgx.ErrNoRows)
			requireSettled(t, hu, base)
		})

		t.Run("query read to the end, closed early, collected", func(t *testing.T) {
			base := base()
			rows, err := h.Query(ctx, `SELECT id FROM items ORDER BY id`)
			require.NoError(t, err)
			var ids []int
			for rows.Next() {
				var id int
				require.NoError(t, rows.Scan(&id))
				ids = append(ids, id)
			}
			require.NoError(t, rows.Err())
			require.Equal(t, []int{1, 2, 3}, ids)
			requireSettled(t, hu, base) // returned without Close

			rows, err = h.Query(ctx, `SELECT id FROM items ORDER BY id`)
			require.NoError(t, err)
			require.True(t, rows.Next())
			rows.Close()
			rows.Close()
			requireSettled(t, hu, base)

			rows, err = h.Query(ctx, `SELECT id FROM items ORDER BY id`)
			require.NoError(t, err)
			got, err := pgx.CollectRows(rows, pgx.RowTo[int])
			require.NoError(t, err)
			require.Equal(t, []int{1, 2, 3}, got)

			_, err = h.Query(ctx, `SELECT nope FROM items`)
			require.Error(t, err)
			requireSettled(t, hu, base)
		})

		t.Run("transactions and savepoints", func(t *testing.T) {
			base := base()
			tx, err := h.Begin(ctx)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, `INSERT INTO items VALUES (10, 'committed')`)
			require.NoError(t, err)
			sp, err := tx.Begin(ctx)
			require.NoError(t, err)
			_, err = sp.Exec(ctx, `INSERT INTO items VALUES (11, 'savepoint rolled back')`)
			require.NoError(t, err)
			require.NoError(t, sp.Rollback(ctx))
			require.NoError(t, tx.Commit(ctx))
			require.ErrorIs(t, tx.Rollback(ctx), pgx.ErrTxClosed)

			tx, err = h.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
			require.NoError(t, err)
			_, err = tx.Exec(ctx, `INSERT INTO items VALUES (12, 'read only')`)
			require.Error(t, err)
			require.NoError(t, tx.Rollback(ctx))

			var n int
			require.NoError(t, h.QueryRow(ctx, `SELECT count(*) FROM items WHERE id >= 10`).Scan(&n))
			require.Equal(t, 1, n)
			requireSettled(t, hu, base)
		})

		t.Run("InTx commits, rolls back and survives a panic", func(t *testing.T) {
			base := base()
			require.NoError(t, storage.InTx(ctx, h, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO items VALUES (20, 'in tx')`)
				return err
			}))
			boom := errors.New("boom")
			require.ErrorIs(t, storage.InTx(ctx, h, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO items VALUES (21, 'rolled back')`)
				require.NoError(t, err)
				return boom
			}), boom)
			require.PanicsWithValue(t, "oops", func() {
				_ = storage.InTx(ctx, h, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO items VALUES (22, 'panicked')`)
					require.NoError(t, err)
					panic("oops")
				})
			})
			var n int
			require.NoError(t, h.QueryRow(ctx, `SELECT count(*) FROM items WHERE id >= 20`).Scan(&n))
			require.Equal(t, 1, n)
			requireSettled(t, hu, base)
		})

		t.Run("cancelled context", func(t *testing.T) {
			base := base()
			cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			_, err := h.Exec(cctx, `SELECT pg_sleep(10)`)
			require.Error(t, err)
			// Begin gets the test's context: on a loaded machine acquiring
			// a connection and BEGIN can take longer than 50ms by themselves.
			tx, err := h.Begin(ctx)
			require.NoError(t, err)
			cctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			_, err = tx.Exec(cctx, `SELECT pg_sleep(10)`)
			require.Error(t, err)
			_ = tx.Rollback(ctx)
			var one int
			require.NoError(t, h.QueryRow(ctx, `SELECT 1`).Scan(&one))
			requireSettled(t, hu, base)

			done, cancel := context.WithCancel(ctx)
			cancel()
			_, err = h.Begin(done)
			require.ErrorIs(t, err, context.Canceled)
			_, err = h.Query(done, `SELECT 1`)
			require.Error(t, err)
			requireSettled(t, hu, base)
		})

		t.Run("killed connection is discarded, not reused", func(t *testing.T) {
			base := base()
			tx, err := h.Begin(ctx)
			require.NoError(t, err)
			var pid int
			require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
			_, err = h.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, `SELECT 1`)
			require.Error(t, err)
			_ = tx.Rollback(ctx)
			requireSettled(t, hu, base)
			for range 5 { // whichever connection comes next works
				var got int
				require.NoError(t, h.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&got))
				require.NotEqual(t, pid, got)
			}
		})

		t.Run("AcquireConn", func(t *testing.T) {
			base := base()
			c, release, err := storage.AcquireConn(ctx, h)
			require.NoError(t, err)
			_, err = c.Exec(ctx, `SELECT 1`)
			require.NoError(t, err)
			require.Equal(t, 1, hu.inUse())
			release()
			release()
			requireSettled(t, hu, base)

			c, release, err = storage.AcquireConn(ctx, h)
			require.NoError(t, err)
			require.NoError(t, c.Close(ctx)) // a closed connection is discarded
			release()
			requireSettled(t, hu, base)
			_, err = h.Exec(ctx, `SELECT 1`)
			require.NoError(t, err)
		})

		t.Run("migrate", func(t *testing.T) {
			empty := newHandleUnderTest(t, kind, storagetest.EmptyURL(t))
			require.NoError(t, storage.MigrateWith(ctx, empty.h, storage.MigrateOptions{Logger: quiet}))
			require.NoError(t, storage.MigrateWith(ctx, empty.h, storage.MigrateOptions{Logger: quiet}))
			var n int
			require.NoError(t, empty.h.QueryRow(ctx, `SELECT count(*) FROM `+storage.Table(empty.h, storage.MigrationsTable)).Scan(&n))
			require.Positive(t, n)
			require.Eventually(t, func() bool { return empty.inUse() == 0 }, 10*time.Second, time.Millisecond)
		})
	})
}

func TestFromPoolNilIsNil(t *testing.T) {
	require.Nil(t, storage.FromPool(nil))
	_, _, err := storage.AcquireConn(t.Context(), nil)
	require.ErrorIs(t, err, storage.ErrConfig)
}

// otherConnector is a database/sql connector of a driver that is not pgx.
type otherConnector struct{}

func (otherConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("not a real driver")
}
func (otherConnector) Driver() driver.Driver { return otherDriver{} }

type otherDriver struct{}

func (otherDriver) Open(string) (driver.Conn, error) { return nil, errors.New("not a real driver") }

func TestFromSQLRefusesOtherDrivers(t *testing.T) {
	db := sql.OpenDB(otherConnector{})
	defer db.Close()
	_, err := storage.FromSQL(db)
	require.ErrorIs(t, err, storage.ErrNotPgx)
	require.ErrorContains(t, err, "otherDriver")
	_, err = storage.FromSQL(nil)
	require.ErrorIs(t, err, storage.ErrConfig)

	// Every way of opening a pgx *sql.DB is accepted.
	cfg, err := pgx.ParseConfig("postgres://u@localhost/db")
	require.NoError(t, err)
	for _, db := range []*sql.DB{stdlib.OpenDB(*cfg)} {
		_, err := storage.FromSQL(db)
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
}

func TestWrapHostHandles(t *testing.T) {
	ctx := t.Context()
	rep := storagetest.NewReplicated(t, 0)
	primarySQL, err := sql.Open("pgx", rep.PrimaryURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = primarySQL.Close() })
	replicaSQL, err := sql.Open("pgx", rep.ReplicaURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = replicaSQL.Close() })
	primary, err := storage.FromSQL(primarySQL)
	require.NoError(t, err)
	replica, err := storage.FromSQL(replicaSQL)
	require.NoError(t, err)

	var routed []storage.RouteEvent
	db, err := storage.WrapWith(storage.Config{
		ReplicaCheckInterval: 50 * time.Millisecond, Logger: quiet,
		Observer: storage.ObserverFuncs{OnReadRouted: func(_ context.Context, e storage.RouteEvent) { routed = append(routed, e) }},
	}, primary, replica)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `CREATE TABLE repos (path text PRIMARY KEY, state text NOT NULL)`)
	require.NoError(t, err)
	require.NoError(t, db.WriteTx(ctx, "a/b", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO repos VALUES ('a/b', 'default')`)
		return err
	}))
	var state string
	require.NoError(t, db.Read(ctx, "a/b").QueryRow(ctx, `SELECT state FROM repos WHERE path = 'a/b'`).Scan(&state))
	require.Equal(t, "default", state)
	waitReplicated(t, db)
	q, target := db.Choose(ctx, "a/b")
	require.Equal(t, storage.TargetReplica, target)
	require.NoError(t, q.QueryRow(ctx, `SELECT state FROM repos WHERE path = 'a/b'`).Scan(&state))
	require.Equal(t, "replica 0", routed[len(routed)-1].Replica, "a database/sql replica is named by its position")
	db.Close() // leaves the host's handles open
	require.NoError(t, primarySQL.PingContext(ctx))

	// A pool handle names its server.
	pool, err := pgxpool.New(ctx, rep.ReplicaURL)
	require.NoError(t, err)
	defer pool.Close()
	routed = nil
	db, err = storage.WrapWith(storage.Config{Logger: quiet, Observer: storage.ObserverFuncs{
		OnReadRouted: func(_ context.Context, e storage.RouteEvent) { routed = append(routed, e) }}}, primary, storage.FromPool(pool))
	require.NoError(t, err)
	waitReplicated(t, db)
	require.Contains(t, routed[len(routed)-1].Replica, "/"+pool.Config().ConnConfig.Database)
}

func TestWrapRefusesBadInput(t *testing.T) {
	h := storage.FromPool(storagetest.Pool(t))
	_, err := storage.Wrap(nil)
	require.ErrorIs(t, err, storage.ErrConfig)
	_, err = storage.Wrap(h, nil)
	require.ErrorIs(t, err, storage.ErrConfig)
	_, err = storage.WrapWith(storage.Config{PrimaryURL: "postgres://x"}, h)
	require.ErrorIs(t, err, storage.ErrConfig)
	db, err := storage.Wrap(h)
	require.NoError(t, err)
	_, target := db.Choose(t.Context(), "k")
	require.Equal(t, storage.TargetPrimary, target)
}

func TestMaxConns(t *testing.T) {
	cfg, err := pgxpool.ParseConfig("postgres://u@localhost/db")
	require.NoError(t, err)
	cfg.MaxConns = 7
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg) // connects lazily
	require.NoError(t, err)
	defer pool.Close()
	require.Equal(t, 7, storage.MaxConns(storage.FromPool(pool)))
	inSchema, err := storage.WithSchema(storage.FromPool(pool), "s")
	require.NoError(t, err)
	require.Equal(t, 7, storage.MaxConns(inSchema))

	pcfg, err := pgx.ParseConfig("postgres://u@localhost/db")
	require.NoError(t, err)
	db := stdlib.OpenDB(*pcfg)
	defer db.Close()
	h, err := storage.FromSQL(db)
	require.NoError(t, err)
	require.Equal(t, 0, storage.MaxConns(h), "a *sql.DB opens any number by default")
	db.SetMaxOpenConns(3)
	require.Equal(t, 3, storage.MaxConns(h))
	require.Equal(t, 0, storage.MaxConns(nil))
}
