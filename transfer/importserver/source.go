package importserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry/transfer"
)

// LayoutRepositories returns the Repositories of a distribution storage
// layout in bucket b (the Importer's source): a repository exists when its
// directory holds _manifests, _layers or _uploads, as
// transfer.LayoutReader.Repositories decides. Each call lists one
// directory level.
func LayoutRepositories(b transfer.Bucket, layout transfer.Layout) Repositories {
	return RepositoriesFunc(func(ctx context.Context, path string) (bool, error) {
		if err := ValidatePath(path); err != nil {
			return false, err
		}
		for obj, err := range transfer.ListAll(ctx, b, transfer.ListOptions{Prefix: layout.RepositoryPrefix(path), Delimiter: "/"}) {
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
		return false, nil
	})
}
