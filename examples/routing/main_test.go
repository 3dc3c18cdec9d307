package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/internal/redistest"
)

var update = flag.Bool("update", false, "rewrite testdata/output.golden")

const sample = "../../routing/testdata/"

func sampleArgs() []string {
	return []string{
		"-workers", sample + "all_queues.yml",
		"-workers", sample + "ee_all_queues.yml",
		"-old", sample + "rules_before.yml",
		"-new", sample + "rules_after.json",
	}
}

func TestRunSample(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(context.Background(), sampleArgs(), &out))

	golden := filepath.Join("testdata", "output.golden")
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(out.String()), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), out.String())
}

// GitLab's own metadata (both files), a rules file with mistakes, and the
// queue selection with --negate.
func TestRunGitLabFiles(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	require.NoError(t, os.WriteFile(rules, []byte(`
- ['feature_category=global_search&urgency=throttled ', elasticsearch]
- [feature_category=global_search&urgency=throttled, other]
- ['*', default]
`), 0o600))
	args := []string{
		"-workers", sample + "gitlab/all_queues.yml", "-workers", sample + "gitlab/ee_all_queues_subset.yml",
		"-old", sample + "rules_before.yml", "-new", rules,
	}
	var out strings.Builder
	require.NoError(t, run(context.Background(), append(args, "-negate"), &out))
	got := out.String()
	require.Contains(t, got, "616 workers from all_queues.yml, ee_all_queues_subset.yml (2 of them GitLab's dummy entries, never routed)")
	require.Contains(t, got, `rule 0 (line 2): selector "feature_category=global_search&urgency=throttled ": offset 48: trailing-text`)
	require.Contains(t, got, "rule 1 (line 3): unreachable")
	require.Contains(t, got, "== sidekiq-cluster --queue-selector --negate 'feature_category=global_search&urgency=throttled': 600 queues ==\n")
	require.Contains(t, got, "\nmailers (1 worker)\n  ActionMailer::MailDeliveryJob\n", "the dummy stays on its queue")

	out.Reset()
	err := run(context.Background(), append(args, "-strict"), &out)
	require.ErrorContains(t, err, "(strict mode)")
}

// The dry run counts the jobs that would move and writes nothing; -move
// moves them.
func TestRunRedis(t *testing.T) {
	ctx := context.Background()
	srv := redistest.New(t)
	c := redis.NewClient(srv.Options())
	t.Cleanup(func() { _ = c.Close() })
	for i := range 5 {
		for _, w := range [][2]string{{"ElasticCommitIndexerWorker", "elastic_commit_indexer"}, {"Elastic::MigrationWorker", "cronjob:elastic_migration"}, {"PostReceive", "post_receive"}} {
			raw := fmt.Sprintf(`{"class":%q,"queue":%q,"args":[%d],"jid":"j%d"}`, w[0], w[1], i, i)
			require.NoError(t, c.LPush(ctx, "resque:gitlab:queue:"+w[1], raw).Err())
		}
	}
	require.NoError(t, c.ZAdd(ctx, "resque:gitlab:retry", redis.Z{Score: 1, Member: `{"class":"ElasticDeleteProjectWorker","queue":"elastic_delete_project","jid":"r1"}`}).Err())
	args := append(sampleArgs(), "-redis-url", "unix://"+srv.Addr(), "-namespace", "resque:gitlab:", "-selector", "")

	var out strings.Builder
	require.NoError(t, run(ctx, args, &out))
	require.Contains(t, out.String(), "== Jobs in Redis that would move (dry run; -move moves them) ==\n11 jobs would move in 1 pass")
	require.Contains(t, out.String(), "  resque:gitlab:queue:elastic_commit_indexer: ElasticCommitIndexerWorker elastic_commit_indexer -> elasticsearch: 5\n")
	require.Contains(t, out.String(), "  resque:gitlab:retry: ElasticDeleteProjectWorker elastic_delete_project -> elasticsearch: 1\n")
	require.Equal(t, int64(0), c.LLen(ctx, "resque:gitlab:queue:elasticsearch").Val())

	out.Reset()
	require.NoError(t, run(ctx, append(args, "-move", "-rate", "0"), &out))
	require.Contains(t, out.String(), "11 jobs moved in 2 passes")
	require.Contains(t, out.String(), "done: nothing left to move")
	require.Equal(t, int64(10), c.LLen(ctx, "resque:gitlab:queue:elasticsearch").Val())
	require.Equal(t, int64(5), c.LLen(ctx, "resque:gitlab:queue:post_receive").Val())
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	badRules := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(badRules, []byte(`[["urgency=high", "fast"], ["colour=red", null]]`), 0o600))
	badWorkers := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(badWorkers, []byte("- name: a\n  weight: heavy\n"), 0o600))

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing workers file", []string{"-workers", filepath.Join(dir, "nope.yml")}, "nope.yml"},
		{"bad workers file", []string{"-workers", badWorkers}, `bad.yml: routing: all_queues entry 0 (name "a", line 2): key "weight"`},
		{"same file twice", append(sampleArgs(), "-workers", sample+"all_queues.yml"), "duplicate worker"},
		{"bad rules", append(sampleArgs(), "-new", badRules), `bad.json: routing: rule 1 (line 1): routing: selector "colour=red": offset 0: unknown attribute "colour"`},
		{"bad default queue", append(sampleArgs(), "-default-queue", "a b"), "invalid queue name"},
		{"bad selector", append(sampleArgs(), "-selector", "urgency="), `-selector: routing: selector "urgency="`},
		{"bad redis url", append(sampleArgs(), "-redis-url", "http://x"), "-redis-url"},
		{"stray argument", append(sampleArgs(), "extra"), `unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := run(context.Background(), tt.args, &out)
			require.ErrorContains(t, err, tt.want)
		})
	}
}
