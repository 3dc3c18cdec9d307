package transfer

import (
	"context"
	"path"
	"regexp"
	"time"
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
// Ferry sweeps its own: package transfer/gocloudblob removes temporary
// files of a key older than its Options.LeftoverAge when it writes that key
// into a fileblob directory, and SweepLeftovers removes every such file
// under a layout in any Bucket.

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
func SweepLeftovers(ctx context.Context, b Bucket, l Layout, olderThan time.Duration) (int, error) {
	removed := 0
	cutoff := time.Now().Add(-olderThan)
	for o, err := range ListAll(ctx, b, ListOptions{Prefix: l.Root()}) {
		if err != nil {
			return removed, err
		}
		if o.IsDir || !IsLeftover(o.Key) || o.ModTime.After(cutoff) {
			continue
		}
		if err := b.Delete(ctx, o.Key); err != nil && !isNotExist(err) {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
