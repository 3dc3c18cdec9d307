package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
	"github.com/opencontainers/go-digest"
)

// Verification is the final check of an import: the destination bucket
// holds exactly the expected blobs with the right content, and the metadata
// sink holds exactly the expected repositories, manifests, blob links and
// tags.
type Verification struct {
	// Expected is how many distinct blobs the destination must hold;
	// Objects how many files it holds.
	Expected, Objects int
	// Verified counts blobs whose content hashed to their digest.
	Verified int
	// Missing, Unexpected and Corrupt count expected blobs that are not
	// there, files that should not be there (including leftover temporary
	// files of half-written uploads) and blobs whose content does not hash
	// to their digest or whose size is wrong.
	Missing, Unexpected, Corrupt int
	// Examples names a few of the problems.
	Examples []string
	// SinkDiff describes how the sink differs from what is expected ("" if
	// it does not).
	SinkDiff string
}

// OK reports whether nothing is missing, unexpected, corrupt or different.
func (v Verification) OK() bool {
	return v.Missing == 0 && v.Unexpected == 0 && v.Corrupt == 0 && v.SinkDiff == "" && v.Verified == v.Expected
}

// maxExamples bounds Verification.Examples.
const maxExamples = 10

// verify checks the destination directory dstDir (a fileblob root holding
// layout l) and the sink state against want.
func verify(ctx context.Context, dstDir string, l transfer.Layout, want, got transfertest.State) (Verification, error) {
	var v Verification
	// found is keyed by digest hex (a substring of the digest: no copy).
	found := map[string]bool{}
	for _, rs := range want {
		for _, d := range rs.Blobs {
			found[d.Encoded()] = false
		}
	}
	v.Expected = len(found)

	var mu sync.Mutex
	problem := func(counter *int, format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		*counter++
		if len(v.Examples) < maxExamples {
			v.Examples = append(v.Examples, fmt.Sprintf(format, args...))
		}
	}
	var verified atomic.Int64
	buffers := sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	err := filepath.WalkDir(dstDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return gctx.Err()
		}
		v.Objects++
		rel, err := filepath.Rel(dstDir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		hex := digestFromBlobPath(key)
		seen, expected := found[hex]
		if !expected || seen || key != l.BlobKey(digest.Digest("sha256:"+hex)) {
			problem(&v.Unexpected, "unexpected object %s", key)
			return nil
		}
		found[hex] = true
		g.Go(func() error {
			bp := buffers.Get().(*[]byte)
			defer buffers.Put(bp)
			got, err := hashFile(path, *bp)
			if err != nil {
				return err
			}
			if got != hex {
				problem(&v.Corrupt, "object %s holds content hashing to %s", key, got)
				return nil
			}
			verified.Add(1)
			return nil
		})
		return nil
	})
	if gerr := g.Wait(); err == nil {
		err = gerr
	}
	if err != nil {
		return v, fmt.Errorf("scale: verifying %s: %w", dstDir, err)
	}
	v.Verified = int(verified.Load())
	for hex, seen := range found {
		if !seen {
			problem(&v.Missing, "blob sha256:%s missing", hex)
		}
	}
	v.SinkDiff = transfertest.Diff(want, got)
	return v, nil
}

// digestFromBlobPath returns the hex digest in .../<hex>/data.
func digestFromBlobPath(key string) string {
	dir, _ := strings.CutSuffix(key, "/data")
	return dir[strings.LastIndexByte(dir, '/')+1:]
}

func hashFile(path string, buf []byte) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// summarizeDiff keeps the first lines of a long diff.
func summarizeDiff(diff string, lines int) string {
	parts := strings.SplitAfterN(diff, "\n", lines+1)
	if len(parts) <= lines {
		return diff
	}
	return strings.Join(parts[:lines], "") + fmt.Sprintf("... (%d more lines)\n", strings.Count(parts[lines], "\n"))
}
