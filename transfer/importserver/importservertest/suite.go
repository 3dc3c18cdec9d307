package importservertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer/importserver"
)

// TestStore is the conformance suite of importserver.Store. newStore must
// return an empty store for each call.
func TestStore(t *testing.T, newStore func(t *testing.T) importserver.Store) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s importserver.Store)
	}{
		{"GetAndBadInput", testGetAndBadInput},
		{"Lifecycle", testLifecycle},
		{"Refusals", testRefusals},
		{"Capacity", testCapacity},
		{"RacingBegins", testRacingBegins},
		{"FinishCompareAndSet", testFinishCompareAndSet},
		{"FinishClaims", testFinishClaims},
		{"RequireRecord", testRequireRecord},
		{"Abandon", testAbandon},
		{"RecordDeliveriesBatch", testRecordDeliveriesBatch},
		{"RequestCancel", testRequestCancel},
		{"ForceCancel", testForceCancel},
		{"Heartbeat", testHeartbeat},
		{"FailStaleByOwner", testFailStaleByOwner},
		{"FailStaleByAge", testFailStaleByAge},
		{"OutboxOrderAndLeases", testOutboxOrderAndLeases},
		{"OutboxRetryAndGiveUp", testOutboxRetryAndGiveUp},
		{"RacingClaims", testRacingClaims},
		{"NewRunSupersedesUndelivered", testSupersede},
		{"PruneDelivered", testPruneDelivered},
		{"LongDetail", testLongDetail},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newStore(t)) })
	}
}

const owner = "registry-0"

func begin(t *testing.T, s importserver.Store, path string, typ importserver.Type) importserver.Import {
	t.Helper()
	i, err := s.Begin(context.Background(), importserver.BeginRequest{Path: path, Type: typ, Owner: owner})
	require.NoError(t, err)
	return i
}

func finish(t *testing.T, s importserver.Store, i importserver.Import, r importserver.Result, detail string) importserver.Import {
	t.Helper()
	out, _, err := s.Finish(context.Background(), importserver.Outcome{Path: i.Path, Run: i.Run, Status: i.Type.Outcome(r), Detail: detail})
	require.NoError(t, err)
	return out
}

// wantRefused checks that err is a *RefusedError for reason.
func wantRefused(t *testing.T, err, reason error, msg ...any) *importserver.RefusedError {
	t.Helper()
	require.ErrorIs(t, err, reason, msg...)
	var ref *importserver.RefusedError
	require.ErrorAs(t, err, &ref)
	return ref
}

// claimAll claims every due notification (leased for a minute).
func claimAll(t *testing.T, s importserver.Store, token string) []importserver.Notification {
	t.Helper()
	ns, err := s.ClaimNotifications(context.Background(), importserver.ClaimRequest{Owner: owner, Token: token, Limit: 1000, LeaseFor: time.Minute})
	require.NoError(t, err)
	return ns
}

// requireLeased checks that what this process claimed with token is
// leased: neither a claim with token again nor one of another instance
// gets anything.
func requireLeased(t *testing.T, s importserver.Store, token string) {
	t.Helper()
	require.Empty(t, claimAll(t, s, token))
	other, err := s.ClaimNotifications(context.Background(), importserver.ClaimRequest{Owner: "registry-1", Token: "x", Limit: 10, LeaseFor: time.Minute})
	require.NoError(t, err)
	require.Empty(t, other)
}

// completeAndClaim completes a pre-import of each path in turn and claims
// their notifications for token.
func completeAndClaim(t *testing.T, s importserver.Store, token string, paths ...string) []importserver.Notification {
	t.Helper()
	for _, p := range paths {
		finish(t, s, begin(t, s, p, importserver.PreImport), importserver.Complete, "")
	}
	ns := claimAll(t, s, token)
	require.Len(t, ns, len(paths))
	return ns
}

// settle delivers every notification that can be claimed, so that the
// repositories' next runs may start.
func settle(t *testing.T, s importserver.Store) {
	t.Helper()
	deliver(t, s, claimAll(t, s, "settle")...)
}

func deliver(t *testing.T, s importserver.Store, ns ...importserver.Notification) {
	t.Helper()
	ds := make([]importserver.Delivery, len(ns))
	for i, n := range ns {
		ds[i] = importserver.Delivery{ID: n.ID, Result: importserver.Delivered, Code: 200}
	}
	require.NoError(t, s.RecordDeliveries(context.Background(), ds))
}

