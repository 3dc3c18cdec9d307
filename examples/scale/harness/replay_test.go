package harness

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
)

// Two 10-tag repositories one after the other at capacity 1: a 10s import
// (8s pre-import, 2s final phase), then one from 10s to 20s. The replay
// rebuilds where each stood at every sample: unknown until the first
// finished, then exact.
func TestReplayForecast(t *testing.T) {
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	rec := func(id int64, path string, begin int) enqueuer.Repository {
		return enqueuer.Repository{ID: id, Path: path, TagCount: 10, State: enqueuer.StateImportDone, CreatedAt: start.Add(time.Duration(id) * time.Millisecond),
			PreImportingAt: at(begin), PreImportDoneAt: at(begin + 8), ImportingAt: at(begin + 8), ImportDoneAt: at(begin + 10)}
	}
	tl := Timeline{
		Started: start, Wall: 20 * time.Second, Capacity: 1,
		Records: []enqueuer.Repository{rec(2, "g/b", 10), rec(1, "g/a", 0)},
		Samples: []Sample{
			{Elapsed: 5 * time.Second, BlobsDone: 10},
			{Elapsed: 12 * time.Second, BlobsDone: 60, Settled: 1},
			{Elapsed: 15 * time.Second, BlobsDone: 90, Settled: 1, Progress: map[string]enqueuer.ImportProgress{
				"g/b": {Done: 1, Total: 3, Since: at(13)},
			}},
			{Elapsed: 20 * time.Second, BlobsDone: 100, Settled: 2},
		},
	}
	require.True(t, tl.HasProgress())
	r, err := ReplayForecast(context.Background(), tl, []float64{0.1, 0.5, 0.9}, false)
	require.NoError(t, err)
	require.Equal(t, []ETAPoint{
		{Progress: 0.1, At: 5 * time.Second, Actual: 15 * time.Second, Predicted: -1},
		{Progress: 0.5, At: 12 * time.Second, Actual: 8 * time.Second, Predicted: 8 * time.Second},
		{Progress: 0.9, At: 15 * time.Second, Actual: 5 * time.Second, Predicted: 5 * time.Second},
	}, r.ByBlobs)
	require.Equal(t, []ETAPoint{
		{Progress: 0.1, At: 12 * time.Second, Actual: 8 * time.Second, Predicted: 8 * time.Second},
		{Progress: 0.5, At: 12 * time.Second, Actual: 8 * time.Second, Predicted: 8 * time.Second},
	}, r.ByRepositories, "90% of two repositories is reached at the end only")
	require.Equal(t, 2, r.Samples)
	require.Zero(t, r.MeanError)

	// With the registry's progress: at 15s g/b has done a third of its
	// blobs in the 2s since its plan, so 4s more, then its 2s final
	// phase: 6s, where the measured 8s pre-import said 5s.
	r, err = ReplayForecast(context.Background(), tl, []float64{0.1, 0.5, 0.9}, true)
	require.NoError(t, err)
	require.Equal(t, ETAPoint{Progress: 0.9, At: 15 * time.Second, Actual: 5 * time.Second, Predicted: 6 * time.Second, Error: 0.2}, r.ByBlobs[2])

	_, err = ReplayForecast(context.Background(), Timeline{}, nil, false)
	require.Error(t, err)
}
