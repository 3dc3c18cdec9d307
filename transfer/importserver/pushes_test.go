package importserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/faultblob"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// timedImporter records when each final import ran.
type timedImporter struct {
	importserver.Importer
	mu         sync.Mutex
	start, end time.Time
}

func (t *timedImporter) Import(ctx context.Context, repos ...string) (*transfer.Report, error) {
	t.mu.Lock()
	t.start = time.Now()
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.end = time.Now()
		t.mu.Unlock()
	}()
	return t.Importer.Import(ctx, repos...)
}

// pushRecord is one push the registry's /v2/ handler carried out, timed on
// the server side (after WriteGuard let it through).
type pushRecord struct {
	tag        string
	digest     digest.Digest
	native     bool // written to the destination: the repository was imported
	start, end time.Time
}

// The proof that WriteGuard keeps a final import consistent: pushers keep
// pushing manifests and tags (a multi-step write, with a pause half-way)
// into the repository while it is pre-imported, final-imported (with a
// real transfer.Importer over slow storage) and afterwards. Pushes during
// the final import are refused with 503 + Retry-After and leave nothing
// anywhere; every push let through before it finished before the import
// started copying and is in the destination; pushes after it succeed
// (into the new storage); the destination verifies.
func TestConcurrentPushesDuringFinalImport(t *testing.T) {
	ctx := context.Background()
	srcRaw, dst := transfertest.NewMemBucket(), transfertest.NewMemBucket()
	gen, err := transfertest.Generate(ctx, srcRaw, transfertest.SmallSpec(3))
	require.NoError(t, err)
	layout := gen.Layout
	repo, base := imageOf(t, gen)

	// The importer reads the source through 2ms of latency per operation.
	src, _ := faultblob.Wrap(srcRaw, faultblob.Options{Latency: 2 * time.Millisecond})
	tr, err := transfer.New(src, dst, transfer.Options{})
	require.NoError(t, err)
	real, err := transfer.NewImporter(src, tr, transfer.NewLayoutSink(dst, layout, transfer.RetryPolicy{}), transfer.ImportOptions{})
	require.NoError(t, err)
	timed := &timedImporter{Importer: real}

	coord := newCoordinator(t)
	store := newMemStore()
	cfg := baseConfig(t, store, timed, coord.url())
	cfg.Repositories = importserver.LayoutRepositories(srcRaw, layout)
	cfg.Guard.RetryAfter = 2 * time.Second
	srv, err := importserver.New(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	defer srv.Shutdown(ctx)

	// The registry's /v2/ manifest PUT: writes into the old storage until
	// the repository is imported, then into the new one.
	var mu sync.Mutex
	var done []pushRecord
	v2 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := pushRecord{start: time.Now(), tag: r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]}
		payload, _ := io.ReadAll(r.Body)
		rec.digest = digest.FromBytes(payload)
		m, err := transfer.ParseManifest(rec.digest, payload)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var target transfer.Bucket = srcRaw
		if imp, err := store.Get(r.Context(), repo); err == nil && imp.Status == importserver.StatusImportComplete {
			target, rec.native = dst, true
		}
		sink := transfer.NewLayoutSink(target, layout, transfer.RetryPolicy{})
		if err := sink.PutManifest(r.Context(), repo, m); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		time.Sleep(5 * time.Millisecond) // half-way
		if err := sink.Tag(r.Context(), repo, rec.tag, rec.digest); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		rec.end = time.Now()
		mu.Lock()
		done = append(done, rec)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	})
	api, guarded := srv.Handler(), srv.WriteGuard(v2)
	ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/") {
			guarded.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))

	code, _, _ := callAPI(t, ts.URL, http.MethodPut, repo, "import_type=pre", "Bearer "+secret, nil)
	require.Equal(t, http.StatusAccepted, code)
	coord.waitFor(t, repo, importserver.StatusPreImportComplete)

	type attempt struct {
		tag        string
		code       int
		retryAfter string
	}
	var amu sync.Mutex
	var attempts []attempt
	accepted := func(native bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range done {
			if r.native == native {
				n++
			}
		}
		return n
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := fmt.Sprintf("push-%d-%d", p, i)
				req, _ := http.NewRequest(http.MethodPut, ts.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(variant(t, base, tag)))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				amu.Lock()
				attempts = append(attempts, attempt{tag, resp.StatusCode, resp.Header.Get("Retry-After")})
				amu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	require.Eventually(t, func() bool { return accepted(false) >= 5 }, 10*time.Second, time.Millisecond)
	code, _, _ = callAPI(t, ts.URL, http.MethodPut, repo, "import_type=final", "Bearer "+secret, nil)
	require.Equal(t, http.StatusAccepted, code)
	coord.waitFor(t, repo, importserver.StatusImportComplete)
	require.Eventually(t, func() bool { return accepted(true) >= 5 }, 10*time.Second, time.Millisecond)
	close(stop)
	wg.Wait()

	refused := map[string]bool{}
	for _, a := range attempts {
		switch a.code {
		case http.StatusCreated:
		case http.StatusServiceUnavailable:
			require.Equal(t, "2", a.retryAfter)
			refused[a.tag] = true
		default:
			t.Fatalf("push %s: HTTP %d", a.tag, a.code)
		}
	}
	require.NotEmpty(t, refused, "pushes during the final import are refused")
	timed.mu.Lock()
	importStart, importEnd := timed.start, timed.end
	timed.mu.Unlock()
	t.Logf("final import ran %s; pushes: %d before, %d refused, %d after", importEnd.Sub(importStart).Round(time.Millisecond),
		accepted(false), len(refused), accepted(true))

	srcTags := readTags(t, srcRaw, layout, repo)
	dstTags := readTags(t, dst, layout, repo)
	for _, r := range done {
		require.True(t, r.end.Before(importStart) || r.start.After(importEnd),
			"push %s [%s, %s] overlaps the final import [%s, %s]", r.tag, r.start, r.end, importStart, importEnd)
		require.Equal(t, r.digest, dstTags[r.tag], "push %s is in the destination", r.tag)
		require.Equal(t, r.native, r.start.After(importEnd))
	}
	for tag := range refused {
		require.NotContains(t, srcTags, tag, "a refused push left nothing in the source")
		require.NotContains(t, dstTags, tag, "a refused push left nothing in the destination")
	}
	// Every tag of the source (original and pushed before) is in the
	// destination, and every blob there verifies.
	for tag, d := range srcTags {
		require.Equal(t, d, dstTags[tag], tag)
	}
	n, err := transfertest.CheckBlobs(ctx, dst, layout)
	require.NoError(t, err)
	require.Positive(t, n)
}