func testGetAndBadInput(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	_, err := s.Get(ctx, "group/image")
	require.ErrorIs(t, err, importserver.ErrNotFound)
	for _, bad := range []string{"", "Group/Image", "a//b", "../etc", "a/./b", strings.Repeat("a", 256), "a/b/"} {
		_, err := s.Get(ctx, bad)
		require.ErrorIs(t, err, importserver.ErrInvalidPath, "%q", bad)
		_, err = s.Begin(ctx, importserver.BeginRequest{Path: bad, Type: importserver.PreImport, Owner: owner})
		require.ErrorIs(t, err, importserver.ErrInvalidPath, "%q", bad)
	}
	_, err = s.Begin(ctx, importserver.BeginRequest{Path: "group/image", Type: "both", Owner: owner})
	require.ErrorIs(t, err, importserver.ErrInvalidType)
	_, _, err = s.Finish(ctx, importserver.Outcome{Path: "group/image", Run: 1, Status: importserver.StatusImportInProgress})
	require.Error(t, err, "an in-progress status is no outcome")
	_, _, err = s.Finish(ctx, importserver.Outcome{Path: "group/image", Run: 0, Status: importserver.StatusImportComplete})
	require.Error(t, err)
	require.Error(t, s.RecordDeliveries(ctx, []importserver.Delivery{{ID: 1, Result: "lost"}}))
	// Nothing was recorded by any of it.
	_, err = s.Get(ctx, "group/image")
	require.ErrorIs(t, err, importserver.ErrNotFound)
	require.Empty(t, claimAll(t, s, "t"))
}

func testLifecycle(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	pre := begin(t, s, "group/image", importserver.PreImport)
	require.Equal(t, importserver.StatusPreImportInProgress, pre.Status)
	require.Equal(t, importserver.PreImport, pre.Type)
	require.Equal(t, int64(1), pre.Run)
	require.Equal(t, owner, pre.Owner)
	require.False(t, pre.StartedAt.IsZero())
	require.True(t, pre.FinishedAt.IsZero())

	got, err := s.Get(ctx, "group/image")
	require.NoError(t, err)
	require.Equal(t, pre.Status, got.Status)
	require.Empty(t, claimAll(t, s, "t"), "nothing to notify while it runs")

	counts := importserver.Counts{BlobsCopied: 3, BlobsSkipped: 1, BytesCopied: 300, Manifests: 2}
	done, _, err := s.Finish(ctx, importserver.Outcome{Path: pre.Path, Run: pre.Run, Status: importserver.StatusPreImportComplete, Detail: "ok", Counts: counts})
	require.NoError(t, err)
	require.Equal(t, importserver.StatusPreImportComplete, done.Status)
	require.Equal(t, counts, done.Counts)
	require.Equal(t, "ok", done.Detail)
	require.False(t, done.FinishedAt.IsZero())

	ns := claimAll(t, s, "t")
	require.Len(t, ns, 1)
	require.Equal(t, "group/image", ns[0].Path)
	require.Equal(t, importserver.StatusPreImportComplete, ns[0].Status)
	require.Equal(t, int64(1), ns[0].Run)
	require.Equal(t, "ok", ns[0].Detail)
	require.Equal(t, importserver.NotificationPending, ns[0].State)
	deliver(t, s, ns...)

	final := begin(t, s, "group/image", importserver.FinalImport)
	require.Equal(t, importserver.StatusImportInProgress, final.Status)
	require.Equal(t, int64(2), final.Run)
	require.Zero(t, final.Counts, "a new run starts with zero counts")
	require.Empty(t, final.Detail)
	finish(t, s, final, importserver.Complete, "")

	_, err = s.Begin(ctx, importserver.BeginRequest{Path: "group/image", Type: importserver.PreImport, Owner: owner})
	ref := wantRefused(t, err, importserver.ErrAlreadyImported)
	require.Equal(t, importserver.StatusImportComplete, ref.Current.Status)
	ns = claimAll(t, s, "t")
	require.Len(t, ns, 1)
	require.Equal(t, importserver.StatusImportComplete, ns[0].Status)
}

