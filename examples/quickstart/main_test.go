package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuickstartRuns(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, options{}))
	t.Log("\n" + out.String())
	require.Contains(t, out.String(), "done in")
	require.Contains(t, out.String(), "- blobs: fileblob bucket")
}
