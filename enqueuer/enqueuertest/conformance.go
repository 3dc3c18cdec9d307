package enqueuertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
)

// TestStore runs the conformance suite every enqueuer.Store must pass.
// newStore returns an empty store for each subtest.
func TestStore(t *testing.T, newStore func(t *testing.T) enqueuer.Store) {
	t.Run("AddGet", func(t *testing.T) { testAddGet(t, newStore(t)) })
	t.Run("AddBadInput", func(t *testing.T) { testAddBadInput(t, newStore(t)) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, newStore(t)) })
	t.Run("InvalidTransition", func(t *testing.T) { testInvalidTransition(t, newStore(t)) })
	t.Run("CompareAndSet", func(t *testing.T) { testCompareAndSet(t, newStore(t)) })
	t.Run("RacingStartsOneWins", func(t *testing.T) { testRacingStarts(t, newStore(t)) })
	t.Run("NoLostUpdate", func(t *testing.T) { testNoLostUpdate(t, newStore(t)) })
	t.Run("Revert", func(t *testing.T) { testRevert(t, newStore(t)) })
	t.Run("CountInProgress", func(t *testing.T) { testCountInProgress(t, newStore(t)) })
	t.Run("ListOrder", func(t *testing.T) { testListOrder(t, newStore(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, newStore(t)) })
}

var base = time.Date(2022, 5, 1, 12, 0, 0, 0, time.UTC)

// must turns a (value, error) result into the value, failing t on error:
// must(s.Get(ctx, path))(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %v", err, target)
	}
}

func add(t *testing.T, s enqueuer.Store, path string, created time.Time) enqueuer.Repository {
	t.Helper()
	return must(s.Add(context.Background(), enqueuer.NewRepository{Path: path, TagCount: 3, CreatedAt: created}))(t)
}

func move(t *testing.T, s enqueuer.Store, r enqueuer.Repository, ev enqueuer.Event, reason string, at time.Time) enqueuer.Repository {
	t.Helper()
	return must(s.Transition(context.Background(), enqueuer.Change{ID: r.ID, From: r.State, Event: ev, Reason: reason, At: at}))(t)
}

func testAddGet(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	r := add(t, s, "group/project/image", base)
	if r.ID == 0 || r.Path != "group/project/image" || r.State != enqueuer.StateDefault || r.TagCount != 3 ||
		r.Version != 1 || !r.CreatedAt.Equal(base) || !r.StateChangedAt.Equal(base) {
		t.Fatalf("added %+v", r)
	}
	got := must(s.Get(ctx, "group/project/image"))(t)
	if got != r {
		t.Fatalf("Get = %+v, want %+v", got, r)
	}
	_, err := s.Add(ctx, enqueuer.NewRepository{Path: "group/project/image"})
	wantErr(t, err, enqueuer.ErrExists)
	_, err = s.Get(ctx, "group/other")
	wantErr(t, err, enqueuer.ErrNotFound)
	other := must(s.Add(ctx, enqueuer.NewRepository{Path: "group/other"}))(t)
	if other.ID == r.ID || other.CreatedAt.IsZero() {
		t.Fatalf("second repository %+v", other)
	}
}

func testAddBadInput(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	for _, p := range []string{"", "a//b", "a/../b", "../a", "a/", "/a", "A/b", "a/b c", string(make([]byte, 300))} {
		_, err := s.Add(ctx, enqueuer.NewRepository{Path: p})
		wantErr(t, err, enqueuer.ErrInvalidPath)
	}
	if _, err := s.Add(ctx, enqueuer.NewRepository{Path: "a/b", TagCount: -1}); err == nil {
		t.Fatal("negative tag count accepted")
	}
	if _, err := s.Get(ctx, "a/b"); !errors.Is(err, enqueuer.ErrNotFound) {
		t.Fatalf("a rejected repository was stored: %v", err)
	}
}