func testRefusals(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	try := func(path string, typ importserver.Type) error {
		_, err := s.Begin(ctx, importserver.BeginRequest{Path: path, Type: typ, Owner: owner})
		return err
	}
	// A final import needs a completed pre-import.
	wantRefused(t, try("a", importserver.FinalImport), importserver.ErrPreImportRequired)
	_, err := s.Begin(ctx, importserver.BeginRequest{Path: "b", Type: importserver.FinalImport, Owner: owner, AllowWithoutPreImport: true})
	require.NoError(t, err)

	pre := begin(t, s, "a", importserver.PreImport)
	ref := wantRefused(t, try("a", importserver.PreImport), importserver.ErrImportInProgress)
	require.Equal(t, pre.Run, ref.Current.Run)
	wantRefused(t, try("a", importserver.FinalImport), importserver.ErrPreImportInProgress)
	finish(t, s, pre, importserver.Failed, "boom")
	settle(t, s)
	wantRefused(t, try("a", importserver.FinalImport), importserver.ErrPreImportRequired)

	pre = begin(t, s, "a", importserver.PreImport) // a failed pre-import may run again
	finish(t, s, pre, importserver.Canceled, "")
	settle(t, s)
	wantRefused(t, try("a", importserver.FinalImport), importserver.ErrPreImportRequired)
	pre = begin(t, s, "a", importserver.PreImport)
	finish(t, s, pre, importserver.Complete, "")
	settle(t, s)
	pre = begin(t, s, "a", importserver.PreImport) // and a completed one (incremental)
	finish(t, s, pre, importserver.Complete, "")
	settle(t, s)

	final := begin(t, s, "a", importserver.FinalImport)
	wantRefused(t, try("a", importserver.PreImport), importserver.ErrImportInProgress)
	wantRefused(t, try("a", importserver.FinalImport), importserver.ErrImportInProgress)
	finish(t, s, final, importserver.Failed, "boom")
	settle(t, s)
	// After a failed final import the coordinator starts over with a
	// pre-import.
	wantRefused(t, try("a", importserver.FinalImport), importserver.ErrPreImportRequired)
	pre = begin(t, s, "a", importserver.PreImport)
	finish(t, s, pre, importserver.Complete, "")
	settle(t, s)
	final = begin(t, s, "a", importserver.FinalImport)
	finish(t, s, final, importserver.Canceled, "")
	settle(t, s)
	wantRefused(t, try("a", importserver.FinalImport), importserver.ErrPreImportRequired)
	pre = begin(t, s, "a", importserver.PreImport)
	require.Equal(t, int64(8), pre.Run)
}

func testCapacity(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	req := func(path string) importserver.BeginRequest {
		return importserver.BeginRequest{Path: path, Type: importserver.PreImport, Owner: owner, MaxRunning: 2}
	}
	a, err := s.Begin(ctx, req("a"))
	require.NoError(t, err)
	_, err = s.Begin(ctx, req("b"))
	require.NoError(t, err)
	_, err = s.Begin(ctx, req("c"))
	ref := wantRefused(t, err, importserver.ErrTooManyImports)
	require.Equal(t, 2, ref.Running)
	// A conflict is reported as such, not as a full registry.
	_, err = s.Begin(ctx, req("a"))
	wantRefused(t, err, importserver.ErrImportInProgress)
	_, err = s.Get(ctx, "c")
	require.ErrorIs(t, err, importserver.ErrNotFound, "a refused start records nothing")

	finish(t, s, a, importserver.Complete, "")
	_, err = s.Begin(ctx, req("c"))
	require.NoError(t, err)
}

