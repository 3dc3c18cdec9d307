package importserver_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/memblob"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// gatedRepositories answers Exists only once the test lets it, so that a
// test can see what runs while a first start is being checked.
type gatedRepositories struct {
	asked  chan string
	answer chan gatedAnswer
}

type gatedAnswer struct {
	exists bool
	err    error
	panic  bool
}

func newGatedRepositories() *gatedRepositories {
	return &gatedRepositories{asked: make(chan string, 16), answer: make(chan gatedAnswer, 16)}
}

func (g *gatedRepositories) Exists(ctx context.Context, path string) (bool, error) {
	g.asked <- path
	select {
	case a := <-g.answer:
		if a.panic {
			panic("the host's existence check panicked")
		}
		return a.exists, a.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// firstStartFixture is a fixture whose existence checks are gated and
// whose ImportEnd events are collected.
type firstStartFixture struct {
	*fixture
	repos *gatedRepositories
	mu    sync.Mutex
	ends  []importserver.ImportEvent
}

func newFirstStartFixture(t *testing.T, mod func(*importserver.Config)) *firstStartFixture {
	f := &firstStartFixture{repos: newGatedRepositories()}
	f.fixture = newFixture(t, func(c *importserver.Config) {
		c.Repositories = f.repos
		c.Observer = importserver.ObserverFuncs{OnImportEnd: func(_ context.Context, e importserver.ImportEvent) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.ends = append(f.ends, e)
		}}
		if mod != nil {
			mod(c)
		}
	})
	return f
}

// startAsync sends a pre-import start and returns its answer's code later
// (0 when the server dropped the connection).
func (f *firstStartFixture) startAsync(t *testing.T, path string) <-chan int {
	code := make(chan int, 1)
	go func() { // no require here: a dropped connection answers 0
		req, _ := http.NewRequest(http.MethodPut, f.http.URL+"/gitlab/v1/import/"+path+"/?import_type=pre", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			code <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code <- resp.StatusCode
	}()
	return code
}

func (f *firstStartFixture) endsOf(path string) []importserver.ImportEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []importserver.ImportEvent
	for _, e := range f.ends {
		if e.Import.Path == path {
			out = append(out, e)
		}
	}
	return out
}

// A repository's first pre-import runs while its existence is checked,
// not after: the importer is called before Exists answers, and the
// outcome is recorded and notified as usual once it does.
func TestFirstPreImportRunsWhileExistenceIsChecked(t *testing.T) {
	f := newFirstStartFixture(t, nil)
	f.im.Hold("group/image")
	code := f.startAsync(t, "group/image")
	require.Equal(t, "group/image", <-f.repos.asked)
	require.Eventually(t, func() bool { return f.im.Calls(transfer.PreImport, "group/image") == 1 }, 5*time.Second, time.Millisecond,
		"the pre-import starts before the existence check answers")
	f.im.Release("group/image") // it ends before the check: its outcome waits for it
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, importserver.StatusPreImportInProgress, f.get(t, "group/image").Status, "no outcome before the check answered")
	f.repos.answer <- gatedAnswer{exists: true}
	require.Equal(t, http.StatusAccepted, <-code)
	f.coord.waitFor(t, "group/image", importserver.StatusPreImportComplete)
	ends := f.endsOf("group/image")
	require.Len(t, ends, 1)
	require.True(t, ends[0].Recorded)
	require.False(t, ends[0].Abandoned)
}

// A repository that is not found, or whose check fails or panics, gets
// the answer it always got; its run is stopped and abandoned: no record,
// no notification, capacity free again.
func TestFirstPreImportOfMissingRepositoryIsAbandoned(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer gatedAnswer
		code   int
	}{
		{"not found", gatedAnswer{}, http.StatusNotFound},
		{"check failed", gatedAnswer{err: errors.New("storage unavailable")}, http.StatusServiceUnavailable},
		{"check panicked", gatedAnswer{panic: true}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFirstStartFixture(t, func(cfg *importserver.Config) { cfg.MaxConcurrentImports = 1 })
			f.im.Hold("no/such")
			code := f.startAsync(t, "no/such")
			<-f.repos.asked
			require.Eventually(t, func() bool { return f.im.Calls(transfer.PreImport, "no/such") == 1 }, 5*time.Second, time.Millisecond)
			f.repos.answer <- c.answer
			if got := <-code; c.code != 0 {
				require.Equal(t, c.code, got)
				// Answered only once the run is gone: a retry must not find it.
				_, err := f.store.Get(context.Background(), "no/such")
				require.ErrorIs(t, err, importserver.ErrNotFound, "no record when the answer arrives")
				require.Len(t, f.endsOf("no/such"), 1)
			}
			require.Eventually(t, func() bool { return len(f.endsOf("no/such")) == 1 }, 5*time.Second, time.Millisecond,
				"the held run is stopped, not left waiting")
			e := f.endsOf("no/such")[0]
			require.True(t, e.Abandoned)
			require.False(t, e.Recorded)
			_, err := f.store.Get(context.Background(), "no/such")
			require.ErrorIs(t, err, importserver.ErrNotFound, "no record left")

			// Its unit of capacity is free: the next start runs.
			next := f.startAsync(t, "group/image")
			<-f.repos.asked
			f.repos.answer <- gatedAnswer{exists: true}
			require.Equal(t, http.StatusAccepted, <-next)
			f.coord.waitFor(t, "group/image", importserver.StatusPreImportComplete)
			for _, n := range f.store.(*importservertest.Store).Notifications() {
				require.NotEqual(t, "no/such", n.Path, "an abandoned run is never notified")
			}
		})
	}
}

