package importview_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/dashboard/importview"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

// The registry's record of a running import and its live copy show on the
// imports page next to the enqueuer's record; a finished one's outcome is
// in the outbox.
func TestRegistryAndProgressOnTheImportsPage(t *testing.T) {
	ctx := context.Background()
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	r, err := store.Add(ctx, enqueuer.NewRepository{Path: "group/app", TagCount: 3})
	require.NoError(t, err)
	_, err = store.Transition(ctx, enqueuer.Change{ID: r.ID, From: enqueuer.StateDefault, Event: enqueuer.EventStartPreImport})
	require.NoError(t, err)
	_, err = store.Add(ctx, enqueuer.NewRepository{Path: "group/done"})
	require.NoError(t, err)

	reg := importservertest.NewStore(importservertest.StoreOptions{})
	_, err = reg.Begin(ctx, importserver.BeginRequest{Path: "group/app", Type: importserver.PreImport, Owner: "registry-0"})
	require.NoError(t, err)
	done, err := reg.Begin(ctx, importserver.BeginRequest{Path: "group/done", Type: importserver.PreImport, Owner: "registry-0"})
	require.NoError(t, err)
	_, _, err = reg.Finish(ctx, importserver.Outcome{Path: "group/done", Run: done.Run, Status: importserver.StatusPreImportFailed,
		Detail: "blob sha256:abc: <b>corrupt</b>"})
	require.NoError(t, err)

	progress := importview.NewProgress()
	progress.Record(transfer.Progress{Kind: transfer.EventBlobDone, Pass: transfer.PreImport, Repository: "group/app",
		BlobsCopied: 4, BytesCopied: 4 << 20, Elapsed: 2 * time.Second})
	progress.Record(transfer.Progress{Kind: transfer.EventBlobDone, Pass: transfer.PreImport, Repository: "group/gone"})
	progress.Record(transfer.Progress{Kind: transfer.EventRepositoryDone, Repository: "group/gone"})

	h, err := dashboard.New(dashboard.Config{Repositories: store, Registry: importview.Registry(reg), Transfers: progress})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/imports", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var page dashboard.ImportsPage
	require.NoError(t, jsonDecode(rec.Body.String(), &page))
	require.Len(t, page.InProgress, 1)
	got := page.InProgress[0]
	require.Equal(t, "pre_import_in_progress", got.Registry.Status)
	require.Equal(t, "registry-0", got.Registry.Owner)
	require.Equal(t, int64(4), got.Transfer.BlobsCopied)

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/repository?path=group/done", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "blob sha256:abc: &lt;b&gt;corrupt&lt;/b&gt;")

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/overview", nil))
	var o dashboard.Overview
	require.NoError(t, jsonDecode(rec.Body.String(), &o))
	require.Equal(t, 1, o.Registry.Outbox.Pending)
	require.Len(t, o.Registry.Transfers, 1, "a finished copy is dropped")
	require.Equal(t, "pre-import", o.Registry.Transfers[0].Pass)
}

// Shows the registry's side of an import on the dashboard.
func Example() {
	ctx := context.Background()
	reg := importservertest.NewStore(importservertest.StoreOptions{})
	_, _ = reg.Begin(ctx, importserver.BeginRequest{Path: "group/app", Type: importserver.FinalImport,
		Owner: "registry-0", AllowWithoutPreImport: true})
	progress := importview.NewProgress()
	// In a host: transfer.ImportOptions{Progress: progress.Record}.
	progress.Record(transfer.Progress{Kind: transfer.EventBlobDone, Pass: transfer.FinalImport, Repository: "group/app", BlobsCopied: 2})

	imp, ok, err := importview.Registry(reg).RegistryImport(ctx, "group/app")
	fmt.Println(imp.Status, imp.Run, ok, err)
	for _, l := range progress.LiveTransfers() {
		fmt.Println(l.Repository, l.Pass, l.BlobsCopied)
	}
	// Output:
	// import_in_progress 1 true <nil>
	// group/app final-import 2
}

func jsonDecode(s string, v any) error { return json.NewDecoder(strings.NewReader(s)).Decode(v) }
