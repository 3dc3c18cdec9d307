// Command quickstart is the first thing to run: it shows Ferry's main job
// end to end on embedded defaults, with nothing to configure, in a few
// seconds:
//
//  1. storage: it starts a throwaway PostgreSQL server when this machine has
//     the binaries and applies Ferry's schema with storage.Migrate; without
//     them (or with -no-postgres) it says so and uses Ferry's in-memory
//     stores, so everything below still runs;
//  2. transfer: it generates a small container registry in the distribution
//     storage layout in a fileblob directory (nested repositories, shared
//     base layers, Docker and OCI images, multi-arch indexes);
//  3. enqueuer + lease: it moves every repository to a second fileblob
//     directory through the enqueuer, at most -capacity at a time, under a
//     lease: a small in-process registry runs each pre-import and final
//     import with the transfer importer (every blob verified against its
//     digest) and reports the outcome to the enqueuer's notification
//     handler, which triggers the next run;
//  4. bbm: it backfills a column of a table with a batched background
//     migration (a Postgres table of -rows rows, or bbm's in-memory store
//     and an in-memory Work);
//
// and prints a summary: counts, times and where the files went. With
// -serve it then serves Ferry's dashboard on those stores (read-only),
// prints its URL and keeps serving until interrupted.
//
//	go run ./examples/quickstart [-keep] [-database-url postgres://...] [-no-postgres] [-serve [-listen 127.0.0.1:8080]]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
	"github.com/ferryhq/ferry/transfer"
)

func main() {
	keep := flag.Bool("keep", false, "keep the temp dir with the blob storage")
	dbURL := flag.String("database-url", "", "use this PostgreSQL instead of a throwaway one")
	noPostgres := flag.Bool("no-postgres", false, "use the in-memory stores even when PostgreSQL could be started")
	capacity := flag.Int("capacity", 3, "imports in progress at once")
	rows := flag.Int("rows", 100_000, "rows of the table to backfill")
	serve := flag.Bool("serve", false, "then serve the dashboard on the stores, and print its URL, until interrupted")
	listen := flag.String("listen", "127.0.0.1:0", "address of the dashboard with -serve (port 0: a free one)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := options{keep: *keep, databaseURL: *dbURL, noPostgres: *noPostgres, capacity: *capacity, rows: *rows,
		serve: *serve, listen: *listen}
	if err := run(ctx, os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// options are the command line; zero values get the defaults.
type options struct {
	keep        bool
	databaseURL string
	noPostgres  bool
	capacity    int // default 3
	rows        int // default 100,000
	serve       bool
	listen      string // default 127.0.0.1:0
}

func run(ctx context.Context, out io.Writer, opts options) error {
	if opts.capacity == 0 {
		opts.capacity = 3
	}
	if opts.rows == 0 {
		opts.rows = 100_000
	}
	if opts.capacity < 1 || opts.rows < 1 {
		return fmt.Errorf("-capacity and -rows must be positive")
	}
	started := time.Now()
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	say("Ferry quickstart")

	dir, err := os.MkdirTemp("", "ferry-quickstart-")
	if err != nil {
		return err
	}
	if opts.keep {
		defer say("kept %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	// 1. Storage.
	var db *storage.DB
	how := "in-memory stores (-no-postgres)"
	if !opts.noPostgres {
		var cleanup func()
		db, cleanup, how, err = openStorage(ctx, opts.databaseURL)
		if err != nil {
			return err
		}
		defer cleanup()
	}
	if db == nil {
		say("- storage: %s; using in-memory stores", how)
	} else {
		t0 := time.Now()
		if err := storage.MigrateWith(ctx, db, storage.MigrateOptions{Logger: slog.New(slog.DiscardHandler)}); err != nil {
			return fmt.Errorf("migrating: %w", err)
		}
		applied, err := appliedMigrations(ctx, db)
		if err != nil {
			return err
		}
		say("- storage: %s", how)
		say("- schema: %d migrations applied in %s (%s)", len(applied), time.Since(t0).Round(time.Millisecond), strings.Join(applied, ", "))
	}

	// On a database that outlives this run, this run's repositories, table
	// and migration get names of their own.
	prefix, suffix := "", ""
	if db != nil && opts.databaseURL != "" {
		id := strconv.FormatInt(time.Now().UnixNano(), 36)
		prefix, suffix = "quickstart-"+id+"/", "_"+id
	}

	// 2-3. A registry to migrate, moved through the enqueuer.
	srcDir, dstDir := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	im, err := migrateRegistry(ctx, out, db, srcDir, dstDir, prefix, opts.capacity)
	if err != nil {
		return err
	}
	say("- blobs: fileblob buckets, source %s, destination %s", srcDir, dstDir)

	// 4. The backfill.
	bf, err := backfill(ctx, out, db, opts.rows, suffix)
	if err != nil {
		return err
	}

	say("")
	say("summary")
	say("  registry   %d repositories, %d tags, %d manifests, %d blobs (%s) generated in %s",
		im.repos, im.tags, im.manifests, im.blobs, transfer.FormatBytes(im.bytes), im.generated.Round(time.Millisecond))
	say("  imports    %d/%d repositories imported through the enqueuer in %s: %d runs, at most %d imports at once (capacity %d)",
		im.imported, im.repos, im.took.Round(time.Millisecond), im.runs, im.peak, opts.capacity)
	say("  blobs      %d layers and configs copied (%s); all %d blob objects at the destination, manifests included, verified against their digests",
		im.copied, transfer.FormatBytes(im.copiedBytes), im.verified)
	say("  backfill   %d rows of %s in %d jobs in %s (%.0f rows/s), on %s", bf.rows, bf.table, bf.jobs, bf.took.Round(time.Millisecond),
		float64(bf.rows)/bf.took.Seconds(), bf.where)
	say("  files      %s (source) -> %s (destination)", srcDir, dstDir)
	if !opts.keep {
		say("             removed at exit; run with -keep to look at them")
	}
	say("done in %s", time.Since(started).Round(time.Millisecond))
	if opts.serve {
		return serveDashboard(ctx, out, opts.listen, im, bf)
	}
	return nil
}

// openStorage connects to url, or to a throwaway server when url is empty.
// It returns a nil DB (and why) when no server can be had.
func openStorage(ctx context.Context, url string) (*storage.DB, func(), string, error) {
	how := "PostgreSQL at the given URL"
	stopServer := func() {}
	if url == "" {
		t0 := time.Now()
		server, err := storagetest.Start(ctx, storagetest.ServerOptions{})
		if err != nil {
			return nil, func() {}, fmt.Sprintf("no throwaway PostgreSQL could be started (%v)", firstLine(err)), nil
		}
		stopServer = func() { _ = server.Stop() }
		url = server.URL("postgres")
		how = fmt.Sprintf("throwaway PostgreSQL in %s (started in %s)", server.Dir(), time.Since(t0).Round(time.Millisecond))
	}
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: url, MaxConns: 8})
	if err != nil {
		stopServer()
		return nil, nil, "", err
	}
	return db, func() { db.Close(); stopServer() }, how, nil
}

func appliedMigrations(ctx context.Context, db storage.Querier) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT name FROM ferry_schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("reading applied migrations: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// progress prints a line at most every interval, and the last one always.
type progress struct {
	out      io.Writer
	interval time.Duration
	last     time.Time
}

func (p *progress) line(final bool, format string, args ...any) {
	if !final && time.Since(p.last) < p.interval {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.out, "  "+format+"\n", args...)
}
