package harness

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/transfer"
)

// fakePasses lets a test decide when and how each pass ends.
type fakePasses struct {
	mu       sync.Mutex
	release  map[string]chan error
	notified chan notification
}

type notification struct{ repo, status, reason string }

func newFakePasses() *fakePasses {
	return &fakePasses{release: map[string]chan error{}, notified: make(chan notification, 16)}
}

func (f *fakePasses) ch(repo string) chan error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.release[repo] == nil {
		f.release[repo] = make(chan error, 1)
	}
	return f.release[repo]
}

func (f *fakePasses) pass(ctx context.Context, _ transfer.Pass, repo string) (*transfer.Report, error) {
	select {
	case err := <-f.ch(repo):
		return &transfer.Report{}, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fakePasses) notify(_ context.Context, repo, status, reason string) error {
	f.notified <- notification{repo, status, reason}
	return nil
}

func (f *fakePasses) next(t *testing.T) notification {
	t.Helper()
	select {
	case n := <-f.notified:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
		return notification{}
	}
}

func TestRegistryLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFakePasses()
	r, err := NewRegistry(RegistryOptions{Pass: f.pass, Notify: f.notify, Capacity: 2})
	require.NoError(t, err)
	defer r.Close(ctx)

	// A final import needs a completed pre-import.
	require.ErrorIs(t, r.StartImport(ctx, "group/a"), enqueuer.ErrPreImportFailed)
	require.NoError(t, r.StartPreImport(ctx, "group/a"))
	st, err := r.ImportStatus(ctx, "group/a")
	require.NoError(t, err)
	require.Equal(t, enqueuer.StatusPreImportInProgress, st.Status)
	require.ErrorIs(t, r.StartPreImport(ctx, "group/a"), enqueuer.ErrImportInProgress)
	require.NoError(t, r.StartPreImport(ctx, "group/b"))
	// Full: the registry answers 429.
	require.ErrorIs(t, r.StartPreImport(ctx, "group/c"), enqueuer.ErrTooManyImports)
	require.Equal(t, 2, r.Running())

	f.ch("group/a") <- nil
	require.Equal(t, notification{"group/a", enqueuer.NotifyPreImportComplete, ""}, f.next(t))
	require.NoError(t, r.StartImport(ctx, "group/a"))
	f.ch("group/a") <- nil
	require.Equal(t, notification{"group/a", enqueuer.NotifyImportComplete, ""}, f.next(t))
	st, _ = r.ImportStatus(ctx, "group/a")
	require.Equal(t, enqueuer.StatusImportComplete, st.Status)
	require.ErrorIs(t, r.StartPreImport(ctx, "group/a"), enqueuer.ErrNative)

	// A failed pass is reported with its reason; a retry may start again.
	f.ch("group/b") <- errors.New("disk on fire")
	n := f.next(t)
	require.Equal(t, enqueuer.NotifyPreImportFailed, n.status)
	require.Equal(t, "disk on fire", n.reason)
	require.NoError(t, r.StartPreImport(ctx, "group/b"))

	// A cancelled pass sends nothing.
	require.NoError(t, r.CancelImport(ctx, "group/b"))
	require.Eventually(t, func() bool {
		st, _ := r.ImportStatus(ctx, "group/b")
		return st.Status == enqueuer.StatusPreImportCanceled
	}, 10*time.Second, time.Millisecond)
	require.ErrorIs(t, r.CancelImport(ctx, "group/b"), enqueuer.ErrRegistryNotFound)
	select {
	case n := <-f.notified:
		t.Fatalf("unexpected notification %+v", n)
	default:
	}

	_, err = r.ImportStatus(ctx, "group/unknown")
	require.ErrorIs(t, err, enqueuer.ErrRegistryNotFound)
	require.Error(t, r.StartPreImport(ctx, "Group/../x"))
}

func TestRegistryCloseEndsEverything(t *testing.T) {
	ctx := context.Background()
	f := newFakePasses()
	r, err := NewRegistry(RegistryOptions{Pass: f.pass, Notify: f.notify})
	require.NoError(t, err)
	for _, p := range []string{"a/one", "a/two", "a/three"} {
		require.NoError(t, r.StartPreImport(ctx, p))
	}
	require.NoError(t, r.Close(ctx))
	require.Zero(t, r.Running())
	require.ErrorIs(t, r.StartPreImport(ctx, "a/four"), enqueuer.ErrRegistryUnavailable)
}

func TestRegistryRetriesNotifications(t *testing.T) {
	ctx := context.Background()
	f := newFakePasses()
	var mu sync.Mutex
	calls := 0
	done := make(chan struct{})
	notify := func(context.Context, string, string, string) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 3 {
			return errors.New("enqueuer briefly unreachable")
		}
		close(done)
		return nil
	}
	r, err := NewRegistry(RegistryOptions{Pass: f.pass, Notify: notify})
	require.NoError(t, err)
	defer r.Close(ctx)
	require.NoError(t, r.StartPreImport(ctx, "group/a"))
	f.ch("group/a") <- nil
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("notification never delivered")
	}
	mu.Lock()
	require.Equal(t, 3, calls)
	mu.Unlock()
}

func TestNewRegistryValidates(t *testing.T) {
	_, err := NewRegistry(RegistryOptions{})
	require.Error(t, err)
	f := newFakePasses()
	_, err = NewRegistry(RegistryOptions{Pass: f.pass, Notify: f.notify, Capacity: -1})
	require.Error(t, err)
}