func testRacingBegins(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	const max, n = 5, 20
	var ok, full atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.Begin(ctx, importserver.BeginRequest{Path: fmt.Sprintf("repo/%02d", i), Type: importserver.PreImport, Owner: owner, MaxRunning: max})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, importserver.ErrTooManyImports):
				full.Add(1)
			default:
				t.Errorf("begin %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(max), ok.Load(), "the limit holds under concurrent starts")
	require.Equal(t, int32(n-max), full.Load())

	ok.Store(0)
	for range 10 {
		wg.Go(func() {
			_, err := s.Begin(ctx, importserver.BeginRequest{Path: "same/repo", Type: importserver.PreImport, Owner: owner})
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, importserver.ErrImportInProgress) {
				t.Errorf("begin: %v", err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), ok.Load(), "one start wins")
}

func testFinishCompareAndSet(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	pre := begin(t, s, "a", importserver.PreImport)
	_, _, err := s.Finish(ctx, importserver.Outcome{Path: "a", Run: pre.Run + 1, Status: importserver.StatusPreImportComplete})
	require.ErrorIs(t, err, importserver.ErrStateChanged, "another run")
	_, _, err = s.Finish(ctx, importserver.Outcome{Path: "a", Run: pre.Run, Status: importserver.StatusImportComplete})
	require.ErrorIs(t, err, importserver.ErrStateChanged, "another type")
	_, _, err = s.Finish(ctx, importserver.Outcome{Path: "b", Run: 1, Status: importserver.StatusPreImportComplete})
	require.ErrorIs(t, err, importserver.ErrStateChanged, "unknown repository")
	finish(t, s, pre, importserver.Complete, "")
	_, _, err = s.Finish(ctx, importserver.Outcome{Path: "a", Run: pre.Run, Status: importserver.StatusPreImportFailed})
	require.ErrorIs(t, err, importserver.ErrStateChanged, "finished twice")
	got, err := s.Get(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, importserver.StatusPreImportComplete, got.Status, "the loser changed nothing")
	ns := claimAll(t, s, "t")
	require.Len(t, ns, 1, "one outcome, one notification")
	deliver(t, s, ns...)

	// Racing finishers of one run: exactly one wins.
	final := begin(t, s, "a", importserver.FinalImport)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r := []importserver.Result{importserver.Complete, importserver.Failed}[i%2]
			_, _, err := s.Finish(ctx, importserver.Outcome{Path: "a", Run: final.Run, Status: final.Type.Outcome(r)})
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, importserver.ErrStateChanged) {
				t.Errorf("finish: %v", err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), wins.Load())
}

func testRequestCancel(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	_, err := s.RequestCancel(ctx, "a")
	require.ErrorIs(t, err, importserver.ErrNotFound)
	pre := begin(t, s, "a", importserver.PreImport)
	got, err := s.RequestCancel(ctx, "a")
	require.NoError(t, err)
	require.True(t, got.CancelRequested)
	require.Equal(t, importserver.StatusPreImportInProgress, got.Status, "a request only asks")
	require.Empty(t, claimAll(t, s, "t"))

	alive, err := s.Heartbeat(ctx, owner, []importserver.RunRef{pre.Ref()})
	require.NoError(t, err)
	require.Len(t, alive, 1)
	require.True(t, alive[0].CancelRequested, "the owner learns of it at its heartbeat")

	done := finish(t, s, pre, importserver.Canceled, "canceled by request")
	require.Equal(t, importserver.StatusPreImportCanceled, done.Status)
	require.False(t, done.CancelRequested)
	_, err = s.RequestCancel(ctx, "a")
	ref := wantRefused(t, err, importserver.ErrNotInProgress)
	require.Equal(t, importserver.StatusPreImportCanceled, ref.Current.Status)
	ns := claimAll(t, s, "t")
	require.Len(t, ns, 1)
	require.Equal(t, importserver.StatusPreImportCanceled, ns[0].Status)
}

func testForceCancel(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	_, err := s.ForceCancel(ctx, "a", "x")
	require.ErrorIs(t, err, importserver.ErrNotFound)
	pre := begin(t, s, "a", importserver.PreImport)
	finish(t, s, pre, importserver.Complete, "")
	_, err = s.ForceCancel(ctx, "a", "x")
	wantRefused(t, err, importserver.ErrNotInProgress)
	settle(t, s)

	final := begin(t, s, "a", importserver.FinalImport)
	got, err := s.ForceCancel(ctx, "a", "canceled by an operator")
	require.NoError(t, err)
	require.Equal(t, importserver.StatusImportCanceled, got.Status)
	require.Equal(t, "canceled by an operator", got.Detail)
	require.False(t, got.FinishedAt.IsZero())
	_, _, err = s.Finish(ctx, importserver.Outcome{Path: "a", Run: final.Run, Status: importserver.StatusImportComplete})
	require.ErrorIs(t, err, importserver.ErrStateChanged, "the owner's late outcome is not recorded")
	alive, err := s.Heartbeat(ctx, owner, []importserver.RunRef{final.Ref()})
	require.NoError(t, err)
	require.Empty(t, alive, "the owner learns the run is no longer its")
	ns := claimAll(t, s, "t")
	require.Len(t, ns, 1)
	require.Equal(t, importserver.StatusImportCanceled, ns[0].Status)
	require.Equal(t, "canceled by an operator", ns[0].Detail)
}

func testHeartbeat(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	a := begin(t, s, "a", importserver.PreImport)
	b, err := s.Begin(ctx, importserver.BeginRequest{Path: "b", Type: importserver.PreImport, Owner: "registry-1"})
	require.NoError(t, err)
	c := begin(t, s, "c", importserver.PreImport)
	finish(t, s, c, importserver.Complete, "")
	time.Sleep(5 * time.Millisecond)

	alive, err := s.Heartbeat(ctx, owner, []importserver.RunRef{a.Ref(), b.Ref(), c.Ref(), {Path: "a", Run: a.Run + 1}, {Path: "zz", Run: 1}})
	require.NoError(t, err)
	require.Len(t, alive, 1, "only runs in progress that the owner runs")
	require.Equal(t, a.Ref(), alive[0].Ref())
	require.True(t, alive[0].HeartbeatAt.After(a.HeartbeatAt), "the heartbeat moved: %v -> %v", a.HeartbeatAt, alive[0].HeartbeatAt)
	none, err := s.Heartbeat(ctx, owner, nil)
	require.NoError(t, err)
	require.Empty(t, none)
}

func testFailStaleByOwner(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	a := begin(t, s, "a", importserver.PreImport)
	b := begin(t, s, "b", importserver.PreImport)
	finish(t, s, b, importserver.Complete, "")
	settle(t, s)
	b = begin(t, s, "b", importserver.FinalImport)
	_, err := s.RequestCancel(ctx, "b")
	require.NoError(t, err)
	other, err := s.Begin(ctx, importserver.BeginRequest{Path: "c", Type: importserver.PreImport, Owner: "registry-1"})
	require.NoError(t, err)
	none, err := s.FailStale(ctx, importserver.StaleRequest{})
	require.NoError(t, err)
	require.Empty(t, none, "an empty request selects nothing")

	ended, err := s.FailStale(ctx, importserver.StaleRequest{Owner: owner, Detail: "restarted"})
	require.NoError(t, err)
	require.Len(t, ended, 2)
	byPath := map[string]importserver.Import{}
	for _, i := range ended {
		byPath[i.Path] = i
	}
	require.Equal(t, importserver.StatusPreImportFailed, byPath["a"].Status)
	require.Equal(t, "restarted", byPath["a"].Detail)
	require.Equal(t, a.Run, byPath["a"].Run)
	require.Equal(t, importserver.StatusImportCanceled, byPath["b"].Status, "a cancellation that was asked is recorded as such")
	require.Equal(t, b.Run, byPath["b"].Run)
	got, err := s.Get(ctx, "c")
	require.NoError(t, err)
	require.Equal(t, other.Status, got.Status, "another owner's import is untouched")

	ns := claimAll(t, s, "t")
	require.Len(t, ns, 2)
	for _, n := range ns {
		require.Equal(t, byPath[n.Path].Status, n.Status)
		require.Equal(t, "restarted", n.Detail)
	}
	again, err := s.FailStale(ctx, importserver.StaleRequest{Owner: owner, Detail: "restarted"})
	require.NoError(t, err)
	require.Empty(t, again)
}

func testFailStaleByAge(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	old := begin(t, s, "old", importserver.PreImport)
	kept := begin(t, s, "kept", importserver.PreImport)
	// kept's heartbeat must be younger than StaleAfter when FailStale
	// runs: half a second leaves room for a stalled machine.
	time.Sleep(600 * time.Millisecond)
	_, err := s.Heartbeat(ctx, owner, []importserver.RunRef{kept.Ref()})
	require.NoError(t, err)
	ended, err := s.FailStale(ctx, importserver.StaleRequest{StaleAfter: 500 * time.Millisecond, Detail: "no heartbeat"})
	require.NoError(t, err)
	require.Len(t, ended, 1)
	require.Equal(t, old.Ref(), ended[0].Ref())
	require.Equal(t, importserver.StatusPreImportFailed, ended[0].Status)
	got, err := s.Get(ctx, "kept")
	require.NoError(t, err)
	require.Equal(t, importserver.StatusPreImportInProgress, got.Status, "a heartbeat keeps an import alive")
}

// Finish with a Claim leases the new notification as ClaimNotifications
// would have; without one it is left for ClaimNotifications.
func testFinishClaims(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	pre := begin(t, s, "a", importserver.PreImport)
	claim := &importserver.ClaimRequest{Owner: owner, Token: "t1", LeaseFor: time.Minute}
	done, n, err := s.Finish(ctx, importserver.Outcome{Path: "a", Run: pre.Run, Status: importserver.StatusPreImportComplete,
		Detail: "ok", Claim: claim})
	require.NoError(t, err)
	require.Equal(t, importserver.StatusPreImportComplete, done.Status)
	require.NotNil(t, n, "claimed")
	require.Positive(t, n.ID)
	require.Equal(t, "a", n.Path)
	require.Equal(t, pre.Run, n.Run)
	require.Equal(t, importserver.StatusPreImportComplete, n.Status)
	require.Equal(t, "ok", n.Detail)
	require.Equal(t, importserver.NotificationPending, n.State)
	require.Zero(t, n.Attempts)
	require.False(t, n.CreatedAt.IsZero())

	// Leased like a claim: not to this process again nor to another
	// instance, but to a new process of the same instance.
	requireLeased(t, s, "t1")
	again := claimAll(t, s, "t2")
	require.Len(t, again, 1)
	require.Equal(t, n.ID, again[0].ID)
	deliver(t, s, again...)

	// Without a Claim nothing is returned and the notification is due.
	final := begin(t, s, "a", importserver.FinalImport)
	_, n, err = s.Finish(ctx, importserver.Outcome{Path: "a", Run: final.Run, Status: importserver.StatusImportComplete})
	require.NoError(t, err)
	require.Nil(t, n)
	require.Len(t, claimAll(t, s, "t1"), 1)

	// A refused Finish claims nothing.
	_, n, err = s.Finish(ctx, importserver.Outcome{Path: "a", Run: final.Run, Status: importserver.StatusImportFailed, Claim: claim})
	require.ErrorIs(t, err, importserver.ErrStateChanged)
	require.Nil(t, n)
}

// RequireRecord refuses a repository without a record, and changes
// nothing else.
func testRequireRecord(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	req := importserver.BeginRequest{Path: "a", Type: importserver.PreImport, Owner: owner, RequireRecord: true}
	_, err := s.Begin(ctx, req)
	require.ErrorIs(t, err, importserver.ErrNotFound)
	_, err = s.Get(ctx, "a")
	require.ErrorIs(t, err, importserver.ErrNotFound, "nothing recorded")

	req.RequireRecord = false
	pre, err := s.Begin(ctx, req)
	require.NoError(t, err)
	req.RequireRecord = true
	_, err = s.Begin(ctx, req)
	wantRefused(t, err, importserver.ErrImportInProgress)
	finish(t, s, pre, importserver.Complete, "")
	settle(t, s)
	again, err := s.Begin(ctx, req)
	require.NoError(t, err)
	require.Equal(t, pre.Run+1, again.Run)
	final := importserver.BeginRequest{Path: "b", Type: importserver.FinalImport, Owner: owner, RequireRecord: true, AllowWithoutPreImport: true}
	_, err = s.Begin(ctx, final)
	require.ErrorIs(t, err, importserver.ErrNotFound, "even where a start without a record is allowed")
}

// Abandon deletes a first run in progress, and nothing else: not another
// run, not a later run, not an ended one; it frees its capacity and leaves
// no notification.
func testAbandon(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	first, err := s.Begin(ctx, importserver.BeginRequest{Path: "gone", Type: importserver.PreImport, Owner: owner, MaxRunning: 1})
	require.NoError(t, err)
	require.Equal(t, int64(1), first.Run)
	_, err = s.Begin(ctx, importserver.BeginRequest{Path: "other", Type: importserver.PreImport, Owner: owner, MaxRunning: 1})
	wantRefused(t, err, importserver.ErrTooManyImports)

	require.ErrorIs(t, s.Abandon(ctx, importserver.RunRef{Path: "gone", Run: 2}), importserver.ErrStateChanged, "another run")
	require.ErrorIs(t, s.Abandon(ctx, importserver.RunRef{Path: "never", Run: 1}), importserver.ErrStateChanged, "no record")
	require.NoError(t, s.Abandon(ctx, first.Ref()))
	_, err = s.Get(ctx, "gone")
	require.ErrorIs(t, err, importserver.ErrNotFound, "the record is gone")
	require.ErrorIs(t, s.Abandon(ctx, first.Ref()), importserver.ErrStateChanged, "twice")
	other, err := s.Begin(ctx, importserver.BeginRequest{Path: "other", Type: importserver.PreImport, Owner: owner, MaxRunning: 1})
	require.NoError(t, err, "its capacity is free")

	// An ended first run, and a second run in progress, stay.
	finish(t, s, other, importserver.Complete, "")
	require.ErrorIs(t, s.Abandon(ctx, other.Ref()), importserver.ErrStateChanged, "ended")
	second, err := s.Begin(ctx, importserver.BeginRequest{Path: "other", Type: importserver.PreImport, Owner: owner})
	require.NoError(t, err)
	require.ErrorIs(t, s.Abandon(ctx, second.Ref()), importserver.ErrStateChanged, "a second run")
	got, err := s.Get(ctx, "other")
	require.NoError(t, err)
	require.Equal(t, second.Run, got.Run)
	require.ErrorIs(t, s.Abandon(ctx, importserver.RunRef{Path: "../x", Run: 1}), importserver.ErrInvalidPath)

	settle(t, s)
	for _, n := range claimAll(t, s, "t") {
		require.NotEqual(t, "gone", n.Path, "an abandoned run is never notified")
	}
}

// RecordDeliveries records a batch at once, the last attempt of a
// notification counting, and nothing when one of them is invalid.
func testRecordDeliveriesBatch(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	ns := completeAndClaim(t, s, "t", "a", "b", "c")
	bad := []importserver.Delivery{{ID: ns[0].ID, Result: importserver.Delivered, Code: 200}, {ID: ns[1].ID, Result: "lost"}}
	require.Error(t, s.RecordDeliveries(ctx, bad))
	require.NoError(t, s.RecordDeliveries(ctx, nil))
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, st.Pending, "an invalid batch records nothing")

	require.NoError(t, s.RecordDeliveries(ctx, []importserver.Delivery{
		{ID: ns[0].ID, Result: importserver.Delivered, Code: 200},
		{ID: ns[1].ID, Result: importserver.Retry, Code: 503, Err: "first"},
		{ID: ns[1].ID, Result: importserver.Retry, Code: 502, Err: "last"},
		{ID: ns[2].ID, Result: importserver.GiveUp, Refused: true, Code: 400},
	}))
	st, err = s.OutboxStats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Pending)
	require.Equal(t, 1, st.Failed)
	again := claimAll(t, s, "t")
	require.Len(t, again, 1, "the lease of b was released")
	require.Equal(t, ns[1].ID, again[0].ID)
	require.Equal(t, 1, again[0].Attempts, "one attempt counted")
	require.Equal(t, 502, again[0].LastCode)
	require.Equal(t, "last", again[0].LastError)
}