// imageOf picks a repository with a tagged image manifest and returns it
// with that manifest's payload (as the base of pushed variants).
func imageOf(t *testing.T, gen *transfertest.Registry) (string, map[string]any) {
	for _, r := range gen.Repositories {
		for _, m := range r.Manifests {
			if m.Config == "" || len(r.Tags) == 0 {
				continue
			}
			cfgType, layerType := transfertest.ConfigAndLayerTypes(m.MediaType)
			var layers []ocispec.Descriptor
			for _, l := range m.Layers {
				layers = append(layers, ocispec.Descriptor{MediaType: layerType, Digest: l, Size: gen.Blobs[l]})
			}
			payload := transfertest.ImageManifest(m.MediaType, ocispec.Descriptor{MediaType: cfgType, Digest: m.Config, Size: gen.Blobs[m.Config]}, layers...)
			var base map[string]any
			require.NoError(t, json.Unmarshal(payload, &base))
			return r.Name, base
		}
	}
	t.Fatal("no image manifest generated")
	return "", nil
}

// variant is base with an annotation naming tag: a new manifest digest
// over the same blobs.
func variant(t *testing.T, base map[string]any, tag string) []byte {
	m := map[string]any{}
	for k, v := range base {
		m[k] = v
	}
	m["annotations"] = map[string]string{"push": tag}
	p, err := json.Marshal(m)
	require.NoError(t, err)
	return p
}

// readTags reads the current tag links of repo.
func readTags(t *testing.T, b transfer.Bucket, layout transfer.Layout, repo string) map[string]digest.Digest {
	tags, err := transfer.NewLayoutReader(b, layout, transfer.RetryPolicy{}).Tags(context.Background(), repo)
	require.NoError(t, err)
	out := map[string]digest.Digest{}
	for _, tg := range tags {
		out[tg.Name] = tg.Digest
	}
	return out
}
