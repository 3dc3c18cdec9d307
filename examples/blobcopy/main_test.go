package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunDefault(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(context.Background(), nil, &out))
	s := out.String()
	for _, want := range []string{
		"generated a registry in ",
		"pre-import: 7 repositories, 0 failed, 0 too large; 48 manifests, 0 tags; blobs 121 copied",
		"final-import: 7 repositories, 0 failed, 0 too large; 0 manifests, 60 tags; blobs 0 copied",
		"group-00/project-000/qa/cache",
		"verified: all 169 blobs at the destination match their digests",
	} {
		require.Contains(t, s, want)
	}
}

func TestRunPoliciesDryRunAndOwnBuckets(t *testing.T) {
	dst := t.TempDir()
	var out strings.Builder
	require.NoError(t, run(context.Background(), []string{
		"-dst", "file://" + filepath.ToSlash(dst), "-tags", "semver:2", "-max-tags", "15", "-untagged", "-dry-run", "-seed", "1",
	}, &out))
	s := out.String()
	require.Contains(t, s, "(dry run)")
	require.Contains(t, s, "too large: group-00/project-006 has 22 tags (limit 15)")
	require.NotContains(t, s, "verified:")
	entries, _ := filepath.Glob(filepath.Join(dst, "*"))
	require.Empty(t, entries, "a dry run wrote to the destination")
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-tags", "bogus"}, {"-tags", "recent:-1"}, {"-root", "../up"}, {"-src", "nosuchscheme://x"}} {
		var out strings.Builder
		require.Error(t, run(context.Background(), args, &out), "args %v", args)
	}
}