func testOutboxOrderAndLeases(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	ns := completeAndClaim(t, s, "t1", "b", "a", "c")
	require.Equal(t, []string{"b", "a", "c"}, []string{ns[0].Path, ns[1].Path, ns[2].Path}, "oldest first")

	// Leased: neither this process again nor another instance gets them...
	requireLeased(t, s, "t1")
	// ...but a new process of the same instance takes them over.
	again := claimAll(t, s, "t2")
	require.Len(t, again, 3)
	limited, err := s.ClaimNotifications(ctx, importserver.ClaimRequest{Owner: owner, Token: "t3", Limit: 2, LeaseFor: time.Minute})
	require.NoError(t, err)
	require.Len(t, limited, 2, "at most Limit")
	none, err := s.ClaimNotifications(ctx, importserver.ClaimRequest{Owner: owner, Token: "t4", Limit: 0, LeaseFor: time.Minute})
	require.NoError(t, err)
	require.Empty(t, none)

	// A lease that ran out is free for anyone.
	deliver(t, s, again...)
	final := begin(t, s, "a", importserver.FinalImport)
	finish(t, s, final, importserver.Complete, "")
	short, err := s.ClaimNotifications(ctx, importserver.ClaimRequest{Owner: "registry-1", Token: "y", Limit: 10, LeaseFor: time.Millisecond})
	require.NoError(t, err)
	require.Len(t, short, 1)
	time.Sleep(20 * time.Millisecond)
	ns = claimAll(t, s, "t5")
	require.Len(t, ns, 1)
	require.Equal(t, short[0].ID, ns[0].ID)
	require.Equal(t, importserver.StatusImportComplete, ns[0].Status)
}

