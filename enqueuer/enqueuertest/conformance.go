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
	t.Run("ResetCancelResume", func(t *testing.T) { testResetCancelResume(t, newStore(t)) })
	t.Run("Defer", func(t *testing.T) { testDefer(t, newStore(t)) })
	t.Run("Reconsider", func(t *testing.T) { testReconsider(t, newStore(t)) })
	t.Run("Count", func(t *testing.T) { testCount(t, newStore(t)) })
	t.Run("ListOrdersAndPages", func(t *testing.T) { testListOrdersAndPages(t, newStore(t)) })
	t.Run("ListFilters", func(t *testing.T) { testListFilters(t, newStore(t)) })
	t.Run("LastStarted", func(t *testing.T) { testLastStarted(t, newStore(t)) })
	t.Run("SetPriority", func(t *testing.T) { testSetPriority(t, newStore(t)) })
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
	for _, p := range []int{enqueuer.MaxPriority + 1, enqueuer.MinPriority - 1} {
		_, err := s.Add(ctx, enqueuer.NewRepository{Path: "a/b", Priority: p})
		wantErr(t, err, enqueuer.ErrInvalidPriority)
		_, err = s.SetPriority(ctx, enqueuer.PriorityChange{PathPrefix: "a/", Priority: p})
		wantErr(t, err, enqueuer.ErrInvalidPriority)
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
	for _, o := range []enqueuer.Order{"random", "priority;DROP TABLE x", `priority" DESC, "id`, "path,path", "", "-", "tag_count,", "defer_reason"} {
		if o == "" {
			continue // OrderOldest
		}
		_, err := s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Limit: 1, Order: o})
		wantErr(t, err, enqueuer.ErrInvalidOrder)
	}
	if _, err := s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Limit: 1, Ready: true, Deferred: true}); err == nil {
		t.Fatal("Ready and Deferred together accepted")
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

// testResetCancelResume covers the events of administrators and of
// reconciliation: reset, cancel, resume, and finishing an aborted import.
func testResetCancelResume(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	r := add(t, s, "a/b", base)
	r = move(t, s, r, enqueuer.EventStartPreImport, "", at(1))
	r = move(t, s, r, enqueuer.EventAbort, "boom", at(2))
	r = move(t, s, r, enqueuer.EventRetry, "", at(3))
	r = move(t, s, r, enqueuer.EventSkip, "migration_canceled", at(4))
	if r.State != enqueuer.StateImportSkipped || r.SkipReason != "migration_canceled" || !r.SkippedAt.Equal(at(4)) || r.RetryCount != 1 {
		t.Fatalf("after cancel %+v", r)
	}
	r = move(t, s, r, enqueuer.EventReset, "", at(5))
	if r.State != enqueuer.StateDefault || r.SkipReason != "" || r.RetryCount != 0 || !r.StateChangedAt.Equal(at(5)) ||
		r.AbortReason != "boom" || !r.SkippedAt.Equal(at(4)) {
		t.Fatalf("after reset %+v", r)
	}
	if got := must(s.Get(ctx, "a/b"))(t); got != r {
		t.Fatalf("Get = %+v, want %+v", got, r)
	}

	// An aborted repository goes back to the pass the registry still
	// runs, or on past the one it finished, without a retry.
	for _, tc := range []struct {
		ev   enqueuer.Event
		want enqueuer.State
	}{
		{enqueuer.EventResumePreImport, enqueuer.StatePreImporting},
		{enqueuer.EventResumeImport, enqueuer.StateImporting},
		{enqueuer.EventFinishPreImport, enqueuer.StatePreImportDone},
		{enqueuer.EventFinishImport, enqueuer.StateImportDone},
	} {
		x := add(t, s, "a/"+string(tc.ev), base)
		x = move(t, s, x, enqueuer.EventStartPreImport, "", at(1))
		x = move(t, s, x, enqueuer.EventAbort, "lost", at(2))
		x = move(t, s, x, tc.ev, "", at(3))
		if x.State != tc.want || x.RetryCount != 0 || !x.StateChangedAt.Equal(at(3)) {
			t.Fatalf("%s: %+v", tc.ev, x)
		}
	}
}

func testDefer(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	r := add(t, s, "a/b", base)
	d := must(s.Defer(ctx, enqueuer.Deferral{ID: r.ID, From: enqueuer.StateDefault, Reason: "not_in_plan", Key: "k1", At: base.Add(time.Hour)}))(t)
	if d.State != enqueuer.StateDefault || d.DeferReason != "not_in_plan" || d.DeferKey != "k1" || !d.DeferredAt.Equal(base.Add(time.Hour)) ||
		!d.StateChangedAt.Equal(base) || d.Version != r.Version+1 {
		t.Fatalf("deferred %+v", d)
	}
	if got := must(s.Get(ctx, "a/b"))(t); got != d {
		t.Fatalf("Get = %+v, want %+v", got, d)
	}
	// Deferring again (a later run, the same filter) is allowed.
	d = must(s.Defer(ctx, enqueuer.Deferral{ID: r.ID, From: enqueuer.StateDefault, Reason: "not_in_plan", Key: "k2"}))(t)
	if d.DeferKey != "k2" {
		t.Fatalf("deferred again %+v", d)
	}
	_, err := s.Defer(ctx, enqueuer.Deferral{ID: r.ID, From: enqueuer.StateImportAborted, Reason: "x", Key: "k"})
	wantErr(t, err, enqueuer.ErrStateChanged)
	_, err = s.Defer(ctx, enqueuer.Deferral{ID: r.ID, From: enqueuer.StatePreImporting, Reason: "x", Key: "k"})
	wantErr(t, err, enqueuer.ErrInvalidTransition)
	for _, bad := range []enqueuer.Deferral{{ID: r.ID, From: enqueuer.StateDefault, Key: "k"}, {ID: r.ID, From: enqueuer.StateDefault, Reason: "x"}} {
		if _, err := s.Defer(ctx, bad); err == nil {
			t.Fatalf("deferral %+v accepted", bad)
		}
	}
	_, err = s.Defer(ctx, enqueuer.Deferral{ID: 1 << 40, From: enqueuer.StateDefault, Reason: "x", Key: "k"})
	wantErr(t, err, enqueuer.ErrNotFound)

	// A transition clears the deferral; a revert brings it back.
	claimed := move(t, s, d, enqueuer.EventStartPreImport, "", base.Add(2*time.Hour))
	if claimed.DeferReason != "" || claimed.DeferKey != "" || !claimed.DeferredAt.IsZero() {
		t.Fatalf("a transition kept the deferral: %+v", claimed)
	}
	back := must(s.Revert(ctx, claimed, d))(t)
	if back.DeferReason != "not_in_plan" || back.DeferKey != "k2" || !back.DeferredAt.Equal(d.DeferredAt) {
		t.Fatalf("reverted %+v", back)
	}

	// Aborted repositories are deferred too.
	ab := add(t, s, "a/aborted", base)
	ab = move(t, s, ab, enqueuer.EventStartPreImport, "", time.Time{})
	ab = move(t, s, ab, enqueuer.EventAbort, "x", time.Time{})
	must(s.Defer(ctx, enqueuer.Deferral{ID: ab.ID, From: enqueuer.StateImportAborted, Reason: "frozen", Key: "k2"}))(t)
}

func testReconsider(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	keys := []string{"a", "b", "b", "c", "c", "c"}
	for i, k := range keys {
		r := add(t, s, fmt.Sprintf("a/r%d", i), base)
		must(s.Defer(ctx, enqueuer.Deferral{ID: r.ID, From: r.State, Reason: "filtered", Key: k}))(t)
	}
	add(t, s, "a/free", base)
	if n := must(s.Reconsider(ctx, "b"))(t); n != 4 {
		t.Fatalf("Reconsider(b) cleared %d, want 4 (keys a and c)", n)
	}
	deferred := must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Deferred: true, Limit: 10}))(t)
	wantPaths(t, deferred, "a/r1", "a/r2")
	if n := must(s.Reconsider(ctx, "b"))(t); n != 0 {
		t.Fatalf("second Reconsider(b) cleared %d", n)
	}
	if n := must(s.Reconsider(ctx, ""))(t); n != 2 {
		t.Fatalf(`Reconsider("") cleared %d, want 2`, n)
	}
	for _, r := range must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Limit: 10}))(t) {
		if r.DeferReason != "" || r.DeferKey != "" || !r.DeferredAt.IsZero() || !r.StateChangedAt.Equal(base) {
			t.Fatalf("after reconsidering %+v", r)
		}
	}
}

