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
	ctx      context.Context
	pass     Pass
	sem      *semaphore.Weighted // bounds storage operations in flight
	progress *tracker

	copies   singleflight.Group
	copied   sync.Map // digest.Digest -> Result
	stats    singleflight.Group
	statSize sync.Map // digest.Digest -> int64
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
// work.
func (st *runState) transfer(tr Transferer, d digest.Digest) (res Result, shared bool, err error) {
	if v, ok := st.copied.Load(d); ok {
		return v.(Result), true, nil
	}
	leader := false
	v, err, _ := st.copies.Do(string(d), func() (any, error) {
		if v, ok := st.copied.Load(d); ok {
			return v, nil
		}
		leader = true
		var res Result
		err := st.limit(st.ctx, func() error {
			var err error
			res, err = tr.Transfer(st.ctx, d)
			return err
		})
		if err == nil {
			st.copied.Store(d, res)
		}
		return res, err
	})
	res, _ = v.(Result)
	return res, !leader, err
}

// blobSize returns the size of blob d in the source, asking the storage
// once per run.
func (st *runState) blobSize(r *LayoutReader, d digest.Digest) (int64, error) {
	if v, ok := st.statSize.Load(d); ok {
		return v.(int64), nil
	}
	v, err, _ := st.stats.Do(string(d), func() (any, error) {
		var size int64
		err := st.limit(st.ctx, func() error {
			var err error
			size, err = r.BlobSize(st.ctx, d)
			return err
		})
		if err == nil {
			st.statSize.Store(d, size)
		}
		return size, err
	})
	if err != nil {
		return 0, err
	}
	return v.(int64), nil
}
