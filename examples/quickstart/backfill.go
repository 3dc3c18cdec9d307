package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/storage"
)

// backfillSummary is what backfill did.
type backfillSummary struct {
	rows  int
	table string
	where string
	jobs  int
	took  time.Duration
	// admin steers the worker's migrations (the dashboard of -serve).
	admin *bbm.Admin
}

// backfill fills checksum = md5(payload) for every row of a table with a
// batched background migration: on Postgres when db is set, else on bbm's
// in-memory store with an in-memory table. suffix makes the table and
// migration names unique on a database that outlives this run.
func backfill(ctx context.Context, out io.Writer, db *storage.DB, rows int, suffix string) (backfillSummary, error) {
	if db == nil {
		return backfillInMemory(ctx, out, rows)
	}
	return backfillPostgres(ctx, out, db, rows, suffix)
}

// batchSize cuts the table into about ten jobs.
func batchSize(rows int) int { return max(1, (rows+9)/10) }

func backfillPostgres(ctx context.Context, out io.Writer, db *storage.DB, rows int, suffix string) (backfillSummary, error) {
	s := backfillSummary{rows: rows, table: "quickstart_items" + suffix, where: "PostgreSQL"}
	t := pgx.Identifier{s.table}.Sanitize()
	t0 := time.Now()
	if _, err := db.Exec(ctx, `CREATE TABLE `+t+` (id bigint PRIMARY KEY, payload text NOT NULL, checksum text)`); err != nil {
		return s, fmt.Errorf("creating %s: %w", s.table, err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO `+t+` (id, payload) SELECT g, 'item-' || g FROM generate_series(1, $1::bigint) g`, rows); err != nil {
		return s, err
	}
	fmt.Fprintf(out, "- backfill: created %s with %d rows and an empty checksum column in %s\n", s.table, rows, time.Since(t0).Round(time.Millisecond))

	prog := &backfillProgress{p: progress{out: out, interval: 250 * time.Millisecond}, total: rows}
	w := bbm.NewSyncWorker(db, bbm.Options{
		Logger:   slog.New(slog.DiscardHandler),
		Observer: bbm.ObserverFuncs{OnJobEnd: prog.jobEnded},
	})
	// Each batch's UPDATE commits together with its job's record, so it is
	// applied exactly once.
	err := w.Register(bbm.WorkFunc("fill_checksum", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		cond, args := b.Where(1)
		_, err := db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+` SET checksum = md5(payload) WHERE `+cond, args...)
		return err
	}))
	if err != nil {
		return s, err
	}
	return s, runBackfill(ctx, out, w, &s, prog, func() (int, error) {
		var wrong int
		err := db.QueryRow(ctx, `SELECT count(*) FROM `+t+` WHERE checksum IS DISTINCT FROM md5(payload)`).Scan(&wrong)
		return wrong, err
	}, "fill_checksum"+suffix)
}

func backfillInMemory(ctx context.Context, out io.Writer, rows int) (backfillSummary, error) {
	s := backfillSummary{rows: rows, table: "items", where: "bbm's in-memory store (bbmtest) and an in-memory table"}
	// The table: payload(id) = "item-<id>", and the column to fill.
	checksum := make([]string, rows+1)
	prog := &backfillProgress{p: progress{out: out, interval: 250 * time.Millisecond}, total: rows}
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:    bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog:  bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint", "checksum": "text"}, MinKey: 1, MaxKey: int64(rows)}),
		Logger:   slog.New(slog.DiscardHandler),
		Observer: bbm.ObserverFuncs{OnJobEnd: prog.jobEnded},
	})
	err := w.Register(bbm.WorkFunc("fill_checksum", func(ctx context.Context, _ storage.Querier, b bbm.Batch) error {
		start, _ := b.StartInt()
		end, _ := b.EndInt()
		for id := start; id <= end; id++ {
			if id%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			sum := md5.Sum([]byte("item-" + strconv.FormatInt(id, 10)))
			checksum[id] = hex.EncodeToString(sum[:])
		}
		return nil
	}))
	if err != nil {
		return s, err
	}
	fmt.Fprintf(out, "- backfill: an in-memory table of %d rows with an empty checksum column\n", rows)
	return s, runBackfill(ctx, out, w, &s, prog, func() (int, error) {
		wrong := 0
		for id := 1; id <= rows; id++ {
			sum := md5.Sum([]byte("item-" + strconv.Itoa(id)))
			if checksum[id] != hex.EncodeToString(sum[:]) {
				wrong++
			}
		}
		return wrong, nil
	}, "fill_checksum")
}

// runBackfill registers the migration, runs the worker to the end and
// checks every row with wrongRows.
func runBackfill(ctx context.Context, out io.Writer, w *bbm.SyncWorker, s *backfillSummary, prog *backfillProgress,
	wrongRows func() (int, error), name string) error {
	s.admin = w.Admin()
	m, err := s.admin.Register(ctx, bbm.Definition{Name: name, Table: s.table, Column: "id", Work: "fill_checksum", BatchSize: batchSize(s.rows)})
	if err != nil {
		return fmt.Errorf("registering the backfill: %w", err)
	}
	t0 := time.Now()
	prog.start = t0
	if err := w.Run(ctx); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	s.took = time.Since(t0)
	p, err := w.Admin().Status(ctx, m.Name)
	if err != nil {
		return err
	}
	s.jobs = p.Jobs.Finished
	wrong, err := wrongRows()
	if err != nil {
		return err
	}
	if wrong > 0 {
		return fmt.Errorf("backfill: %d of %d rows are not filled", wrong, s.rows)
	}
	fmt.Fprintf(out, "- backfill: migration %s %s in %s, %d jobs; verified: every row has checksum = md5(payload)\n",
		m.Name, p.Migration.Status, s.took.Round(time.Millisecond), s.jobs)
	return nil
}

// backfillProgress prints the share done, the rate and the ETA.
type backfillProgress struct {
	p     progress
	total int
	done  int64
	start time.Time
}

func (b *backfillProgress) jobEnded(_ context.Context, e bbm.JobEvent) {
	if e.Err != nil {
		fmt.Fprintf(b.p.out, "  job %d [%s, %s] failed: %v\n", e.JobID, e.Start, e.End, e.Err)
		return
	}
	b.done += e.Rows
	elapsed := time.Since(b.start)
	rate := float64(b.done) / max(elapsed.Seconds(), 1e-9)
	eta := time.Duration(float64(int64(b.total)-b.done) / rate * float64(time.Second))
	b.p.line(b.done >= int64(b.total), "progress: %5.1f%% %d/%d rows, %.0f rows/s, ETA %s",
		100*float64(b.done)/float64(b.total), b.done, b.total, rate, eta.Round(10*time.Millisecond))
}