func testCount(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	c := must(s.Count(ctx))(t)
	if c.Total() != 0 || len(c.States) != len(enqueuer.States) {
		t.Fatalf("empty store counts %+v", c)
	}
	for i := range 3 {
		add(t, s, fmt.Sprintf("a/new%d", i), base)
	}
	d := add(t, s, "a/deferred", base)
	must(s.Defer(ctx, enqueuer.Deferral{ID: d.ID, From: d.State, Reason: "x", Key: "k"}))(t)
	p := move(t, s, add(t, s, "a/pre", base), enqueuer.EventStartPreImport, "", time.Time{})
	move(t, s, move(t, s, add(t, s, "a/ab", base), enqueuer.EventStartPreImport, "", time.Time{}), enqueuer.EventAbort, "x", time.Time{})
	move(t, s, add(t, s, "a/sk", base), enqueuer.EventSkip, "too_many_tags", time.Time{})
	c = must(s.Count(ctx))(t)
	want := map[enqueuer.State]int{enqueuer.StateDefault: 4, enqueuer.StatePreImporting: 1, enqueuer.StateImportAborted: 1, enqueuer.StateImportSkipped: 1}
	for _, st := range enqueuer.States {
		if c.States[st] != want[st] {
			t.Fatalf("count of %s = %d, want %d (%+v)", st, c.States[st], want[st], c)
		}
	}
	if c.Deferred != 1 || c.Total() != 7 || c.InProgress() != 1 || c.Waiting() != 4 {
		t.Fatalf("counts %+v: deferred %d total %d in progress %d waiting %d", c, c.Deferred, c.Total(), c.InProgress(), c.Waiting())
	}
	_ = p
}

