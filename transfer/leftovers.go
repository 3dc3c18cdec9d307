package transfer

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// What a crash mid-copy leaves behind
//
// A write is committed only by Close, and Ferry closes only verified
// content, so a crash never leaves a blob under its key. What it can leave
// depends on the driver:
//
//   - gcsblob and s3blob: an unfinished upload session, which the service
//     discards and List never returns.
//   - fileblob: the temporary file the write was going into, named
//     "<key>.<hex>.tmp". By default it is in os.TempDir() (outside the
//     bucket); with fileblob's no_tmp_dir option it sits next to the key
//     ("blobs/sha256/ab/ab.../data.17f0c2a1b3c4d5e6.tmp"), where List
//     returns it.
//
// Ferry sweeps its own: before a streamed copy writes a blob into a
// fileblob directory, temporary files of that blob older than
// Options.LeftoverAge are removed, and SweepLeftovers removes every such
// file under a layout.

// leftoverRE matches the temporary files fileblob writers leave for the
// layout's data and link objects.
var leftoverRE = regexp.MustCompile(`^(data|link)\.[0-9a-f]+\.tmp$`)

// IsLeftover reports whether key is a temporary file that an interrupted
// write of a layout object (a blob's data or a link) left behind.
func IsLeftover(key string) bool { return leftoverRE.MatchString(path.Base(key)) }

// SweepLeftovers removes the temporary files that interrupted writes left
// under layout l in b (see IsLeftover) and that are older than olderThan
// (so that writes in progress are spared), and returns how many it
// removed. It lists the whole layout, so run it once after a crash rather
// than on every import.
func SweepLeftovers(ctx context.Context, b *blob.Bucket, l Layout, olderThan time.Duration) (int, error) {
	removed := 0
	cutoff := time.Now().Add(-olderThan)
	it := b.List(&blob.ListOptions{Prefix: l.Root()})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return removed, nil
		}
		if err != nil {
			return removed, err
		}
		if o.IsDir || !IsLeftover(o.Key) || o.ModTime.After(cutoff) {
			continue
		}
		if err := b.Delete(ctx, o.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return removed, err
		}
		removed++
	}
}

// fileOf returns a BeforeWrite hook that records the directory of the
// writer's temporary file into *dir. Only fileblob exposes an *os.File;
// other drivers leave *dir empty, so sweeping costs them nothing.
func fileOf(dir *string) func(as func(any) bool) error {
	return func(as func(any) bool) error {
		var f *os.File
		if as(&f) && f != nil {
			*dir = filepath.Dir(f.Name())
		}
		return nil
	}
}

// sweepNear removes stale temporary files of key that earlier interrupted
// writes left in dir, the directory of this write's own temporary file.
func (t *transferer) sweepNear(ctx context.Context, dir, key string) {
	// Only temporary files next to the key are in the bucket; the ones in
	// os.TempDir() are not Ferry's to judge.
	if dir == "" || !strings.HasSuffix(filepath.ToSlash(dir), path.Dir(key)) {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-t.opts.LeftoverAge)
	base := path.Base(key) + "."
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), base) || !leftoverRE.MatchString(e.Name()) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				t.log.InfoContext(ctx, "transfer: removed a leftover of an interrupted write", "file", filepath.Join(dir, e.Name()))
			}
		}
	}
}
