package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestBackfillRuns(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), &out, options{rows: 50_000})
	if errors.Is(err, storagetest.ErrUnavailable) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	t.Log("\n" + out.String())
	require.NoError(t, err)
	require.Contains(t, out.String(), "progress 100.0%")
	require.Contains(t, out.String(), "verified: all 50000 rows")
}
