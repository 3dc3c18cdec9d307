package storagetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/ferryhq/ferry/internal/childproc"
)

// initData fills s.data with a fresh cluster. initdb takes about two
// seconds, so the first run keeps a pristine cluster in the user's cache
// dir (per PostgreSQL version, OS user and initdb flags: bump v1 when they
// change) and later servers copy it, which
// takes a fraction of that. Without a usable cache dir it runs initdb.
func (s *Server) initData(ctx context.Context) error {
	cache := s.cachedCluster()
	if cache == "" {
		return s.initdb(ctx, s.data)
	}
	if _, err := os.Stat(filepath.Join(cache, "PG_VERSION")); err != nil {
		if err := s.fillCache(ctx, cache); err != nil {
			return s.initdb(ctx, s.data)
		}
	}
	// cp -a keeps the owner (the postgres user when we are root) and modes.
	if out, err := exec.CommandContext(ctx, "cp", "-a", cache, s.data).CombinedOutput(); err != nil {
		_ = os.RemoveAll(s.data)
		return s.initdb(ctx, s.data)
	} else if len(out) > 0 {
		return fmt.Errorf("storagetest: copying the cached cluster: %s", out)
	}
	return nil
}

func (s *Server) initdb(ctx context.Context, dir string) error {
	out, err := s.run(ctx, "initdb", "-D", dir, "-U", Superuser, "--auth=trust",
		"--no-sync", "-E", "UTF8", "--locale=C")
	if err != nil {
		return fmt.Errorf("%w: initdb failed: %v\n%s", ErrUnavailable, err, childproc.Tail(out, 15))
	}
	return nil
}

// cachedCluster is where the pristine cluster for this PostgreSQL version
// lives, or "" when there is no cache dir.
func (s *Server) cachedCluster() string {
	if os.Getenv("FERRY_PGTEST_NO_CACHE") != "" {
		return ""
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	uid := uidOf(s.cred)
	return filepath.Join(base, "ferry", fmt.Sprintf("pgtest-cluster-v1-pg%d-uid%d", versionOf(s.bin), uid))
}

// fillCache runs initdb in a temp dir (where the postgres user can write
// even when the cache is under root's home) and moves the result into
// place with a rename, so concurrent test binaries never see a half-made
// cluster.
func (s *Server) fillCache(ctx context.Context, cache string) error {
	parent := filepath.Dir(cache)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := childproc.TempDir(dirPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := chownTo(tmp, s.cred); err != nil {
		return err
	}
	if err := s.initdb(ctx, filepath.Join(tmp, "data")); err != nil {
		return err
	}
	staged, err := os.MkdirTemp(parent, "staged-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staged)
	if out, err := exec.CommandContext(ctx, "cp", "-a", filepath.Join(tmp, "data"), filepath.Join(staged, "data")).CombinedOutput(); err != nil {
		return fmt.Errorf("storagetest: staging the cluster cache: %v: %s", err, out)
	}
	if err := os.Rename(filepath.Join(staged, "data"), cache); err != nil {
		if _, statErr := os.Stat(filepath.Join(cache, "PG_VERSION")); statErr == nil {
			return nil // another binary won the race
		}
		return err
	}
	return nil
}