func testOutboxRetryAndGiveUp(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	for _, p := range []string{"a", "b", "c"} {
		finish(t, s, begin(t, s, p, importserver.PreImport), importserver.Complete, "")
	}
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, st.Pending)
	require.Zero(t, st.Failed)

	ns := claimAll(t, s, "t")
	require.Len(t, ns, 3)
	byPath := map[string]importserver.Notification{}
	for _, n := range ns {
		byPath[n.Path] = n
	}
	rec := func(d importserver.Delivery) { require.NoError(t, s.RecordDeliveries(ctx, []importserver.Delivery{d})) }
	rec(importserver.Delivery{ID: byPath["a"].ID, Result: importserver.Retry, Code: 503, Err: "unavailable", RetryIn: time.Hour})
	rec(importserver.Delivery{ID: byPath["b"].ID, Result: importserver.Retry, Refused: true, Code: 400, Err: "wrong state"})
	rec(importserver.Delivery{ID: byPath["c"].ID, Result: importserver.GiveUp, Refused: true, Code: 400, Err: "wrong state"})

	ns = claimAll(t, s, "t")
	require.Len(t, ns, 1, "a is backing off; c was given up")
	require.Equal(t, "b", ns[0].Path)
	require.Equal(t, 1, ns[0].Attempts)
	require.Equal(t, 1, ns[0].Refusals)
	require.Equal(t, 400, ns[0].LastCode)
	require.Equal(t, "wrong state", ns[0].LastError)
	rec(importserver.Delivery{ID: ns[0].ID, Result: importserver.Delivered, Code: 200})
	// A delivery recorded twice (a lease taken over meanwhile) changes nothing more.
	rec(importserver.Delivery{ID: ns[0].ID, Result: importserver.Retry, Code: 503})
	require.Empty(t, claimAll(t, s, "t"))

	st, err = s.OutboxStats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Pending)
	require.Equal(t, 1, st.Failed)
	require.Positive(t, st.OldestPending)
	require.Less(t, st.OldestPending, time.Minute)
}