func testLifecycle(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	r := add(t, s, "a/b", base)
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	r = move(t, s, r, enqueuer.EventStartPreImport, "", at(1))
	r = move(t, s, r, enqueuer.EventAbort, "registry said no", at(2))
	if r.State != enqueuer.StateImportAborted || r.AbortReason != "registry said no" || !r.AbortedAt.Equal(at(2)) {
		t.Fatalf("after abort %+v", r)
	}
	r = move(t, s, r, enqueuer.EventRetry, "", at(3))
	if r.State != enqueuer.StatePreImporting || r.RetryCount != 1 || !r.PreImportingAt.Equal(at(3)) || r.AbortReason != "registry said no" {
		t.Fatalf("after retry %+v", r)
	}
	r = move(t, s, r, enqueuer.EventFinishPreImport, "", at(4))
	r = move(t, s, r, enqueuer.EventStartImport, "", at(5))
	r = move(t, s, r, enqueuer.EventFinishImport, "", at(6))
	want := map[string][2]time.Time{
		"PreImportingAt":  {r.PreImportingAt, at(3)},
		"PreImportDoneAt": {r.PreImportDoneAt, at(4)},
		"ImportingAt":     {r.ImportingAt, at(5)},
		"ImportDoneAt":    {r.ImportDoneAt, at(6)},
		"AbortedAt":       {r.AbortedAt, at(2)},
		"StateChangedAt":  {r.StateChangedAt, at(6)},
		"UpdatedAt":       {r.UpdatedAt, at(6)},
		"CreatedAt":       {r.CreatedAt, base},
	}
	for name, v := range want {
		if !v[0].Equal(v[1]) {
			t.Errorf("%s = %v, want %v", name, v[0], v[1])
		}
	}
	if r.State != enqueuer.StateImportDone || r.Version != 7 || !r.SkippedAt.IsZero() {
		t.Fatalf("done %+v", r)
	}
	if got := must(s.Get(ctx, "a/b"))(t); got != r {
		t.Fatalf("Get = %+v, want %+v", got, r)
	}

	sk := add(t, s, "a/skipped", base)
	sk = move(t, s, sk, enqueuer.EventSkip, "too many tags", at(1))
	if sk.State != enqueuer.StateImportSkipped || sk.SkipReason != "too many tags" || !sk.SkippedAt.Equal(at(1)) {
		t.Fatalf("skipped %+v", sk)
	}
}

func testInvalidTransition(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	r := add(t, s, "a/b", base)
	_, err := s.Transition(ctx, enqueuer.Change{ID: r.ID, From: enqueuer.StateDefault, Event: enqueuer.EventFinishImport})
	wantErr(t, err, enqueuer.ErrInvalidTransition)
	var te *enqueuer.TransitionError
	if !errors.As(err, &te) || te.From != enqueuer.StateDefault || te.To != enqueuer.StateImportDone {
		t.Fatalf("error %v does not name both states", err)
	}
	_, err = s.Transition(ctx, enqueuer.Change{ID: r.ID, From: enqueuer.StateDefault, Event: "bogus"})
	wantErr(t, err, enqueuer.ErrInvalidTransition)
	if got := must(s.Get(ctx, "a/b"))(t); got != r {
		t.Fatalf("an invalid transition changed the repository: %+v", got)
	}
}

func testCompareAndSet(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	r := add(t, s, "a/b", base)
	started := move(t, s, r, enqueuer.EventStartPreImport, "", base.Add(time.Second))
	// A second caller that read the old state loses and changes nothing.
	_, err := s.Transition(ctx, enqueuer.Change{ID: r.ID, From: enqueuer.StateDefault, Event: enqueuer.EventStartPreImport})
	wantErr(t, err, enqueuer.ErrStateChanged)
	_, err = s.Transition(ctx, enqueuer.Change{ID: r.ID, From: enqueuer.StateDefault, Event: enqueuer.EventSkip, Reason: "x"})
	wantErr(t, err, enqueuer.ErrStateChanged)
	if got := must(s.Get(ctx, "a/b"))(t); got != started {
		t.Fatalf("lost compare-and-set changed the repository: %+v", got)
	}
	_, err = s.Transition(ctx, enqueuer.Change{ID: 1 << 40, From: enqueuer.StateDefault, Event: enqueuer.EventStartPreImport})
	wantErr(t, err, enqueuer.ErrNotFound)
}

