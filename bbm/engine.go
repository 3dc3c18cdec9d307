package bbm

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/storage"

	"github.com/ferryhq/ferry/internal/wait"
)

// engine is what SyncWorker and Worker share: the registered Work, the
// options, and the FindJob and ExecuteJob steps.
type engine struct {
	db       storage.Beginner
	store    Store
	catalog  Catalog
	handler  Handler
	log      *slog.Logger
	obs      Observer
	throttle Throttler
	o        Options
	works    workSet
	sizes    *sizer
	finished atomic.Int64 // migrations finished by this worker in the current run
	err      error        // a setup problem, reported by Run and Admin
}

func newEngine(db storage.Beginner, o Options, component string) *engine {
	o = o.withDefaults()
	e := &engine{db: db, o: o, store: o.Store, catalog: o.Catalog, handler: o.Handler,
		obs: o.Observer, throttle: o.Throttler, sizes: newSizer(o.Adaptive),
		log: o.Logger.With("component", component)}
	if e.store == nil {
		if db == nil {
			e.err = fmt.Errorf("%w: pass a database or Options.Store", ErrNoDatabase)
		} else {
			e.store = NewPostgresStore(db, PostgresStoreOptions{})
		}
	}
	if e.catalog == nil {
		if db == nil {
			e.err = fmt.Errorf("%w: pass a database or Options.Catalog", ErrNoDatabase)
		} else {
			e.catalog = NewPostgresCatalog(db)
		}
	}
	if e.obs == nil {
		e.obs = ObserverFuncs{}
	}
	return e
}

// detached is a context for recording an outcome: it outlives the
// cancellation of ctx (the work is done, its result must be kept) but not
// forever.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}

func (e *engine) release(ctx context.Context, l Lock) {
	rctx, cancel := detached(ctx)
	defer cancel()
	if err := l.Release(rctx); err != nil {
		e.log.WarnContext(ctx, "releasing the worker lock", "error", err)
	}
}

// awaitThrottle returns once the Throttler lets jobs run.
func (e *engine) awaitThrottle(ctx context.Context) error {
	if e.throttle == nil {
		return nil
	}
	for n := 0; ; n++ {
		d, err := e.throttle.Throttle(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			d = Decision{Hold: true, Reason: err.Error()}
		}
		if !d.Hold {
			return nil
		}
		pause := d.RetryAfter
		if pause <= 0 {
			pause = backoff(e.o.Interval, e.o.MaxBackoff, n)
		}
		e.log.InfoContext(ctx, "throttled: holding jobs", "reason", d.Reason, "wait", pause)
		e.obs.Throttled(ctx, ThrottleEvent{Reason: d.Reason, Wait: pause})
		if err := wait.Sleep(ctx, pause); err != nil {
			return err
		}
	}
}
