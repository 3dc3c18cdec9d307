package enqueuer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/internal/syncbuf"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// logBuffer collects JSON log lines; safe for concurrent use.
type logBuffer struct{ syncbuf.Buffer }

// lines returns the decoded log lines whose message is msg.
func (b *logBuffer) lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// env is an enqueuer on fakes, or on a given store.
type env struct {
	store  enqueuer.Store
	reg    *enqueuertest.Registry
	locker *leasetest.Locker
	logs   *logBuffer
}

func newEnv(t testing.TB, store enqueuer.Store, regOpts enqueuertest.RegistryOptions) *env {
	t.Helper()
	if store == nil {
		store = enqueuertest.NewStore(enqueuertest.StoreOptions{})
	}
	return &env{
		store:  store,
		reg:    enqueuertest.NewRegistry(regOpts),
		locker: leasetest.NewLocker(leasetest.Options{}),
		logs:   &logBuffer{},
	}
}

// enqueuer builds an Enqueuer on the env; cfg's zero fields are filled in.
func (e *env) enqueuer(t testing.TB, cfg enqueuer.Config) *enqueuer.Enqueuer {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = e.store
	}
	if cfg.Registry == nil {
		cfg.Registry = e.reg
	}
	if cfg.Locker == nil {
		cfg.Locker = e.locker
	}
	if cfg.Logger == nil {
		cfg.Logger = e.logs.logger()
	}
	enq, err := enqueuer.New(cfg)
	require.NoError(t, err)
	return enq
}

func capacity(n int) func(context.Context) int {
	return func(context.Context) int { return n }
}

// addNew adds n repositories in StateDefault named prefix-0, prefix-1, …,
// created a minute apart from epoch on.
func addNew(t testing.TB, s enqueuer.Store, prefix string, n int) []enqueuer.Repository {
	t.Helper()
	out := make([]enqueuer.Repository, n)
	for i := range n {
		r, err := s.Add(context.Background(), enqueuer.NewRepository{
			Path: fmt.Sprintf("%s-%d", prefix, i), TagCount: 10, CreatedAt: epoch.Add(time.Duration(i) * time.Minute)})
		require.NoError(t, err)
		out[i] = r
	}
	return out
}

// addAborted adds n repositories that were started and aborted, at epoch.
func addAborted(t testing.TB, s enqueuer.Store, prefix string, n, retries int) []enqueuer.Repository {
	t.Helper()
	ctx := context.Background()
	out := addNew(t, s, prefix, n)
	for i, r := range out {
		r = transition(t, s, r, enqueuer.EventStartPreImport, "")
		r = transition(t, s, r, enqueuer.EventAbort, "pre_import_failed")
		for range retries {
			r = transition(t, s, r, enqueuer.EventRetry, "")
			r = transition(t, s, r, enqueuer.EventAbort, "pre_import_failed")
		}
		out[i] = r
	}
	_ = ctx
	return out
}

// transition applies ev at epoch plus a second, so that the change is
// older than any run.
func transition(t testing.TB, s enqueuer.Store, r enqueuer.Repository, ev enqueuer.Event, reason string) enqueuer.Repository {
	t.Helper()
	out, err := s.Transition(context.Background(), enqueuer.Change{ID: r.ID, From: r.State, Event: ev, Reason: reason, At: epoch.Add(time.Second)})
	require.NoError(t, err)
	return out
}

func get(t testing.TB, s enqueuer.Store, path string) enqueuer.Repository {
	t.Helper()
	r, err := s.Get(context.Background(), path)
	require.NoError(t, err)
	return r
}
