package bbm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/storage"
)

// A SyncWorker runs a migration to the end. Here it runs on bbmtest's
// in-memory Store and Catalog; with Postgres, pass the pool as the first
// argument of NewSyncWorker and leave Store and Catalog unset, and Do gets
// the job's transaction to UPDATE the batch with.
func Example() {
	ctx := context.Background()
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:   bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog: bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 10}),
		Logger:  slog.New(slog.DiscardHandler),
		// Fixed batch sizes, for a predictable output; by default sizes
		// adapt to aim at 500ms jobs.
		Adaptive: bbm.AdaptiveOptions{Off: true},
	})
	err := w.Register(bbm.WorkFunc("fill_checksum", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		// With Postgres: db.Exec(ctx, `UPDATE `+b.Table.Sanitize()+` SET checksum = md5(payload)
		//	WHERE `+cond, args...) with cond, args := b.Where(1)
		fmt.Printf("%s keys %s..%s\n", b.Table.Sanitize(), b.Start, b.End)
		return nil
	}))
	if err != nil {
		panic(err)
	}
	_, err = w.Admin().Register(ctx, bbm.Definition{Name: "fill_checksum", Table: "items", Column: "id", Work: "fill_checksum", BatchSize: 4})
	if err != nil {
		panic(err)
	}
	if err := w.Run(ctx); err != nil {
		panic(err)
	}
	p, _ := w.Admin().Status(ctx, "fill_checksum")
	fmt.Println(p.Migration.Status, p.Percent, w.FinishedMigrationCount())
	// Output:
	// "public"."items" keys 1..4
	// "public"."items" keys 5..8
	// "public"."items" keys 9..10
	// finished 100 1
}

// Registration validates its input: names that are not a table or
// schema.table are refused before they reach the database.
func ExampleAdmin_Register() {
	ctx := context.Background()
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:   bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog: bbmtest.NewCatalog(bbmtest.Table{Name: "users", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 10}),
	})
	_ = w.Register(bbm.WorkFunc("noop", func(context.Context, storage.Querier, bbm.Batch) error { return nil }))
	for _, d := range []bbm.Definition{
		{Name: "a", Table: "users; DROP TABLE x", Column: "id", Work: "noop", BatchSize: 10},
		{Name: "b", Table: `"x"."y"."z"`, Column: "id", Work: "noop", BatchSize: 10},
		{Name: "c", Table: "users", Column: "id", Work: "nope", BatchSize: 10},
		{Name: "d", Table: "users", Column: "id", Work: "noop", BatchSize: 0},
		{Name: "e", Table: "users", Column: "id", Work: "noop", BatchSize: 10, From: bbm.IntKey(9), To: bbm.IntKey(2)},
	} {
		_, err := w.Admin().Register(ctx, d)
		fmt.Println(errors.Is(err, bbm.ErrInvalidTable), errors.Is(err, bbm.ErrUnknownWork),
			errors.Is(err, bbm.ErrInvalidBatchSize), errors.Is(err, bbm.ErrInvalidRange))
	}
	// Output:
	// true false false false
	// true false false false
	// false true false false
	// false false true false
	// false false false true
}

// A Worker runs in the background of a server process until Stop.
func ExampleWorker() {
	ctx := context.Background()
	store := bbmtest.NewStore(bbmtest.StoreOptions{})
	w := bbm.NewWorker(nil, bbm.Options{
		Store:    store,
		Catalog:  bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 300}),
		Logger:   slog.New(slog.DiscardHandler),
		Adaptive: bbm.AdaptiveOptions{Off: true}, // fixed batch sizes, for a predictable output
	})
	var mu sync.Mutex
	done := make(chan struct{})
	_ = w.Register(bbm.WorkFunc("touch", func(ctx context.Context, db storage.Querier, b bbm.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		fmt.Println("batch", b.Start, b.End)
		if b.End.Equal(bbm.IntKey(300)) {
			close(done)
		}
		return nil
	}))
	if _, err := w.Admin().Register(ctx, bbm.Definition{Name: "touch", Table: "items", Column: "id", Work: "touch", BatchSize: 100}); err != nil {
		panic(err)
	}
	if err := w.Start(ctx); err != nil {
		panic(err)
	}
	<-done
	if err := w.Stop(ctx); err != nil {
		panic(err)
	}
	// Output:
	// batch 1 100
	// batch 101 200
	// batch 201 300
}

// Where is the condition selecting a batch's rows: typed casts, and a
// row-wise comparison for a composite key, so its index serves it.
func ExampleBatch_Where() {
	b := bbm.Batch{Table: pgx.Identifier{"public", "tags"}, KeyColumns: []string{"repository_id", "name"},
		KeyTypes: []string{"bigint", "text"}, Strategy: bbm.Keyset, Start: bbm.Key{"7", "latest"}, End: bbm.Key{"9", "v1.2"}}
	cond, args := b.Where(1)
	fmt.Println(`UPDATE ` + b.Table.Sanitize() + ` SET immutable = false WHERE ` + cond)
	fmt.Println(args...)
	// Output:
	// UPDATE "public"."tags" SET immutable = false WHERE ("repository_id", "name") >= ($1::text::bigint, $2::text::text) AND ("repository_id", "name") <= ($3::text::bigint, $4::text::text)
	// 7 latest 9 v1.2
}

// Hooks have pgx's tracer shape: the job runs under the context JobStart
// returns, so a span a tracer starts there is the parent of what the Work
// does, and JobEnd gets that context back to end it.
func ExampleObserverFuncs() {
	ctx := context.Background()
	type spanKey struct{}
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:    bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog:  bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 4}),
		Adaptive: bbm.AdaptiveOptions{Off: true},
		Logger:   slog.New(slog.DiscardHandler),
		Observer: bbm.ObserverFuncs{
			OnJobStart: func(ctx context.Context, e bbm.JobStartEvent) context.Context {
				return context.WithValue(ctx, spanKey{}, fmt.Sprintf("job [%v, %v]", e.Start, e.End))
			},
			OnJobEnd: func(ctx context.Context, e bbm.JobEvent) {
				fmt.Println("end", ctx.Value(spanKey{}), "error:", e.Err)
			},
		},
	})
	err := w.Register(bbm.WorkFunc("fill", func(ctx context.Context, _ storage.Querier, b bbm.Batch) error {
		fmt.Println("work under", ctx.Value(spanKey{}))
		return nil
	}))
	if err != nil {
		panic(err)
	}
	if _, err := w.Admin().Register(ctx, bbm.Definition{Name: "fill", Table: "items", Column: "id", Work: "fill", BatchSize: 2}); err != nil {
		panic(err)
	}
	if err := w.Run(ctx); err != nil {
		panic(err)
	}

	// Output:
	// work under job [1, 2]
	// end job [1, 2] error: <nil>
	// work under job [3, 4]
	// end job [3, 4] error: <nil>
}
