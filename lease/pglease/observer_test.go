package pglease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/lease"
	"github.com/ferryhq/ferry/lease/pglease"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
)

// FenceWith reports every check to the Observer: passed, fenced, failed.
func TestFenceWithReportsChecks(t *testing.T) {
	ctx := t.Context()
	pool := storagetest.Pool(t)
	var events []lease.FenceEvent
	opts := pglease.FenceOptions{Observer: lease.ObserverFuncs{OnFenceChecked: func(_ context.Context, e lease.FenceEvent) {
		events = append(events, e)
	}}}
	l, err := pglease.New(storage.FromPool(pool), pglease.Options{}).Acquire(ctx, "fence-observed", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	check := func(token int64) error {
		return storage.InTx(ctx, pool, func(tx pgx.Tx) error {
			return pglease.FenceWith(ctx, tx, l.Key(), token, opts)
		})
	}
	if err := check(l.Token()); err != nil {
		t.Fatal(err)
	}
	if err := check(l.Token() + 1); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("a token the key never had: %v", err)
	}
	if len(events) != 2 || events[0].Err != nil || events[0].Token != l.Token() || events[0].Key != l.Key() ||
		!errors.Is(events[1].Err, lease.ErrFenced) {
		t.Fatalf("fence events %+v", events)
	}
	// Without an Observer, FenceWith is Fence.
	err = storage.InTx(ctx, pool, func(tx pgx.Tx) error {
		return pglease.FenceWith(ctx, tx, l.Key(), l.Token(), pglease.FenceOptions{})
	})
	if err != nil {
		t.Fatal(err)
	}
}