func testListOrdersAndPages(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	// Tag counts and creation times out of order; two of each tie.
	// Priorities: given when added (g/c, g/a) or set later (h/b, g/b).
	specs := []struct {
		path            string
		tags            int
		at              time.Duration
		added, priority int
	}{
		{"g/e", 50, 0, 0, 0}, {"g/c", 5, time.Hour, 2, 2}, {"g/a", 5, 0, 1, 1}, {"h/b", 500, 2 * time.Hour, 0, 2},
		{"g/d", 1, 3 * time.Hour, 0, 0}, {"g/b", 50, time.Hour, 7, 1},
	}
	for _, sp := range specs {
		must(s.Add(ctx, enqueuer.NewRepository{Path: sp.path, TagCount: sp.tags, Priority: sp.added, CreatedAt: base.Add(sp.at)}))(t)
		if sp.priority != sp.added {
			must(s.SetPriority(ctx, enqueuer.PriorityChange{Path: sp.path, Priority: sp.priority}))(t)
		}
	}
	for _, tc := range []struct {
		order enqueuer.Order
		want  []string
	}{
		{enqueuer.OrderOldest, []string{"g/e", "g/a", "g/c", "g/b", "h/b", "g/d"}},
		{"", []string{"g/e", "g/a", "g/c", "g/b", "h/b", "g/d"}},
		{enqueuer.OrderNewest, []string{"g/d", "h/b", "g/b", "g/c", "g/a", "g/e"}},
		{enqueuer.OrderSmallest, []string{"g/d", "g/a", "g/c", "g/e", "g/b", "h/b"}},
		{enqueuer.OrderPath, []string{"g/a", "g/b", "g/c", "g/d", "g/e", "h/b"}},
		{enqueuer.OrderPriority, []string{"g/c", "h/b", "g/a", "g/b", "g/e", "g/d"}},
		// The host's own keys, in mixed directions.
		{enqueuer.OrderBy("-tag_count", "path"), []string{"h/b", "g/b", "g/e", "g/a", "g/c", "g/d"}},
		{enqueuer.OrderBy("priority", "-created_at"), []string{"g/d", "g/e", "g/b", "g/a", "h/b", "g/c"}},
		{enqueuer.OrderBy("-id"), []string{"g/b", "g/d", "h/b", "g/a", "g/c", "g/e"}},
		{enqueuer.OrderBy(" retry_count ", "-path"), []string{"h/b", "g/e", "g/d", "g/c", "g/b", "g/a"}},
	} {
		all := must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Order: tc.order, Limit: 10}))(t)
		wantPaths(t, all, tc.want...)
		// Pages of two, each continuing after the last of the previous.
		var paged []enqueuer.Repository
		var after *enqueuer.Repository
		for range 10 {
			page := must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Order: tc.order, After: after, Limit: 2}))(t)
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			after = &page[len(page)-1]
		}
		wantPaths(t, paged, tc.want...)
	}
}

