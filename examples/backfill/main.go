// Command backfill shows a batched background migration end to end, driven
// by the operator commands of package bbmcmd that a host mounts into its
// own CLI.
//
// Without a command it is a demo: it starts a throwaway PostgreSQL server
// (or uses -database-url), creates a table of 1,000,000 rows, adds a
// column, registers a Work that fills it, and runs the commands
// "status", "run fill_checksum" (with a progress bar on a terminal) and
// "require fill_checksum", then verifies every row.
//
//	go run ./examples/backfill [-rows 1000000]
//
// With -database-url and a command it is the host's CLI, against a database
// where the demo's table and migration exist (-setup creates them):
//
//	go run ./examples/backfill -database-url postgres://... -setup status
//	go run ./examples/backfill -database-url postgres://... run fill_checksum
//	go run ./examples/backfill -database-url postgres://... status -json
//	go run ./examples/backfill -database-url postgres://... pause fill_checksum
//	go run ./examples/backfill -database-url postgres://... wait -timeout 1h fill_checksum
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
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmcmd"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows in the table to backfill")
	dbURL := flag.String("database-url", "", "use this PostgreSQL database instead of a throwaway server")
	setup := flag.Bool("setup", false, "with a command: create the table and register the migration first")
	parallelism := flag.Int("parallelism", 1, "jobs at once, across every process running this command")
	verbose := flag.Bool("v", false, "log every job")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: backfill [flags] [COMMAND ARGS...]\n\nflags:\n")
		flag.PrintDefaults()
		fmt.Fprintf(os.Stderr, "\nCOMMAND is one of bbmcmd's (run \"backfill -database-url URL help\"); without one, the demo runs.\n")
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := options{rows: *rows, databaseURL: *dbURL, setup: *setup, parallelism: *parallelism, verbose: *verbose,
		command: flag.Args(), stdout: os.Stdout}
	if err := run(ctx, os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "backfill:", err)
		os.Exit(1)
	}
}

type options struct {
	rows        int
	databaseURL string
	setup       bool
	parallelism int
	verbose     bool
	command     []string
	// stdout is where bbmcmd writes; the tests pass a buffer.
	stdout io.Writer
	// terminal forces bbmcmd's progress bar (nil: detect).
	terminal *bool
}

// The example's table and migration; a real host takes them from its own
// schema and migration list.
const (
	table     = "ferry_example_items"
	migration = "fill_checksum"
)

func run(ctx context.Context, out io.Writer, opts options) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	demo := len(opts.command) == 0
	url := opts.databaseURL
	switch {
	case url == "" && !demo:
		return errors.New("a command needs -database-url (the demo's throwaway server is gone after each run)")
	case url == "":
		t0 := time.Now()
		srv, err := storagetest.Start(ctx, storagetest.ServerOptions{})
		if err != nil {
			return err
		}
		defer srv.Stop()
		url = srv.URL("postgres")
		say("started a throwaway PostgreSQL in %s", time.Since(t0).Round(time.Millisecond))
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	// A transaction per running job, one connection for lease renewals and
	// one for the progress display (bbm.ErrPoolTooSmall otherwise).
	cfg.MaxConns = max(cfg.MaxConns, int32(opts.parallelism)+2)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	db := storage.FromPool(pool) // a host's own pool or *sql.DB (storage.FromSQL) works the same way
	if err := storage.MigrateWith(ctx, db, storage.MigrateOptions{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return fmt.Errorf("migrating Ferry's schema: %w", err)
	}

	logger := slog.New(slog.DiscardHandler)
	if opts.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	// Default options: adaptive batch sizes and pacing by database health.
	w := bbm.NewSyncWorker(db, bbm.Options{Logger: logger, Parallelism: opts.parallelism})
	// Each batch's UPDATE commits with its job's record: applied exactly once.
	err = w.Register(bbm.WorkFunc("fill_checksum", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		cond, args := b.Where(1)
		_, err := db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+` SET checksum = md5(payload) WHERE `+cond, args...)
		return err
	}))
	if err != nil {
		return err
	}
	cmd := bbmcmd.Options{Worker: w, Name: "backfill", Stdout: opts.stdout, Stderr: opts.stdout, Terminal: opts.terminal}
	if cmd.Stdout == nil {
		cmd.Stdout, cmd.Stderr = out, out
	}

	if demo || opts.setup {
		if err := setUp(ctx, pool, w.Admin(), opts.rows, say); err != nil {
			return err
		}
	}
	if !demo {
		return bbmcmd.Run(ctx, opts.command, cmd)
	}
	for _, args := range [][]string{{"status"}, {"run", migration}, {"require", migration}} {
		say("\n$ backfill %s", strings.Join(args, " "))
		if err := bbmcmd.Run(ctx, args, cmd); err != nil {
			return err
		}
	}
	var wrong int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+
		` WHERE checksum IS DISTINCT FROM md5(payload)`).Scan(&wrong); err != nil {
		return err
	}
	if wrong != 0 {
		return fmt.Errorf("%d rows are not filled", wrong)
	}
	say("\nverified: all %d rows have checksum = md5(payload)", opts.rows)
	return nil
}

// setUp creates the table (unless it exists) and registers the migration
// (unless it is registered).
func setUp(ctx context.Context, pool *pgxpool.Pool, admin *bbm.Admin, rows int, say func(string, ...any)) error {
	if _, err := admin.Migration(ctx, migration); err == nil {
		say("migration %q is registered already", migration)
		return nil
	} else if !errors.Is(err, bbm.ErrMigrationNotFound) {
		return err
	}
	t0 := time.Now()
	if err := createTable(ctx, pool, rows); err != nil {
		return err
	}
	say("created %s with %d rows and added the empty column checksum in %s", table, rows, time.Since(t0).Round(time.Millisecond))
	m, err := admin.Register(ctx, bbm.Definition{Name: migration, Table: table, Column: "id", Work: "fill_checksum", BatchSize: 10_000})
	if err != nil {
		return err
	}
	say("registered migration %q on %s, keys %s..%s, first batch size %d, %s", m.Name, m.QualifiedTable(), m.Lower, m.Upper,
		m.BatchSize, m.Delivery)
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
