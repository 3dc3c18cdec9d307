package enqueuer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
)

// seen keeps what an Observer was told; safe for concurrent use.
type seen struct {
	mu         sync.Mutex
	runs       []enqueuer.RunEvent
	starts     []enqueuer.StartEvent
	skips      []enqueuer.SkipEvent
	aborts     []enqueuer.AbortEvent
	capacities []enqueuer.CapacityEvent
	notified   []enqueuer.NotifyEvent
}

func (s *seen) observer() enqueuer.Observer {
	add := func(f func()) {
		s.mu.Lock()
		defer s.mu.Unlock()
		f()
	}
	return enqueuer.ObserverFuncs{
		OnRunEnd:         func(_ context.Context, e enqueuer.RunEvent) { add(func() { s.runs = append(s.runs, e) }) },
		OnStartImportEnd: func(_ context.Context, e enqueuer.StartEvent) { add(func() { s.starts = append(s.starts, e) }) },
		OnSkipped:        func(_ context.Context, e enqueuer.SkipEvent) { add(func() { s.skips = append(s.skips, e) }) },
		OnAborted:        func(_ context.Context, e enqueuer.AbortEvent) { add(func() { s.aborts = append(s.aborts, e) }) },
		OnCapacityChecked: func(_ context.Context, e enqueuer.CapacityEvent) {
			add(func() { s.capacities = append(s.capacities, e) })
		},
		OnNotifyEnd: func(_ context.Context, e enqueuer.NotifyEvent) { add(func() { s.notified = append(s.notified, e) }) },
	}
}

func (s *seen) results() map[enqueuer.StartResult]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[enqueuer.StartResult]int{}
	for _, e := range s.starts {
		out[e.Result]++
	}
	return out
}

func TestObserverSeesRunStartsSkipsAndAborts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{MaxImports: 3})
	addNew(t, e.store, "g/r", 6)
	_, err := e.store.Add(ctx, enqueuer.NewRepository{Path: "g/big", TagCount: 1000, CreatedAt: epoch})
	require.NoError(t, err)
	e.reg.Fail(enqueuertest.OpPreImport, "g/r-0", &enqueuer.RegistryError{Op: "pre-import", Path: "g/r-0", StatusCode: 404, Err: enqueuer.ErrRegistryNotFound})
	e.reg.SetStatus("g/r-1", enqueuer.StatusNative)
	s := &seen{}
	enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(10), MaxTagsCount: 100, Strategy: enqueuer.Loop{},
		Observer: enqueuer.MultiObserver(nil, s.observer())})
	rep, err := enq.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, enqueuer.StopTooManyImports, rep.Stopped)

	require.Equal(t, map[enqueuer.StartResult]int{
		enqueuer.StartNotFound: 1, enqueuer.StartNative: 1, enqueuer.StartAccepted: 3, enqueuer.StartTooManyImports: 1,
	}, s.results())
	s.mu.Lock()
	require.Len(t, s.runs, 1)
	require.Equal(t, enqueuer.StopTooManyImports, s.runs[0].Report.Stopped)
	require.Len(t, s.runs[0].Report.Started, 3)
	require.Positive(t, s.runs[0].Report.Duration)
	require.Len(t, s.skips, 3)
	require.ElementsMatch(t, []string{enqueuer.SkipTooManyTags, enqueuer.SkipNative, enqueuer.SkipNotFound},
		[]string{s.skips[0].Reason, s.skips[1].Reason, s.skips[2].Reason})
	require.Empty(t, s.aborts, "a 404 skips; nothing was refused")
	require.NotEmpty(t, s.capacities)
	require.Equal(t, enqueuer.CapacityEvent{InProgress: 0, Capacity: 10}, s.capacities[0])
	for _, st := range s.starts {
		if st.Result == enqueuer.StartAccepted {
			require.NoError(t, st.Err)
		} else {
			require.Error(t, st.Err)
		}
	}
	s.mu.Unlock()

	// A run that finds the lease held is reported too.
	l, err := e.locker.Acquire(ctx, enqueuer.DefaultLeaseKey, time.Minute)
	require.NoError(t, err)
	defer l.Release(ctx)
	_, err = enq.Run(ctx)
	require.Error(t, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(t, s.runs, 2)
	require.Equal(t, enqueuer.StopLeaseHeld, s.runs[1].Report.Stopped)
	require.ErrorIs(t, s.runs[1].Err, err)
}

