package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease/leasetest"
	"github.com/ferryhq/ferry/storage"
)

// A host mounts the dashboard on its own Ferry objects, read-only (no
// Authorize), and reads the same figures as JSON.
func Example() {
	ctx := context.Background()
	// The host's objects; in-memory ones here.
	w := bbm.NewSyncWorker(nil, bbm.Options{
		Store:    bbmtest.NewStore(bbmtest.StoreOptions{}),
		Catalog:  bbmtest.NewCatalog(bbmtest.Table{Name: "blobs", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 1000}),
		Adaptive: bbm.AdaptiveOptions{Off: true}, Logger: slog.New(slog.DiscardHandler),
	})
	_ = w.Register(bbm.WorkFunc("fill", func(context.Context, storage.Querier, bbm.Batch) error { return nil }))
	_, _ = w.Admin().Register(ctx, bbm.Definition{Name: "fill_size_bucket", Table: "blobs", Column: "id", Work: "fill", BatchSize: 100})
	_ = w.Run(ctx)
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	for _, p := range []string{"group/a", "group/b", "other/c"} {
		_, _ = store.Add(ctx, enqueuer.NewRepository{Path: p})
	}
	locker := leasetest.NewLocker(leasetest.Options{Holder: "worker-1"})
	_, _ = locker.Acquire(ctx, enqueuer.DefaultLeaseKey, time.Minute)

	h, err := dashboard.New(dashboard.Config{
		Prefix:       "/ferry",
		Migrations:   w.Admin(),
		Repositories: store,
		Capacity:     func(context.Context) int { return 25 },
		Leases:       []dashboard.LeaseKey{{Title: "enqueuer", Key: enqueuer.DefaultLeaseKey, Locker: locker}},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/ferry/", h)

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ferry/api/overview", nil))
	var o dashboard.Overview
	if err := json.NewDecoder(rec.Body).Decode(&o); err != nil {
		fmt.Println(err)
		return
	}
	m := o.Migrations.List[0]
	fmt.Printf("%s: %s, %.0f%%, %d jobs\n", m.Name, m.Status, m.Percent, m.Jobs.Finished)
	fmt.Printf("imports: %d waiting, %d of %d in progress\n", o.Imports.Waiting, o.Imports.InProgress, *o.Imports.Capacity)
	fmt.Printf("lease %s held by %s\n", o.Leases[0].Title, o.Leases[0].Holder)

	// Read-only: actions are refused.
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ferry/actions", nil))
	fmt.Println(rec.Code)
	// Output:
	// fill_size_bucket: finished, 100%, 10 jobs
	// imports: 3 waiting, 0 of 25 in progress
	// lease enqueuer held by worker-1
	// 403
}

// Actions are allowed by the host's Authorize, here to requests that carry
// the host's own admin session (how the host authenticates is its
// business).
func ExampleConfig_authorize() {
	isAdmin := func(r *http.Request) bool {
		c, err := r.Cookie("session")
		return err == nil && c.Value == "admin" // a real host looks the session up
	}
	cfg := dashboard.Config{
		Leases: []dashboard.LeaseKey{{Key: "k", Locker: leasetest.NewLocker(leasetest.Options{})}},
		Authorize: func(r *http.Request, a dashboard.Action) error {
			if !isAdmin(r) {
				return errors.New("only administrators may act")
			}
			if a.Kind == dashboard.BreakLease {
				return errors.New("leases are broken from the command line here")
			}
			return nil
		},
		// Replicas behind one address share the key, so that a form served
		// by one is accepted by another.
		CSRFKey: []byte("0123456789abcdef0123456789abcdef"),
	}
	_, err := dashboard.New(cfg)
	fmt.Println(err)
	// Output: <nil>
}