func testListFilters(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	for _, p := range []string{"group/a", "group/b/c", "group-x/a", "groupy/z", "other/group/a", "group"} {
		add(t, s, p, base)
	}
	got := must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, PathPrefix: "group/", Order: enqueuer.OrderPath, Limit: 10}))(t)
	wantPaths(t, got, "group/a", "group/b/c")
	got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, PathPrefix: "group", Order: enqueuer.OrderPath, Limit: 10}))(t)
	wantPaths(t, got, "group", "group-x/a", "group/a", "group/b/c", "groupy/z")
	for _, none := range []string{"zz", "grüp", "group/b/c/d"} {
		got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, PathPrefix: none, Limit: 10}))(t)
		wantPaths(t, got)
	}

	// Ready and Deferred split the waiting repositories.
	a := must(s.Get(ctx, "group/a"))(t)
	must(s.Defer(ctx, enqueuer.Deferral{ID: a.ID, From: a.State, Reason: "x", Key: "k"}))(t)
	got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Deferred: true, Limit: 10}))(t)
	wantPaths(t, got, "group/a")
	got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateDefault, Ready: true, PathPrefix: "group/", Limit: 10}))(t)
	wantPaths(t, got, "group/b/c")

	// Skip reasons.
	for _, p := range []string{"group-x/a", "groupy/z"} {
		r := must(s.Get(ctx, p))(t)
		reason := "not_found"
		if p == "groupy/z" {
			reason = "too_many_tags"
		}
		move(t, s, r, enqueuer.EventSkip, reason, time.Time{})
	}
	got = must(s.List(ctx, enqueuer.ListOptions{State: enqueuer.StateImportSkipped, SkipReason: "not_found", Limit: 10}))(t)
	wantPaths(t, got, "group-x/a")
}

func testLastStarted(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	if last := must(s.LastStarted(ctx))(t); !last.IsZero() {
		t.Fatalf("empty store's last start %v", last)
	}
	a := add(t, s, "a/a", base)
	b := add(t, s, "a/b", base)
	move(t, s, a, enqueuer.EventStartPreImport, "", base.Add(2*time.Hour))
	b = move(t, s, b, enqueuer.EventStartPreImport, "", base.Add(time.Hour))
	move(t, s, b, enqueuer.EventAbort, "x", base.Add(3*time.Hour))
	if last := must(s.LastStarted(ctx))(t); !last.Equal(base.Add(2 * time.Hour)) {
		t.Fatalf("last start %v, want %v", last, base.Add(2*time.Hour))
	}
}

