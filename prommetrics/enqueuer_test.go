package prommetrics_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease/leasetest"
)

func TestEnqueuerMetricsMove(t *testing.T) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	epoch := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := store.Add(ctx, enqueuer.NewRepository{Path: "g/big", TagCount: 1000, CreatedAt: epoch})
	require.NoError(t, err)
	_, err = store.Add(ctx, enqueuer.NewRepository{Path: "secret/x", TagCount: 1, CreatedAt: epoch.Add(time.Minute)})
	require.NoError(t, err)
	for i := range 6 {
		_, err := store.Add(ctx, enqueuer.NewRepository{Path: fmt.Sprintf("g/r-%d", i), TagCount: 10, CreatedAt: epoch.Add(time.Duration(i+2) * time.Minute)})
		require.NoError(t, err)
	}
	registry := enqueuertest.NewRegistry(enqueuertest.RegistryOptions{MaxImports: 3})
	registry.Fail(enqueuertest.OpPreImport, "g/r-0", &enqueuer.RegistryError{Op: "pre-import", Path: "g/r-0", StatusCode: 404, Err: enqueuer.ErrRegistryNotFound})
	registry.SetStatus("g/r-1", enqueuer.StatusNative)
	locker := leasetest.NewLocker(leasetest.Options{})
	enq, err := enqueuer.New(enqueuer.Config{
		Store: store, Registry: registry, Locker: locker, Capacity: func(context.Context) int { return 10 },
		MaxTagsCount: 100, Strategy: enqueuer.Loop{}, Logger: quiet, Observer: m.Enqueuer(),
		Defer: func(_ context.Context, r enqueuer.Repository) string {
			if strings.HasPrefix(r.Path, "secret/") {
				return "namespace secret is not migrated yet" // deferred, not skipped
			}
			return ""
		},
	})
	require.NoError(t, err)
	rep, err := enq.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StopTooManyImports, rep.Stopped)

	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_runs_total", "stopped", "too_many_imports"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_run_duration_seconds"))
	require.Equal(t, 3.0, must(t, reg, "ferry_enqueuer_starts_total", "import_type", "next", "result", "accepted"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_starts_total", "import_type", "next", "result", "too_many_imports"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_starts_total", "import_type", "next", "result", "not_found"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_starts_total", "import_type", "next", "result", "native"))
	require.Equal(t, 6.0, must(t, reg, "ferry_enqueuer_start_duration_seconds", "import_type", "next"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_skips_total", "reason", "too_many_tags"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_skips_total", "reason", "native_import"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_skips_total", "reason", "not_found"))
	require.Equal(t, 1, rep.Deferred, "secret/x is deferred, not skipped")
	require.Equal(t, 10.0, must(t, reg, "ferry_enqueuer_import_capacity"))
	inProgress := must(t, reg, "ferry_enqueuer_imports_in_progress")
	require.LessOrEqual(t, inProgress, 3.0)

	// The next run sees the three imports in progress; one completes at
	// the registry and stays unnotified long enough to be stale.
	registry.Complete("g/r-2")
	enq2, err := enqueuer.New(enqueuer.Config{
		Store: store, Registry: registry, Locker: locker, Capacity: func(context.Context) int { return 3 },
		Logger: quiet, Observer: m.Enqueuer(), PreImportTimeout: time.Nanosecond,
		Clock: func() time.Time { return time.Now().Add(time.Hour) },
	})
	require.NoError(t, err)
	_, err = enq2.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 3.0, must(t, reg, "ferry_enqueuer_import_capacity"))
	require.Equal(t, 2.0, must(t, reg, "ferry_enqueuer_aborts_total", "cause", "canceled"), "the two running past their timeout")

	// A run that finds the lease held counts as one.
	l, err := locker.Acquire(ctx, enqueuer.DefaultLeaseKey, time.Minute)
	require.NoError(t, err)
	_, err = enq.Run(ctx)
	require.Error(t, err)
	require.NoError(t, l.Release(ctx))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_runs_total", "stopped", "lease_held"))

	// Notifications, through the real Handler.
	h, err := enqueuer.NewHandler(enqueuer.HandlerOptions{Store: store, Secret: "s3", Logger: quiet, Observer: m.Enqueuer()})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	notify := func(path, auth, body string) int {
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/api/repositories/"+path+"/migration/status", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", auth)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	inFlight, err := store.List(ctx, enqueuer.ListOptions{State: enqueuer.StatePreImporting, Limit: 1})
	require.NoError(t, err)
	require.Len(t, inFlight, 1)
	p := inFlight[0].Path
	require.Equal(t, 200, notify(p, "Bearer s3", `{"status":"pre_import_complete"}`))
	require.Equal(t, 200, notify(p, "Bearer s3", `{"status":"pre_import_complete"}`))
	require.Equal(t, 400, notify(p, "Bearer s3", `{"status":"import_complete"}`))
	require.Equal(t, 400, notify(p, "Bearer s3", `{"status":"`+strings.Repeat("x", 100)+`"}`))
	require.Equal(t, 403, notify(p, "Bearer nope", `{"status":"import_complete"}`))
	require.Equal(t, 404, notify("g/unknown", "Bearer s3", `{"status":"import_complete"}`))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_notifications_total", "status", "pre_import_complete", "outcome", "applied"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_notifications_total", "status", "pre_import_complete", "outcome", "duplicate"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_notifications_total", "status", "import_complete", "outcome", "wrong_state"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_notifications_total", "status", "invalid", "outcome", "bad_request"))
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_notifications_total", "status", "invalid", "outcome", "unauthorized"),
		"the body of an unauthenticated request is not read")
	require.Equal(t, 1.0, must(t, reg, "ferry_enqueuer_notifications_total", "status", "import_complete", "outcome", "not_found"))
	require.Equal(t, 6.0, must(t, reg, "ferry_enqueuer_notification_duration_seconds"))

	// The two cancelled imports are reconciled before their retry: the
	// registry says cancelled, so they start over.
	enq3, err := enqueuer.New(enqueuer.Config{
		Store: store, Registry: registry, Locker: locker, Capacity: func(context.Context) int { return 10 },
		Logger: quiet, Observer: m.Enqueuer(), Clock: func() time.Time { return time.Now().Add(2 * time.Hour) },
	})
	require.NoError(t, err)
	rep, err = enq3.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Count(enqueuer.ImportRetry))
	require.Equal(t, 2.0, must(t, reg, "ferry_enqueuer_reconciled_total", "status", "pre_import_canceled", "outcome", "retried"))
}
