package main

import (
	"context"
	"errors"
	"time"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage"
)

const (
	backfillTable     = "registryhost_blobs"
	backfillMigration = "registryhost_fill_size_bucket"
)

// sizeBucketWork is the host's bbm.Work: it fills registryhost_blobs.size_bucket
// from size. bbm records each batch's job in the batch's own transaction,
// so a batch applies exactly once; the Work also only touches rows still
// to do (size_bucket IS NULL). touched counts the changes, so a test can
// see that no row was changed twice.
type sizeBucketWork struct {
	// delay makes every batch take at least this long (-batch-delay).
	delay time.Duration
}

// Name implements bbm.Work.
func (sizeBucketWork) Name() string { return "fill_size_bucket" }

// Do implements bbm.Work.
func (w sizeBucketWork) Do(ctx context.Context, db storage.Querier, b bbm.Batch) error {
	if err := sleep(ctx, w.delay); err != nil {
		return err
	}
	cond, args := b.Where(1)
	_, err := db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+`
		SET size_bucket = CASE WHEN size < 1048576 THEN 'small' WHEN size < 104857600 THEN 'medium' ELSE 'large' END,
		    touched = touched + 1
		WHERE `+cond+` AND size_bucket IS NULL`, args...)
	return err
}

// registerBackfill registers the migration once; a host that restarts
// finds it registered and the worker carries on where it was.
func registerBackfill(ctx context.Context, admin *bbm.Admin, work bbm.Work, batch int) (*bbm.Migration, error) {
	m, err := admin.Register(ctx, bbm.Definition{
		Name: backfillMigration, Table: backfillTable, Column: "id", Work: work.Name(), BatchSize: batch,
	})
	if errors.Is(err, bbm.ErrDuplicateMigration) {
		return admin.Migration(ctx, backfillMigration)
	}
	return m, err
}