func TestObserverSeesNotifications(t *testing.T) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	r := addNew(t, store, "g/r", 1)[0]
	transition(t, store, r, enqueuer.EventStartPreImport, "")
	s := &seen{}
	h, err := enqueuer.NewHandler(enqueuer.HandlerOptions{Store: store, Secret: secret, Logger: quiet, Observer: s.observer()})
	require.NoError(t, err)
	n := &notifier{srv: httptest.NewServer(h)}
	defer n.srv.Close()

	n.notify(t, "g/r-0", enqueuer.NotifyPreImportComplete)
	n.notify(t, "g/r-0", enqueuer.NotifyPreImportComplete)
	n.notify(t, "g/r-0", enqueuer.NotifyImportComplete)
	n.notify(t, "g/nope", enqueuer.NotifyImportComplete)
	n.notify(t, "g/r-0", "bogus")
	n.send(t, http.MethodPut, statusURL("g/r-0"), "Bearer wrong", `{"status":"import_complete"}`)
	n.send(t, http.MethodGet, statusURL("g/r-0"), "", ``)

	s.mu.Lock()
	defer s.mu.Unlock()
	var got []enqueuer.NotificationOutcome
	var codes []int
	for _, e := range s.notified {
		got = append(got, e.Outcome)
		codes = append(codes, e.Code)
		require.Positive(t, e.Duration)
	}
	require.Equal(t, []enqueuer.NotificationOutcome{enqueuer.NotificationApplied, enqueuer.NotificationDuplicate,
		enqueuer.NotificationWrongState, enqueuer.NotificationNotFound, enqueuer.NotificationBadRequest,
		enqueuer.NotificationUnauthorized, enqueuer.NotificationBadRequest}, got)
	require.Equal(t, []int{200, 200, 400, 404, 400, 403, 405}, codes)
	require.Equal(t, enqueuer.NotifyPreImportComplete, s.notified[0].Status)
	require.Equal(t, "g/r-0", s.notified[0].Path)
	require.Equal(t, "bogus", s.notified[4].Status)
}

type spanKey struct{}

// spanOf is the "span" a test observer put in ctx.
func spanOf(ctx context.Context) string {
	s, _ := ctx.Value(spanKey{}).(string)
	return s
}

// markingRegistry records the span of the context each start runs under.
type markingRegistry struct {
	enqueuer.RegistryClient
	mu    sync.Mutex
	under []string
}

func (m *markingRegistry) StartPreImport(ctx context.Context, path string) error {
	m.mu.Lock()
	m.under = append(m.under, spanOf(ctx))
	m.mu.Unlock()
	return m.RegistryClient.StartPreImport(ctx, path)
}

// TestObserverContextsNest checks that a run and its registry starts run
// under the contexts RunStart and StartImportStart returned, and that
// each End gets its own Start's context back.
func TestObserverContextsNest(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, nil, enqueuertest.RegistryOptions{})
	addNew(t, e.store, "g/r", 2)
	reg := &markingRegistry{RegistryClient: e.reg}
	var mu sync.Mutex
	var ends []string
	end := func(ctx context.Context) {
		mu.Lock()
		defer mu.Unlock()
		ends = append(ends, spanOf(ctx))
	}
	obs := enqueuer.ObserverFuncs{
		OnRunStart: func(ctx context.Context, _ enqueuer.RunStartEvent) context.Context {
			return context.WithValue(ctx, spanKey{}, "run")
		},
		OnRunEnd: func(ctx context.Context, _ enqueuer.RunEvent) { end(ctx) },
		OnStartImportStart: func(ctx context.Context, e enqueuer.StartImportStartEvent) context.Context {
			return context.WithValue(ctx, spanKey{}, spanOf(ctx)+"/start "+e.Repository.Path)
		},
		OnStartImportEnd: func(ctx context.Context, _ enqueuer.StartEvent) { end(ctx) },
	}
	enq := e.enqueuer(t, enqueuer.Config{Capacity: capacity(10), Strategy: enqueuer.Loop{}, Registry: reg,
		Observer: enqueuer.MultiObserver(obs, enqueuer.ObserverFuncs{})})
	_, err := enq.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"run/start g/r-0", "run/start g/r-1"}, reg.under)
	require.Equal(t, []string{"run/start g/r-0", "run/start g/r-1", "run"}, ends)
}
