package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestMain(m *testing.M) { storagetest.Main(m) }

// The demo runs status, run and require through bbmcmd on a throwaway
// server and verifies every row.
func TestBackfillDemo(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), &out, options{rows: 50_000, parallelism: 2})
	if errors.Is(err, storagetest.ErrUnavailable) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	t.Log("\n" + out.String())
	require.NoError(t, err)
	for _, want := range []string{"$ backfill status", "0/~50000", "$ backfill run fill_checksum",
		"fill_checksum [##############################] 100.0% 50000/50000 rows", "$ backfill require fill_checksum",
		"all 1 migrations are finished", "verified: all 50000 rows"} {
		require.Contains(t, out.String(), want)
	}
}

// As the host's CLI: commands against an existing database.
func TestBackfillCommands(t *testing.T) {
	ctx := context.Background()
	url := storagetest.URL(t)
	term := true
	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, &out, options{rows: 20_000, databaseURL: url, command: args, parallelism: 1, terminal: &term})
		return out.String(), err
	}
	err := run(ctx, &bytes.Buffer{}, options{rows: 10, command: []string{"status"}})
	require.ErrorContains(t, err, "-database-url")
	out, err := cmd("status")
	require.NoError(t, err)
	require.Contains(t, out, "NAME")
	require.NotContains(t, out, "fill_checksum", "nothing registered yet")

	var setup bytes.Buffer
	require.NoError(t, run(ctx, &setup, options{rows: 20_000, databaseURL: url, setup: true, command: []string{"pause", "fill_checksum"}}))
	require.Contains(t, setup.String(), "registered migration")
	require.Contains(t, setup.String(), "fill_checksum: paused (paused)")
	_, err = cmd("run", "fill_checksum")
	require.ErrorIs(t, err, bbm.ErrInvalidTransition)
	_, err = cmd("resume", "fill_checksum")
	require.NoError(t, err)
	out, err = cmd("run", "fill_checksum")
	require.NoError(t, err)
	require.Contains(t, out, "100.0% 20000/20000 rows")
	out, err = cmd("status", "-json")
	require.NoError(t, err)
	require.Contains(t, out, `"status": "finished"`)
	_, err = cmd("wait", "fill_checksum")
	require.NoError(t, err)
	_, err = cmd("frobnicate")
	require.Error(t, err)
}
