package importserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"gocloud.dev/blob"

	"github.com/ferryhq/ferry/transfer"
)

// LayoutRepositories returns the Repositories of a distribution storage
// layout in bucket b (the Importer's source): a repository exists when its
// directory holds _manifests, _layers or _uploads, as
// transfer.LayoutReader.Repositories decides. Each call lists one
// directory level.
func LayoutRepositories(b *blob.Bucket, layout transfer.Layout) Repositories {
	return RepositoriesFunc(func(ctx context.Context, path string) (bool, error) {
		if err := ValidatePath(path); err != nil {
			return false, err
		}
		it := b.List(&blob.ListOptions{Prefix: layout.RepositoryPrefix(path), Delimiter: "/"})
		for {
			obj, err := it.Next(ctx)
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			if err != nil {
				return false, fmt.Errorf("importserver: listing repository %s: %w", path, err)
			}
			if !obj.IsDir {
				continue
			}
			switch name(strings.TrimSuffix(obj.Key, "/")) {
			case "_manifests", "_layers", "_uploads":
				return true, nil
			}
		}
	})
}