// A native repository is never pre-imported (Native is asked first), and
// CheckBeforeFirstStart keeps the importer waiting for Exists.
func TestFirstPreImportWaitsWhenItMust(t *testing.T) {
	t.Run("native", func(t *testing.T) {
		f := newFirstStartFixture(t, nil)
		code, _, _ := f.call(t, http.MethodPut, "native/one", "import_type=pre")
		require.Equal(t, http.StatusOK, code)
		require.Zero(t, f.im.Calls(transfer.PreImport, "native/one"))
		require.Empty(t, f.repos.asked)
	})
	t.Run("CheckBeforeFirstStart", func(t *testing.T) {
		f := newFirstStartFixture(t, func(c *importserver.Config) { c.CheckBeforeFirstStart = true })
		code := f.startAsync(t, "group/image")
		<-f.repos.asked
		time.Sleep(20 * time.Millisecond)
		require.Zero(t, f.im.Calls(transfer.PreImport, "group/image"), "no import before the check answered")
		f.repos.answer <- gatedAnswer{exists: true}
		require.Equal(t, http.StatusAccepted, <-code)
		f.coord.waitFor(t, "group/image", importserver.StatusPreImportComplete)
	})
}

// writeCounter is a transfer.Sink that counts writes.
type writeCounter struct {
	transfer.Sink
	writes atomic.Int64
}

func (c *writeCounter) CreateRepository(ctx context.Context, repo string) error {
	c.writes.Add(1)
	return c.Sink.CreateRepository(ctx, repo)
}

func (c *writeCounter) LinkBlob(ctx context.Context, repo string, blob ocispec.Descriptor) error {
	c.writes.Add(1)
	return c.Sink.LinkBlob(ctx, repo, blob)
}

func (c *writeCounter) PutManifest(ctx context.Context, repo string, m *transfer.Manifest) error {
	c.writes.Add(1)
	return c.Sink.PutManifest(ctx, repo, m)
}

// A real Importer that plans while the check runs waits at its plan for
// the check: when the repository is then not found (here: the host's
// check disagrees with the source), nothing reaches the sink.
func TestAbandonedFirstPreImportWritesNothing(t *testing.T) {
	ctx := context.Background()
	src := gocloudblob.New(memblob.OpenBucket(nil))
	gen, err := transfertest.Generate(ctx, src, transfertest.SmallSpec(1))
	require.NoError(t, err)
	repo := smallRepository(gen)
	dst := gocloudblob.New(memblob.OpenBucket(nil))
	tr, err := transfer.New(src, dst, transfer.Options{})
	require.NoError(t, err)
	sink := &writeCounter{Sink: transfer.NewLayoutSink(dst, gen.Layout, transfer.RetryPolicy{})}
	// The check answers once the importer has planned (it is then held at
	// its plan): a fixed pause could end before the plan on a slow machine,
	// and the test would pass without the hold being exercised.
	planned := make(chan struct{})
	var once sync.Once
	im, err := transfer.NewImporter(src, tr, sink, transfer.ImportOptions{Progress: func(p transfer.Progress) {
		if p.Kind == transfer.EventRepositoryPlanned {
			once.Do(func() { close(planned) })
		}
	}})
	require.NoError(t, err)
	f := newFixture(t, func(c *importserver.Config) {
		c.Importer = im
		c.Repositories = importserver.RepositoriesFunc(func(ctx context.Context, p string) (bool, error) {
			select {
			case <-planned:
			case <-time.After(10 * time.Second):
				t.Error("the importer never planned while the check ran")
			}
			return p != repo, nil
		})
	})
	code, _, _ := f.call(t, http.MethodPut, repo, "import_type=pre")
	require.Equal(t, http.StatusNotFound, code)
	require.Zero(t, sink.writes.Load(), "the run wrote nothing")
	_, err = f.store.Get(ctx, repo)
	require.ErrorIs(t, err, importserver.ErrNotFound)
}