func testRacingClaims(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	const n = 30
	for i := range n {
		finish(t, s, begin(t, s, fmt.Sprintf("repo/%02d", i), importserver.PreImport), importserver.Complete, "")
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			ns, err := s.ClaimNotifications(ctx, importserver.ClaimRequest{Owner: fmt.Sprintf("registry-%d", w), Token: "t", Limit: 10, LeaseFor: time.Minute})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, x := range ns {
				seen[x.ID]++
			}
		})
	}
	wg.Wait()
	require.Len(t, seen, n, "every notification claimed")
	for id, c := range seen {
		require.Equal(t, 1, c, "notification %d claimed %d times", id, c)
	}
}

func testPruneDelivered(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	for _, p := range []string{"a", "b"} {
		finish(t, s, begin(t, s, p, importserver.PreImport), importserver.Complete, "")
	}
	ns := claimAll(t, s, "t")
	deliver(t, s, ns[0])
	n, err := s.PruneDelivered(ctx, time.Hour)
	require.NoError(t, err)
	require.Zero(t, n, "too recent")
	time.Sleep(5 * time.Millisecond)
	n, err = s.PruneDelivered(ctx, time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Pending, "pending ones are never pruned")
}

func testLongDetail(t *testing.T, s importserver.Store) {
	pre := begin(t, s, "a", importserver.PreImport)
	done := finish(t, s, pre, importserver.Failed, strings.Repeat("é", 5000))
	require.LessOrEqual(t, len(done.Detail), importserver.MaxDetailLength)
	require.True(t, strings.HasSuffix(done.Detail, "…"))
	ns := claimAll(t, s, "t")
	require.Len(t, ns, 1)
	require.Equal(t, done.Detail, ns[0].Detail)
}

