package prommetrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

// The import server's metrics move with real requests, imports, guarded
// writes and deliveries.
func TestImportServerMetricsMove(t *testing.T) {
	m, reg := newMetrics(t)
	var answered atomic.Int32
	coord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answered.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer coord.Close()
	im := importservertest.NewImporter(importservertest.ImporterOptions{})
	srv, err := importserver.New(importserver.Config{
		Importer:     im,
		Repositories: importserver.RepositoriesFunc(func(context.Context, string) (bool, error) { return true, nil }),
		Store:        importservertest.NewStore(importservertest.StoreOptions{}),
		Authorize:    importserver.BearerSecret("s"),
		Notify: importserver.NotifyConfig{URL: coord.URL, Backoff: time.Millisecond, PollInterval: 5 * time.Millisecond,
			StatsInterval: 5 * time.Millisecond},
		Logger:   quiet,
		Observer: m.ImportServer(),
	})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	defer srv.Shutdown(context.Background())
	api := httptest.NewServer(srv.Handler())
	defer api.Close()
	v2 := httptest.NewServer(srv.WriteGuard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})))
	defer v2.Close()
	do := func(method, url string) int {
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Authorization", "Bearer s")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}

	require.Equal(t, 202, do(http.MethodPut, api.URL+"/gitlab/v1/import/a/?import_type=pre"))
	require.Equal(t, 400, do(http.MethodPut, api.URL+"/gitlab/v1/import/a/?import_type=x"))
	require.Eventually(t, func() bool {
		v, _ := value(t, reg, "ferry_importserver_notification_attempts_total", "result", "delivered")
		return v == 1
	}, 5*time.Second, time.Millisecond)
	require.Equal(t, 200, do(http.MethodGet, api.URL+"/gitlab/v1/import/a/"))
	im.Hold("a")
	require.Equal(t, 202, do(http.MethodPut, api.URL+"/gitlab/v1/import/a/?import_type=final"))
	require.Eventually(t, func() bool { return im.Running("a") == 1 }, 5*time.Second, time.Millisecond)
	require.Equal(t, 1.0, must(t, reg, "ferry_importserver_imports_running"))
	require.Equal(t, 503, do(http.MethodPut, v2.URL+"/v2/a/manifests/latest"))
	im.Release("a")
	require.Eventually(t, func() bool {
		v, _ := value(t, reg, "ferry_importserver_imports_total", "type", "final", "result", "complete")
		return v == 1
	}, 5*time.Second, time.Millisecond)

	require.Equal(t, 2.0, must(t, reg, "ferry_importserver_requests_total", "op", "start", "code", "202"))
	require.Equal(t, 1.0, must(t, reg, "ferry_importserver_requests_total", "op", "start", "code", "400"))
	require.Equal(t, 1.0, must(t, reg, "ferry_importserver_requests_total", "op", "status", "code", "200"))
	require.Equal(t, 1.0, must(t, reg, "ferry_importserver_imports_total", "type", "pre", "result", "complete"))
	require.Equal(t, 1.0, must(t, reg, "ferry_importserver_import_duration_seconds", "type", "pre"))
	require.Equal(t, 1.0, must(t, reg, "ferry_importserver_import_duration_seconds", "type", "final"))
	require.Equal(t, 0.0, must(t, reg, "ferry_importserver_imports_running"))
	require.Equal(t, 1.0, must(t, reg, "ferry_importserver_guarded_writes_total", "action", "refused"))
	require.Equal(t, 1.0, must(t, reg, "ferry_importserver_notification_attempts_total", "result", "retry"))
	require.Eventually(t, func() bool {
		p, _ := value(t, reg, "ferry_importserver_notifications_pending")
		d, _ := value(t, reg, "ferry_importserver_notification_attempts_total", "result", "delivered")
		return p == 0 && d == 2
	}, 5*time.Second, time.Millisecond)
	_, ok := value(t, reg, "ferry_importserver_notification_oldest_pending_seconds")
	require.True(t, ok)
	_, ok = value(t, reg, "ferry_importserver_notifications_failed")
	require.True(t, ok)
}