func testRacingStarts(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	r := add(t, s, "a/b", base)
	var wins, losses atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := s.Transition(ctx, enqueuer.Change{ID: r.ID, From: enqueuer.StateDefault, Event: enqueuer.EventStartPreImport})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, enqueuer.ErrStateChanged):
				losses.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || losses.Load() != 19 {
		t.Fatalf("wins=%d losses=%d, want 1 and 19", wins.Load(), losses.Load())
	}
	if got := must(s.Get(ctx, "a/b"))(t); got.Version != 2 || got.State != enqueuer.StatePreImporting {
		t.Fatalf("after the race %+v", got)
	}
}

// testNoLostUpdate has workers race to retry and abort one repository; each
// won retry increments RetryCount, so a lost update would show as a count
// lower than the number of wins.
func testNoLostUpdate(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	r := add(t, s, "a/b", base)
	r = move(t, s, r, enqueuer.EventStartPreImport, "", time.Time{})
	move(t, s, r, enqueuer.EventAbort, "first", time.Time{})
	var wins atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 15 {
				cur, err := s.Get(ctx, "a/b")
				if err != nil {
					t.Error(err)
					return
				}
				if cur.State != enqueuer.StateImportAborted {
					continue
				}
				next, err := s.Transition(ctx, enqueuer.Change{ID: cur.ID, From: cur.State, Event: enqueuer.EventRetry})
				if errors.Is(err, enqueuer.ErrStateChanged) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				wins.Add(1)
				if _, err := s.Transition(ctx, enqueuer.Change{ID: next.ID, From: next.State, Event: enqueuer.EventAbort,
					Reason: fmt.Sprintf("worker %d round %d", w, i)}); err != nil {
					t.Errorf("the winner's abort failed: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := must(s.Get(ctx, "a/b"))(t)
	if int64(got.RetryCount) != wins.Load() || wins.Load() == 0 {
		t.Fatalf("retry count %d, wins %d: an update was lost", got.RetryCount, wins.Load())
	}
	if got.Version != 3+2*wins.Load() {
		t.Fatalf("version %d after %d rounds", got.Version, wins.Load())
	}
}

func testRevert(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	r := add(t, s, "a/b", base)
	r = move(t, s, r, enqueuer.EventStartPreImport, "", base.Add(time.Minute))
	aborted := move(t, s, r, enqueuer.EventAbort, "boom", base.Add(2*time.Minute))
	retried := move(t, s, aborted, enqueuer.EventRetry, "", base.Add(3*time.Minute))
	back := must(s.Revert(ctx, retried, aborted))(t)
	if back.State != enqueuer.StateImportAborted || back.RetryCount != 0 || back.AbortReason != "boom" ||
		!back.PreImportingAt.Equal(base.Add(time.Minute)) || !back.StateChangedAt.Equal(base.Add(2*time.Minute)) ||
		back.Version != retried.Version+1 {
		t.Fatalf("reverted %+v", back)
	}
	if got := must(s.Get(ctx, "a/b"))(t); got != back {
		t.Fatalf("Get = %+v, want %+v", got, back)
	}
	// A second revert of the same change, or one after another change, is refused.
	_, err := s.Revert(ctx, retried, aborted)
	wantErr(t, err, enqueuer.ErrStateChanged)
	// Back in default: a new repository's claim reverts to its creation state.
	n := add(t, s, "a/new", base)
	claimed := move(t, s, n, enqueuer.EventStartPreImport, "", base.Add(time.Minute))
	restored := must(s.Revert(ctx, claimed, n))(t)
	if restored.State != enqueuer.StateDefault || !restored.PreImportingAt.IsZero() || !restored.StateChangedAt.Equal(base) {
		t.Fatalf("restored %+v", restored)
	}
	_, err = s.Revert(ctx, enqueuer.Repository{ID: 1 << 40, Version: 1, State: enqueuer.StateDefault},
		enqueuer.Repository{ID: 1 << 40, State: enqueuer.StateDefault})
	wantErr(t, err, enqueuer.ErrNotFound)
}

func testCountInProgress(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	if n := must(s.CountInProgress(ctx))(t); n != 0 {
		t.Fatalf("empty store counts %d", n)
	}
	steps := []enqueuer.Event{enqueuer.EventStartPreImport, enqueuer.EventFinishPreImport, enqueuer.EventStartImport, enqueuer.EventFinishImport}
	// Repository i goes through the first i steps: default, pre_importing,
	// pre_import_done, importing, import_done.
	for i := range len(steps) + 1 {
		r := add(t, s, fmt.Sprintf("a/r%d", i), base)
		for _, ev := range steps[:i] {
			r = move(t, s, r, ev, "", time.Time{})
		}
	}
	ab := move(t, s, add(t, s, "a/aborted", base), enqueuer.EventStartPreImport, "", time.Time{})
	move(t, s, ab, enqueuer.EventAbort, "x", time.Time{})
	if n := must(s.CountInProgress(ctx))(t); n != 3 {
		t.Fatalf("in progress = %d, want 3", n)
	}
}

func testListOrder(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	// Created out of order, two with the same time: order is time, then ID.
	c := add(t, s, "a/c", base.Add(2*time.Hour))
	a := add(t, s, "a/a", base)
	b := add(t, s, "a/b", base)
	d := add(t, s, "a/d", base.Add(time.Hour))
	got := must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Limit: 10}))(t)
	wantPaths(t, got, a.Path, b.Path, d.Path, c.Path)
	got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Limit: 2}))(t)
	wantPaths(t, got, a.Path, b.Path)
	got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, ChangedBefore: base.Add(time.Hour), Limit: 10}))(t)
	wantPaths(t, got, a.Path, b.Path)

	// Other states order by the time the state was entered.
	move(t, s, d, enqueuer.EventStartPreImport, "", base.Add(3*time.Hour))
	move(t, s, a, enqueuer.EventStartPreImport, "", base.Add(4*time.Hour))
	got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StatePreImporting, Limit: 10}))(t)
	wantPaths(t, got, d.Path, a.Path)
	got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StatePreImporting, ChangedBefore: base.Add(4 * time.Hour), Limit: 10}))(t)
	wantPaths(t, got, d.Path)
	got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateImportDone, Limit: 10}))(t)
	wantPaths(t, got)

	if _, err := s.List(ctx, enqueuer.ListOptions{State: "bogus", Limit: 1}); err == nil {
		t.Fatal("unknown state accepted")
	}
	if _, err := s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault}); err == nil {
		t.Fatal("zero limit accepted")
	}
}

func wantPaths(t *testing.T, got []enqueuer.Repository, want ...string) {
	t.Helper()
	paths := make([]string, len(got))
	for i, r := range got {
		paths[i] = r.Path
	}
	if fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
}

func testCanceled(t *testing.T, s enqueuer.Store) {
	r := add(t, s, "a/b", base)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "a/b"); err == nil {
		t.Error("Get with a canceled context succeeded")
	}
	if _, err := s.Transition(ctx, enqueuer.Change{ID: r.ID, From: r.State, Event: enqueuer.EventStartPreImport}); err == nil {
		t.Error("Transition with a canceled context succeeded")
	}
	if got := must(s.Get(context.Background(), "a/b"))(t); got != r {
		t.Fatalf("a canceled transition changed the repository: %+v", got)
	}
}
