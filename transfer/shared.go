package transfer

import (
	"context"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
)

// runState is shared by all repositories of one import run.
type runState struct {
	// ctx is the run's context. Shared work (a blob transfer several
	// repositories wait for) runs under it rather than under the context
	// of whichever repository asked first, so one repository failing does
	// not cancel work another still needs.
	ctx context.Context
	// caller is the context the pass was called with, ctx's parent: see
	// apply.
	caller   context.Context
	pass     Pass
	sem      *semaphore.Weighted // bounds storage operations in flight
	progress *tracker

	copies   singleflight.Group
	copied   *boundedCache[digest.Digest, Result]
	stats    singleflight.Group
	statSize *boundedCache[digest.Digest, int64]
}

// limit runs fn while holding one slot of the run's concurrency limit.
func (st *runState) limit(ctx context.Context, fn func() error) error {
	if err := st.sem.Acquire(ctx, 1); err != nil {
		return err
	}
	defer st.sem.Release(1)
	return fn()
}

// transfer copies d once per run however many repositories reference it.
// shared is true when another repository already did (or is doing) the
// work. The copy runs with the values of asker's context (so the span of
// the repository that asked first is its parent) but ends only with the
// run's.
func (st *runState) transfer(asker context.Context, tr Transferer, d digest.Digest) (res Result, shared bool, err error) {
	if v, ok := st.copied.get(d); ok {
		return v, true, nil
	}
	leader := false
	v, err, _ := st.copies.Do(string(d), func() (any, error) {
		if v, ok := st.copied.get(d); ok {
			return v, nil
		}
		leader = true
		ctx, cancel := st.detach(asker)
		defer cancel()
		var res Result
		err := st.limit(ctx, func() error {
			var err error
			res, err = tr.Transfer(ctx, d)
			return err
		})
		if err == nil {
			st.copied.put(d, res)
		}
		return res, err
	})
	res, _ = v.(Result)
	return res, !leader, err
}

// detach returns a context with asker's values (a trace span, say) that
// ends when, and only when, the run's context does, with its cause.
func (st *runState) detach(asker context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(asker))
	stop := context.AfterFunc(st.ctx, func() { cancel(context.Cause(st.ctx)) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// blobSize returns the size of blob d in the source, asking the storage
// once per run.
func (st *runState) blobSize(r *LayoutReader, d digest.Digest) (int64, error) {
	if v, ok := st.statSize.get(d); ok {
		return v, nil
	}
	v, err, _ := st.stats.Do(string(d), func() (any, error) {
		var size int64
		err := st.limit(st.ctx, func() error {
			var err error
			size, err = r.BlobSize(st.ctx, d)
			return err
		})
		if err == nil {
			st.statSize.put(d, size)
		}
		return size, err
	})
	if err != nil {
		return 0, err
	}
	return v.(int64), nil
}

// boundedCache remembers at most about 2*limit entries: when the current
// generation is full it becomes the old one and the oldest is dropped. A
// blob forgotten this way is at worst checked again (its copy is skipped
// as already present), so an import's memory does not grow with the
// number of blobs.
type boundedCache[K comparable, V any] struct {
	mu       sync.Mutex
	limit    int
	cur, old map[K]V
}

func newBoundedCache[K comparable, V any](limit int) *boundedCache[K, V] {
	return &boundedCache[K, V]{limit: max(limit, 1), cur: map[K]V{}}
}

func (c *boundedCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	return v, ok
}

func (c *boundedCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.limit {
		c.old, c.cur = c.cur, make(map[K]V, c.limit/4)
	}
	c.cur[k] = v
}