// A new run supersedes the undelivered outcomes of earlier runs: they are
// never sent, even one claimed at that moment, and they count as neither
// pending nor failed.
func testSupersede(t *testing.T, s importserver.Store) {
	ctx := context.Background()
	finish(t, s, begin(t, s, "a", importserver.PreImport), importserver.Failed, "first")
	finish(t, s, begin(t, s, "b", importserver.PreImport), importserver.Failed, "first")
	claimed := claimAll(t, s, "t")
	require.Len(t, claimed, 2)
	var bNote importserver.Notification
	for _, n := range claimed {
		if n.Path == "b" {
			bNote = n
		}
	}
	require.NoError(t, s.RecordDeliveries(ctx, []importserver.Delivery{importserver.Delivery{ID: bNote.ID, Result: importserver.Retry, Code: 503, RetryIn: time.Hour}}))

	second := begin(t, s, "a", importserver.PreImport) // while a's outcome is claimed
	require.Equal(t, int64(2), second.Run)
	begin(t, s, "b", importserver.PreImport) // while b's is backing off
	// The late record of the attempt that was in flight changes nothing.
	for _, n := range claimed {
		if n.Path == "a" {
			require.NoError(t, s.RecordDeliveries(ctx, []importserver.Delivery{importserver.Delivery{ID: n.ID, Result: importserver.Retry, Code: 502}}))
		}
	}
	require.Empty(t, claimAll(t, s, "t2"), "superseded outcomes are never sent")
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Pending)
	require.Zero(t, st.Failed)

	finish(t, s, second, importserver.Complete, "second")
	ns := claimAll(t, s, "t3")
	require.Len(t, ns, 1)
	require.Equal(t, int64(2), ns[0].Run)
	require.Equal(t, "second", ns[0].Detail)
	deliver(t, s, ns...)
	time.Sleep(5 * time.Millisecond)
	n, err := s.PruneDelivered(ctx, time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, int64(3), n, "delivered and superseded notifications are pruned")
}
