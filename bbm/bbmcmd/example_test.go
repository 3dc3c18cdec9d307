package bbmcmd_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmcmd"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/storage"
)

// A host mounts the commands under a subcommand of its own CLI; here on
// bbmtest's in-memory store. With Postgres, build the worker on the
// database (bbm.NewSyncWorker(db, bbm.Options{})) and register the Work.
func ExampleRun() {
	ctx := context.Background()
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:   bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog: bbmtest.NewCatalog(bbmtest.Table{Name: "blobs", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 5000}),
		Logger:  slog.New(slog.DiscardHandler),
	})
	_ = w.Register(bbm.WorkFunc("fill_size_bucket", func(context.Context, storage.Querier, bbm.Batch) error { return nil }))
	if _, err := w.Admin().Register(ctx, bbm.Definition{Name: "fill_size_bucket", Table: "blobs", Column: "id",
		Work: "fill_size_bucket", BatchSize: 1000}); err != nil {
		panic(err)
	}
	o := bbmcmd.Options{Worker: w, Name: "registry background-migrations", Stdout: os.Stdout, Stderr: os.Stdout}
	_ = bbmcmd.Run(ctx, []string{"status"}, o)
	err := bbmcmd.Run(ctx, []string{"require", "fill_size_bucket"}, o)
	fmt.Println(err)
	// Output:
	// NAME              STATUS  PROGRESS  ROWS     ROWS/S  ETA      DELIVERY      FAILED JOBS
	// fill_size_bucket  active  0.0%      0/~5000  0       unknown  exactly_once  0
	// bbm: migrations not finished (1 of 1):
	//   fill_size_bucket: active 0.0% (0/~5000 rows, 0 jobs, 0 failed) 0 rows/s ETA unknown
}
