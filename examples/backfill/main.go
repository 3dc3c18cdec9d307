// Command backfill shows a batched background migration end to end: it
// starts a throwaway PostgreSQL server, creates a table of 1,000,000 rows,
// adds a column, registers a Work that fills it, runs bbm's SyncWorker with
// a progress line, and verifies every row.
//
//	go run ./examples/backfill [-rows 1000000] [-database-url postgres://...]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows in the table to backfill")
	dbURL := flag.String("database-url", "", "use this PostgreSQL database instead of a throwaway server")
	verbose := flag.Bool("v", false, "log every job")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, options{rows: *rows, databaseURL: *dbURL, verbose: *verbose}); err != nil {
		fmt.Fprintln(os.Stderr, "backfill:", err)
		os.Exit(1)
	}
}

type options struct {
	rows        int
	databaseURL string
	verbose     bool
}

// table is the example's table; a real host would take it from its schema.
const table = "ferry_example_items"

func run(ctx context.Context, out io.Writer, opts options) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	url := opts.databaseURL
	if url == "" {
		t0 := time.Now()
		srv, err := storagetest.Start(ctx, storagetest.ServerOptions{})
		if err != nil {
			return err
		}
		defer srv.Stop()
		url = srv.URL("postgres")
		say("started a throwaway PostgreSQL in %s", time.Since(t0).Round(time.Millisecond))
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := storage.MigrateWith(ctx, pool, storage.MigrateOptions{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return fmt.Errorf("migrating Ferry's schema: %w", err)
	}

	t0 := time.Now()
	if err := createTable(ctx, pool, opts.rows); err != nil {
		return err
	}
	say("created %s with %d rows and added the empty column checksum in %s", table, opts.rows, time.Since(t0).Round(time.Millisecond))

	logger := slog.New(slog.DiscardHandler)
	if opts.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	prog := &progressLine{out: out, total: int64(opts.rows), start: time.Now()}
	w := bbm.NewSyncWorker(pool, bbm.Options{
		Logger:   logger,
		Observer: bbm.ObserverFuncs{OnJobFinished: prog.jobFinished},
		Adaptive: bbm.AdaptiveOptions{TargetJobDuration: 300 * time.Millisecond, MinBatchSize: 1000, MaxBatchSize: 500_000},
	})
	// Each batch's UPDATE commits with its job's record: applied exactly once.
	err = w.Register(bbm.WorkFunc("fill_checksum", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		cond, args := b.Where(1)
		_, err := db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+` SET checksum = md5(payload) WHERE `+cond, args...)
		return err
	}))
	if err != nil {
		return err
	}
	m, err := w.Admin().Register(ctx, bbm.Definition{
		Name: "fill_checksum_" + time.Now().Format("20060102150405"), Table: table, Column: "id",
		Work: "fill_checksum", BatchSize: 20_000,
	})
	if err != nil {
		return err
	}
	say("registered migration %q on %s, keys %s..%s, first batch size %d", m.Name, m.QualifiedTable(), m.Lower, m.Upper, m.BatchSize)

	prog.start = time.Now()
	if err := w.Run(ctx); err != nil {
		return err
	}
	prog.finish()
	p, err := w.Admin().Status(ctx, m.Name)
	if err != nil {
		return err
	}
	say("status: %s", p)

	var wrong int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+
		` WHERE checksum IS DISTINCT FROM md5(payload)`).Scan(&wrong); err != nil {
		return err
	}
	if wrong != 0 {
		return fmt.Errorf("%d rows are not filled", wrong)
	}
	say("verified: all %d rows have checksum = md5(payload)", opts.rows)
	return nil
}

func createTable(ctx context.Context, pool *pgxpool.Pool, rows int) error {
	if rows <= 0 {
		return errors.New("-rows must be positive")
	}
	t := pgx.Identifier{table}.Sanitize()
	_, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+t+`;
		CREATE TABLE `+t+` (id bigint PRIMARY KEY, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+t+` (id, payload) SELECT g, 'item-' || g FROM generate_series(1, $1::bigint) g`, rows); err != nil {
		return err
	}
	// Adding a nullable column without a default changes no rows: the
	// backfill fills it afterwards, in small transactions.
	if _, err := pool.Exec(ctx, `ALTER TABLE `+t+` ADD COLUMN checksum text`); err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `VACUUM (ANALYZE) `+t)
	return err
}

// progressLine prints one line per job: share done, rate, ETA, batch size.
type progressLine struct {
	out   io.Writer
	total int64
	start time.Time
	done  int64
	jobs  int
	tx    time.Duration
}

func (p *progressLine) jobFinished(_ context.Context, e bbm.JobEvent) {
	if e.Err != nil {
		fmt.Fprintf(p.out, "job %d [%s, %s] failed: %v\n", e.JobID, e.Start, e.End, e.Err)
		return
	}
	p.done += e.Rows
	p.jobs++
	p.tx = max(p.tx, e.Duration)
	elapsed := time.Since(p.start)
	rate := float64(p.done) / elapsed.Seconds()
	eta := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
	fmt.Fprintf(p.out, "progress %5.1f%% %8d/%d rows %7.0f rows/s ETA %-6s job %3d took %-6s next batch %d\n",
		100*float64(p.done)/float64(p.total), p.done, p.total, rate, eta.Round(100*time.Millisecond),
		p.jobs, e.Duration.Round(time.Millisecond), e.NextBatchSize)
}

func (p *progressLine) finish() {
	elapsed := time.Since(p.start)
	fmt.Fprintf(p.out, "backfilled %d rows in %s (%.0f rows/s) with %d jobs; longest job transaction %s\n",
		p.done, elapsed.Round(time.Millisecond), float64(p.done)/elapsed.Seconds(), p.jobs, p.tx.Round(time.Millisecond))
}
