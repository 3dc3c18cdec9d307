package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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
	require.NoError(t, run(sampleArgs(), &out))

	golden := filepath.Join("testdata", "output.golden")
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(out.String()), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), out.String())
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
		{"stray argument", append(sampleArgs(), "extra"), `unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := run(tt.args, &out)
			require.ErrorContains(t, err, tt.want)
			require.Empty(t, out.String())
		})
	}
}