// testSetPriority sets priorities by path and by prefix: only those that
// change count, nothing else of the record changes, and a priority stays
// through transitions and reverts.
func testSetPriority(t *testing.T, s enqueuer.Store) {
	ctx := context.Background()
	for _, p := range []string{"group/a", "group/b/c", "group-x/a", "groupy/z", "other/group/a"} {
		add(t, s, p, base)
	}
	a := must(s.Get(ctx, "group/a"))(t)
	if a.Priority != 0 {
		t.Fatalf("default priority %d", a.Priority)
	}
	if n := must(s.SetPriority(ctx, enqueuer.PriorityChange{PathPrefix: "group/", Priority: 5}))(t); n != 2 {
		t.Fatalf("prefix group/ changed %d, want 2", n)
	}
	if n := must(s.SetPriority(ctx, enqueuer.PriorityChange{PathPrefix: "group/", Priority: 5}))(t); n != 0 {
		t.Fatalf("setting the same priority again changed %d", n)
	}
	if n := must(s.SetPriority(ctx, enqueuer.PriorityChange{Path: "group/a", Priority: -3}))(t); n != 1 {
		t.Fatalf("path changed %d, want 1", n)
	}
	if n := must(s.SetPriority(ctx, enqueuer.PriorityChange{Path: "group/a", Priority: -3}))(t); n != 0 {
		t.Fatalf("setting the same priority again changed %d", n)
	}
	if n := must(s.SetPriority(ctx, enqueuer.PriorityChange{PathPrefix: "nobody/", Priority: 1}))(t); n != 0 {
		t.Fatalf("an empty prefix changed %d", n)
	}
	if n := must(s.SetPriority(ctx, enqueuer.PriorityChange{PathPrefix: "gr\u00fcn/", Priority: 1}))(t); n != 0 {
		t.Fatalf("a non-ASCII prefix changed %d", n)
	}
	want := map[string]int{"group/a": -3, "group/b/c": 5, "group-x/a": 0, "groupy/z": 0, "other/group/a": 0}
	for p, w := range want {
		if got := must(s.Get(ctx, p))(t); got.Priority != w {
			t.Errorf("%s: priority %d, want %d", p, got.Priority, w)
		}
	}
	got := must(s.Get(ctx, "group/a"))(t)
	if got.Version != a.Version || !got.UpdatedAt.Equal(a.UpdatedAt) {
		t.Fatalf("a priority change changed the migration record: %+v, was %+v", got, a)
	}
	_, err := s.SetPriority(ctx, enqueuer.PriorityChange{Path: "group/none", Priority: 1})
	wantErr(t, err, enqueuer.ErrNotFound)
	for _, bad := range []enqueuer.PriorityChange{{}, {Path: "group/a", PathPrefix: "group/"}, {Path: "Bad Path"}} {
		if _, err := s.SetPriority(ctx, bad); err == nil {
			t.Errorf("SetPriority(%+v) accepted", bad)
		}
	}

	// Transitions and a revert keep the priority, even one set in between.
	claimed := move(t, s, got, enqueuer.EventStartPreImport, "", base.Add(time.Minute))
	if claimed.Priority != -3 {
		t.Fatalf("transition lost the priority: %+v", claimed)
	}
	must(s.SetPriority(ctx, enqueuer.PriorityChange{Path: "group/a", Priority: 9}))(t)
	back := must(s.Revert(ctx, claimed, got))(t)
	if back.Priority != 9 || back.State != enqueuer.StateDefault {
		t.Fatalf("revert: %+v, want priority 9 in default", back)
	}
}
