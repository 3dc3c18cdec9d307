package importserver_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// gatedTransferer lets the first free transfers through and holds the
// others until open is closed (or their context ends): a pre-import
// stopped part-way through its blobs, for as long as the test likes.
type gatedTransferer struct {
	transfer.Transferer
	free  int64
	open  chan struct{}
	calls atomic.Int64
}

func (g *gatedTransferer) Transfer(ctx context.Context, d digest.Digest) (transfer.Result, error) {
	if g.calls.Add(1) > g.free {
		select {
		case <-g.open:
		case <-ctx.Done():
			return transfer.Result{}, context.Cause(ctx)
		}
	}
	return g.Transferer.Transfer(ctx, d)
}

// heldImport is a started server with a real transfer.Importer whose blob
// transfers are gated, and the generated repository to import.
type heldImport struct {
	cfg   importserver.Config
	api   string // the import API's base URL
	repo  string
	coord *coordinator
	gate  *gatedTransferer
}

// newHeldImport starts a server on store whose imports transfer free
// blobs and then wait for h.gate.open. The repository imported is the
// generated one with the most layer links, which has more than free
// blobs.
func newHeldImport(t *testing.T, store importserver.Store, free int64) *heldImport {
	t.Helper()
	src, dst := transfertest.NewMemBucket(), transfertest.NewMemBucket()
	gen := transfertest.MustGenerate(t, src, transfertest.SmallSpec(7))
	h := &heldImport{coord: newCoordinator(t)}
	for _, r := range gen.Repositories {
		if h.repo == "" || len(r.Layers) > len(gen.Repository(h.repo).Layers) {
			h.repo = r.Name
		}
	}
	tr, err := transfer.New(src, dst, transfer.Options{})
	require.NoError(t, err)
	h.gate = &gatedTransferer{Transferer: tr, free: free, open: make(chan struct{})}
	im, err := transfer.NewImporter(src, h.gate, transfer.NewLayoutSink(dst, gen.Layout, transfer.RetryPolicy{}), transfer.ImportOptions{})
	require.NoError(t, err)
	h.cfg = baseConfig(t, store, im, h.coord.url())
	h.cfg.Repositories = importserver.LayoutRepositories(src, gen.Layout)
	h.api = startAPI(t, h.cfg)
	return h
}

// startAPI starts a server with cfg (shut down by the test's cleanup) and
// returns the base URL of its import API.
func startAPI(t *testing.T, cfg importserver.Config) string {
	t.Helper()
	srv, err := importserver.New(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return newServer(t, srv.Handler()).URL
}

// status GETs the repository's status from the server at base.
func (h *heldImport) status(t *testing.T, base string) importserver.StatusResponse {
	t.Helper()
	code, st, _ := callAPI(t, base, http.MethodGet, h.repo, "", "Bearer "+secret, nil)
	require.Equal(t, http.StatusOK, code)
	return st
}

// startHeld starts the pre-import and waits until GET shows the free
// blobs done, the rest held.
func (h *heldImport) startHeld(t *testing.T) importserver.StatusResponse {
	t.Helper()
	code, _, _ := callAPI(t, h.api, http.MethodPut, h.repo, "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusAccepted, code)
	var st importserver.StatusResponse
	require.Eventually(t, func() bool {
		st = h.status(t, h.api)
		return st.Progress != nil && st.Progress.Done == h.gate.free
	}, 10*time.Second, 5*time.Millisecond, "progress with %d blobs done (last %+v)", h.gate.free, st.Progress)
	return st
}

// While a pre-import with a real transfer.Importer runs, GET reports its
// progress: the repository's planned blobs as the total, those
// transferred so far as done, and when the plan was known. Another
// instance sharing the store shows the run without progress (it is in
// the running process's memory only), and the finished import has none.
func TestStatusReportsProgress(t *testing.T) {
	stores := []struct {
		name     string
		newStore func(t *testing.T) importserver.Store
	}{
		{"memory", func(*testing.T) importserver.Store { return newMemStore() }},
		{"postgres", func(t *testing.T) importserver.Store {
			s, err := importserver.NewPostgresStore(storage.FromPool(storagetest.Pool(t)), importserver.PostgresOptions{})
			require.NoError(t, err)
			return s
		}},
	}
	for _, tc := range stores {
		t.Run(tc.name, func(t *testing.T) {
			const free = 2
			h := newHeldImport(t, tc.newStore(t), free)
			began := time.Now()
			st := h.startHeld(t)
			require.Equal(t, importserver.StatusPreImportInProgress, st.Status)
			p := st.Progress
			require.Greater(t, p.Total, p.Done, "blobs are held: the import is part-way")
			require.EqualValues(t, free, p.Done)
			require.WithinRange(t, p.Since, began, time.Now(), "since: when the plan was known")
			require.WithinRange(t, p.At, p.Since, time.Now(), "at: when the answer was made, same clock")
			t.Logf("held at %d of %d units", p.Done, p.Total)

			// The same run seen from another instance: no progress.
			other := h.cfg
			other.Instance = "registry-1"
			st = h.status(t, startAPI(t, other))
			require.Equal(t, importserver.StatusPreImportInProgress, st.Status)
			require.Equal(t, "registry-0", st.Owner)
			require.Nil(t, st.Progress, "another instance's run")

			close(h.gate.open)
			h.coord.waitFor(t, h.repo, importserver.StatusPreImportComplete)
			st = h.status(t, h.api)
			require.Equal(t, importserver.StatusPreImportComplete, st.Status)
			require.Nil(t, st.Progress, "a finished import has no progress")
			require.Equal(t, p.Total, st.BlobsCopied+st.BlobsSkipped, "a pre-import's total is the repository's blobs")
			require.Equal(t, p.Total, h.gate.calls.Load(), "one transfer per planned blob")
		})
	}
}

// The JSON contract between the two halves of the protocol: what GET
// answers as "progress" is what enqueuer.HTTPRegistry decodes into
// ImportStatus.Progress (which the coordinator's forecast reads).
func TestProgressDecodedByEnqueuer(t *testing.T) {
	ctx := context.Background()
	h := newHeldImport(t, newMemStore(), 1)
	want := h.startHeld(t).Progress
	client, err := enqueuer.NewHTTPRegistry(enqueuer.HTTPRegistryOptions{BaseURL: h.api, Token: secret, Logger: quietLogger(t)})
	require.NoError(t, err)

	st, err := client.ImportStatus(ctx, h.repo)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatusPreImportInProgress, st.Status)
	require.NotNil(t, st.Progress)
	require.Equal(t, want.Done, st.Progress.Done)
	require.Equal(t, want.Total, st.Progress.Total)
	require.True(t, want.Since.Equal(st.Progress.Since), "since: %s, enqueuer decoded %s", want.Since, st.Progress.Since)
	require.False(t, st.Progress.Since.IsZero())
	require.False(t, st.Progress.At.IsZero(), "the answer's own time")
	require.False(t, st.Progress.At.Before(st.Progress.Since))

	close(h.gate.open)
	h.coord.waitFor(t, h.repo, importserver.StatusPreImportComplete)
	st, err = client.ImportStatus(ctx, h.repo)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatusPreImportComplete, st.Status)
	require.Nil(t, st.Progress)
}
