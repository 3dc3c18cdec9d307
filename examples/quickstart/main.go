// Command quickstart is the first thing to run: it shows Ferry's main job on
// embedded defaults, with nothing to configure. It starts a throwaway
// PostgreSQL server when this machine has the binaries (else it says so and
// uses in-memory stores), applies Ferry's schema with storage.Migrate, and
// makes a fileblob directory under a temp dir for blob storage.
//
//	go run ./examples/quickstart
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
	"strings"
	"syscall"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/storage"
)

func main() {
	keep := flag.Bool("keep", false, "keep the temp dir with the blob storage")
	dbURL := flag.String("database-url", "", "use this PostgreSQL instead of a throwaway one")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, options{keep: *keep, databaseURL: *dbURL}); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

type options struct {
	keep        bool
	databaseURL string
}

func run(ctx context.Context, out io.Writer, opts options) error {
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

	db, cleanup, how, err := openStorage(ctx, opts.databaseURL)
	if err != nil {
		return err
	}
	defer cleanup()
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

	blobDir := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return err
	}
	bucket, err := fileblob.OpenBucket(blobDir, nil)
	if err != nil {
		return fmt.Errorf("opening fileblob bucket: %w", err)
	}
	defer bucket.Close()
	if err := bucket.WriteAll(ctx, "hello.txt", []byte("hello from ferry\n"), nil); err != nil {
		return fmt.Errorf("writing a blob: %w", err)
	}
	say("- blobs: fileblob bucket at %s", blobDir)
	say("done in %s", time.Since(started).Round(time.Millisecond))
	return nil
}

// openStorage connects to url, or to a throwaway server when url is empty.
// It returns a nil DB (and why) when no server can be had.
func openStorage(ctx context.Context, url string) (*storage.DB, func(), string, error) {
	how := "PostgreSQL at the given URL"
	stopServer := func() {}
	if url == "" {
		server, err := pgtest.Start(ctx, pgtest.ServerOptions{})
		if err != nil {
			return nil, func() {}, fmt.Sprintf("no throwaway PostgreSQL could be started (%v)", firstLine(err)), nil
		}
		stopServer = func() { _ = server.Stop() }
		url = server.URL("postgres")
		how = "throwaway PostgreSQL in " + server.Dir()
	}
	db, err := storage.Open(ctx, storage.Config{PrimaryURL: url})
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
