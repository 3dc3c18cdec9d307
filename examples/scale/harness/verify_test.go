package harness

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// The final check notices every way a destination can be wrong.
func TestVerifyFindsEveryProblem(t *testing.T) {
	ctx := context.Background()
	layout, err := transfer.NewLayout("")
	require.NoError(t, err)
	dir := t.TempDir()
	write := func(key string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(key))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
	var blobs []digest.Digest
	for _, s := range []string{"one", "two", "three", "four"} {
		d := digest.FromBytes([]byte(s))
		blobs = append(blobs, d)
		write(layout.BlobKey(d), []byte(s))
	}
	sorted := slices.Clone(blobs)
	slices.Sort(sorted) // States hold sorted digests
	want := transfertest.State{"group/app": {Blobs: sorted, Tags: map[string]digest.Digest{}}}

	v, err := verify(ctx, dir, layout, want, want)
	require.NoError(t, err)
	require.True(t, v.OK(), v.Summary())
	require.Equal(t, 4, v.Verified)

	// One blob lost, one corrupt, a stray object, a half-written upload
	// left next to a blob, and a sink that lacks a tag.
	require.NoError(t, os.Remove(filepath.Join(dir, filepath.FromSlash(layout.BlobKey(blobs[0])))))
	write(layout.BlobKey(blobs[1]), []byte("tw0"))
	write(layout.BlobKey(digest.FromBytes([]byte("extra"))), []byte("extra"))
	write(layout.BlobKey(blobs[2])+".17a3b.tmp", []byte("thr"))
	got := transfertest.State{"group/app": {Blobs: sorted, Tags: map[string]digest.Digest{"latest": blobs[3]}}}

	v, err = verify(ctx, dir, layout, want, got)
	require.NoError(t, err)
	require.False(t, v.OK())
	require.Equal(t, 1, v.Missing, v.Summary())
	require.Equal(t, 1, v.Corrupt, v.Summary())
	require.Equal(t, 2, v.Unexpected, v.Summary())
	require.Equal(t, 2, v.Verified)
	require.Contains(t, v.SinkDiff, `unexpected tag "latest"`)
	require.Contains(t, v.Summary(), "sink differs")
}
