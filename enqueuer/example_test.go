package enqueuer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// The seed's scenario: capacity 4, two aborted and four new repositories.
// One run retries the aborted ones and starts the two oldest new ones.
func ExampleEnqueuer_Run() {
	ctx := context.Background()
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	long := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 6; i++ {
		r, _ := store.Add(ctx, enqueuer.NewRepository{
			Path: fmt.Sprintf("gitlab-org/gitlab-test/test_image_%d", i), CreatedAt: long.Add(time.Duration(i) * time.Hour)})
		if i <= 2 { // an earlier attempt failed
			r, _ = store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: enqueuer.EventStartPreImport, At: long})
			_, _ = store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: enqueuer.EventAbort, Reason: "pre_import_failed", At: long})
		}
	}
	enq, err := enqueuer.New(enqueuer.Config{
		Store:    store,
		Registry: enqueuertest.NewRegistry(enqueuertest.RegistryOptions{}),
		Locker:   leasetest.NewLocker(leasetest.Options{}),
		Capacity: func(context.Context) int { return 4 },
		Strategy: enqueuer.Loop{},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := enq.Run(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range rep.Started {
		fmt.Println(s.ImportType, s.Repository.Path, s.Repository.State)
	}
	fmt.Println("stopped:", rep.Stopped)
	for _, r := range store.All() {
		if r.State == enqueuer.StateDefault {
			fmt.Println("waiting:", r.Path)
		}
	}
	// Output:
	// retry gitlab-org/gitlab-test/test_image_1 pre_importing
	// retry gitlab-org/gitlab-test/test_image_2 pre_importing
	// next gitlab-org/gitlab-test/test_image_3 pre_importing
	// next gitlab-org/gitlab-test/test_image_4 pre_importing
	// stopped: capacity_full
	// waiting: gitlab-org/gitlab-test/test_image_5
	// waiting: gitlab-org/gitlab-test/test_image_6
}

// The registry reports a finished pre-import; a duplicate delivery is
// accepted, a notification that does not fit the state is not.
func ExampleHandler() {
	ctx := context.Background()
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	r, _ := store.Add(ctx, enqueuer.NewRepository{Path: "group/image"})
	_, _ = store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: enqueuer.EventStartPreImport})

	h, err := enqueuer.NewHandler(enqueuer.HandlerOptions{
		Store:  store,
		Secret: "shared-secret",
		OnChange: func(ctx context.Context, r enqueuer.Repository) {
			fmt.Println("re-run the enqueuer: group/image is", r.State)
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	send := func(status string) {
		req := httptest.NewRequest(http.MethodPut, "/internal/registry/repositories/group/image/migration/status",
			strings.NewReader(`{"status":"`+status+`"}`))
		req.Header.Set("Authorization", "Bearer shared-secret")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Print(rec.Code, " ", rec.Body.String())
	}
	send("pre_import_complete")
	send("pre_import_complete")
	send("import_complete")
	// Output:
	// re-run the enqueuer: group/image is pre_import_done
	// 200 {"changed":true,"migration_state":"pre_import_done"}
	// 200 {"changed":false,"migration_state":"pre_import_done"}
	// 400 {"message":"wrong migration state (pre_import_done)"}
}

// The state machine names both states when an event does not fit.
func ExampleNext() {
	to, err := enqueuer.Next(enqueuer.StateDefault, enqueuer.EventStartPreImport)
	fmt.Println(to, err)
	_, err = enqueuer.Next(enqueuer.StateImportDone, enqueuer.EventRetry)
	fmt.Println(err)
	// Output:
	// pre_importing <nil>
	// enqueuer: invalid transition from import_done to pre_importing (event retry)
}

// The HTTP client against a registry that allows two imports at a time.
func ExampleHTTPRegistry() {
	ctx := context.Background()
	fake := enqueuertest.NewRegistry(enqueuertest.RegistryOptions{MaxImports: 2})
	srv := httptest.NewServer(enqueuertest.RegistryHandler(fake))
	defer srv.Close()

	c, err := enqueuer.NewHTTPRegistry(enqueuer.HTTPRegistryOptions{BaseURL: srv.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range []string{"group/a", "group/b", "group/c"} {
		switch err := c.StartPreImport(ctx, p); {
		case err == nil:
			fmt.Println(p, "pre-import started")
		case errors.Is(err, enqueuer.ErrTooManyImports):
			fmt.Println(p, "refused: the registry is full, try again later")
		default:
			fmt.Println(p, err)
		}
	}
	st, _ := c.ImportStatus(ctx, "group/a")
	fmt.Println("group/a:", st.Status)
	// Output:
	// group/a pre-import started
	// group/b pre-import started
	// group/c refused: the registry is full, try again later
	// group/a: pre_import_in_progress
}

// A Scheduler turns notifications, a tick and manual kicks into runs, one
// at a time: here the run at start fills the capacity, a burst of kicks
// coalesces into one more run, and Shutdown ends it.
func ExampleScheduler() {
	ctx := context.Background()
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	for i := range 3 {
		_, _ = store.Add(ctx, enqueuer.NewRepository{Path: fmt.Sprintf("group/image-%d", i)})
	}
	enq, err := enqueuer.New(enqueuer.Config{
		Store:    store,
		Registry: enqueuertest.NewRegistry(enqueuertest.RegistryOptions{}),
		Locker:   leasetest.NewLocker(leasetest.Options{}),
		Capacity: func(context.Context) int { return 2 },
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ran := make(chan enqueuer.Report, 10)
	sched, err := enqueuer.NewScheduler(enq, enqueuer.SchedulerOptions{
		Every: time.Hour,
		OnRun: func(_ context.Context, rep enqueuer.Report, _ error) { ran <- rep },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	fmt.Println("first run started", len((<-ran).Started))

	// An import finishes and frees a slot; many notifications say so.
	r, _ := store.Get(ctx, "group/image-0")
	_, _ = store.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: enqueuer.EventSkip, Reason: "example"})
	for range 100 {
		sched.Kick()
	}
	fmt.Println("next run started", len((<-ran).Started))
	_ = sched.Shutdown(ctx)
	st := sched.Stats()
	fmt.Println(<-done, st.Kicks, "kicks, at most one run pending:", st.Runs <= 3, "at most one in flight:", st.MaxInFlight == 1)
	// Output:
	// first run started 2
	// next run started 1
	// <nil> 100 kicks, at most one run pending: true at most one in flight: true
}

// Rotating the notification secret without downtime.
func ExampleHandler_SetSecrets() {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	h, err := enqueuer.NewHandler(enqueuer.HandlerOptions{Store: store, Secret: "old", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	try := func(secret string) int {
		req := httptest.NewRequest(http.MethodPut, "/internal/registry/repositories/group/none/migration/status",
			strings.NewReader(`{"status":"import_complete"}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code // 404: authorised (no such repository); 403: refused
	}
	_ = h.SetSecrets("old", "new") // 1. accept both
	fmt.Println(try("old"), try("new"))
	// 2. switch the registry to "new", then 3. drop "old".
	_ = h.SetSecrets("new")
	fmt.Println(try("old"), try("new"))
	// Output:
	// 404 404
	// 403 404
}

// Starting by plan tier, then age: the host records each repository's
// tier as its priority when it adds it, and again with SetPriority when a
// namespace changes plans; OrderPriority starts the highest tier first
// and, within a tier, the repository that waited longest.
func ExampleOrderPriority() {
	ctx := context.Background()
	const free, premium, ultimate = 0, 1, 2
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	created := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, r := range []struct {
		path string
		tier int
	}{
		{"hobby/site", free}, {"bank/api", ultimate}, {"shop/web", premium},
		{"startup/app", free}, {"bank/web", ultimate}, {"startup/worker", free},
	} {
		_, _ = store.Add(ctx, enqueuer.NewRepository{Path: r.path, Priority: r.tier, CreatedAt: created.Add(time.Duration(i) * time.Hour)})
	}
	// The startup namespace buys Premium.
	n, _ := store.SetPriority(ctx, enqueuer.PriorityChange{PathPrefix: "startup/", Priority: premium})
	fmt.Println("upgraded:", n)

	enq, err := enqueuer.New(enqueuer.Config{
		Store:    store,
		Registry: enqueuertest.NewRegistry(enqueuertest.RegistryOptions{}),
		Locker:   leasetest.NewLocker(leasetest.Options{}),
		Capacity: func(context.Context) int { return 5 },
		Order:    enqueuer.OrderPriority, // or enqueuer.OrderBy("-priority", "tag_count")
		Strategy: enqueuer.Loop{},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := enq.Run(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range rep.Started {
		fmt.Println(s.Repository.Priority, s.Repository.Path)
	}
	// Output:
	// upgraded: 2
	// 2 bank/api
	// 2 bank/web
	// 1 shop/web
	// 1 startup/app
	// 1 startup/worker
}
