package bbm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
	"github.com/ferryhq/ferry/storage"
)

// flakyFinish is a Store whose first FinishJob fails.
type flakyFinish struct {
	bbm.Store
	failed atomic.Bool
}

func (s *flakyFinish) FinishJob(ctx context.Context, tx pgx.Tx, r bbm.JobResult) (*bbm.Job, error) {
	if s.failed.CompareAndSwap(false, true) {
		return nil, errors.New("store unavailable")
	}
	return s.Store.FinishJob(ctx, tx, r)
}

func memWorker(t *testing.T, store bbm.Store, obs bbm.Observer, maxKey int64) *bbm.SyncWorker {
	t.Helper()
	o := fastOptions()
	o.Store = store
	o.Catalog = bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: maxKey})
	o.Observer = obs
	o.Logger = slog.New(slog.DiscardHandler)
	// A short lease: a job whose outcome was not recorded is retaken soon.
	o.JobTimeout, o.JobLease = 200*time.Millisecond, 100*time.Millisecond
	w := bbm.NewSyncWorker(nil, o)
	require.NoError(t, w.Register(bbm.WorkFunc("noop", func(context.Context, storage.Querier, bbm.Batch) error { return nil })))
	_, err := w.Admin().Register(context.Background(), bbm.Definition{Name: "fill", Table: "items", Column: "id", Work: "noop", BatchSize: 4})
	require.NoError(t, err)
	return w
}

func TestObserverNilIsSafe(t *testing.T) {
	w := memWorker(t, bbmtest.NewStore(bbmtest.StoreOptions{}), nil, 10)
	require.NoError(t, w.Run(context.Background()))
	require.Equal(t, 1, w.FinishedMigrationCount())
}

func TestObserverEventsPairAndCountKeys(t *testing.T) {
	ev := &events{}
	store := &flakyFinish{Store: bbmtest.NewStore(bbmtest.StoreOptions{})}
	w := memWorker(t, store, ev.observer(), 10)
	// The first job's outcome is not recorded; Run takes the job over
	// once its lease expired.
	require.NoError(t, w.Run(context.Background()))

	ev.mu.Lock()
	defer ev.mu.Unlock()
	require.Len(t, ev.finished, len(ev.started), "every JobStart has its JobEnd")
	require.NotNil(t, ev.finished[0].Err, "the unrecorded outcome is reported as an error")
	var keys int64
	for _, e := range ev.finished {
		require.Equal(t, keyInt(e.End)-keyInt(e.Start)+1, e.Rows)
		if e.Err == nil {
			keys += e.Rows
		}
	}
	require.Equal(t, int64(10), keys, "successful jobs cover the key range once")
	require.Len(t, ev.done, 1)
	require.Equal(t, bbm.StatusFinished, ev.done[0].Status)
}

func TestMultiObserver(t *testing.T) {
	a, b := &events{}, &events{}
	require.IsType(t, bbm.ObserverFuncs{}, bbm.MultiObserver(nil, a.observer()), "one observer is returned as is")
	w := memWorker(t, bbmtest.NewStore(bbmtest.StoreOptions{}), bbm.MultiObserver(a.observer(), nil, b.observer()), 10)
	require.NoError(t, w.Run(context.Background()))
	for _, e := range []*events{a, b} {
		require.Len(t, e.started, 3)
		require.Len(t, e.finished, 3)
		require.Len(t, e.done, 1)
	}
	// An empty MultiObserver is a valid no-op.
	o := bbm.MultiObserver()
	ctx := o.JobStart(context.Background(), bbm.JobStartEvent{})
	o.JobEnd(ctx, bbm.JobEvent{})
	o.Throttled(context.Background(), bbm.ThrottleEvent{})
	o.MigrationEnded(context.Background(), &bbm.Migration{})
}

type spanKey struct{}

// TestJobRunsUnderJobStartContext checks that the Work runs under the
// context JobStart returned (a span started there is the parent of the
// Work's), and that JobEnd gets that context back, through a
// MultiObserver of two that each mark it.
func TestJobRunsUnderJobStartContext(t *testing.T) {
	var mu sync.Mutex
	var log []string
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, s)
	}
	tracer := func(name string) bbm.Observer {
		return bbm.ObserverFuncs{
			OnJobStart: func(ctx context.Context, e bbm.JobStartEvent) context.Context {
				return context.WithValue(ctx, spanKey{}, fmt.Sprintf("%s:job %d", name, e.JobID))
			},
			OnJobEnd: func(ctx context.Context, e bbm.JobEvent) { note(fmt.Sprintf("end %v", ctx.Value(spanKey{}))) },
		}
	}
	o := fastOptions()
	o.Store = bbmtest.NewStore(bbmtest.StoreOptions{})
	o.Catalog = bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 4})
	o.Observer = bbm.MultiObserver(tracer("a"), tracer("b"))
	o.Logger = slog.New(slog.DiscardHandler)
	w := bbm.NewSyncWorker(nil, o)
	require.NoError(t, w.Register(bbm.WorkFunc("mark", func(ctx context.Context, _ storage.Querier, b bbm.Batch) error {
		note(fmt.Sprintf("work under %v", ctx.Value(spanKey{})))
		return nil
	})))
	_, err := w.Admin().Register(t.Context(), bbm.Definition{Name: "fill", Table: "items", Column: "id", Work: "mark", BatchSize: 4})
	require.NoError(t, err)
	require.NoError(t, w.Run(t.Context()))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, log, 3)
	require.Regexp(t, `^work under b:job \d+$`, log[0], "the Work runs under the last JobStart's context")
	id := strings.TrimPrefix(log[0], "work under b:")
	require.Equal(t, []string{"end b:" + id, "end a:" + id}, log[1:], "JobEnds in reverse, each with its own context")
}
