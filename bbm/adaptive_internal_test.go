package bbm

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSizerOffKeepsBatchSize(t *testing.T) {
	s := newSizer(AdaptiveOptions{Off: true}.withDefaults())
	m := &Migration{ID: 1, BatchSize: 500}
	require.Equal(t, 500, s.size(m))
	require.Equal(t, 500, s.observe(m, 500, time.Hour, false))
	require.Equal(t, 500, s.size(m))
}

// A table that processes 10,000 keys per second: with a 200ms target the
// size must settle at 2,000 keys, never more than doubling per job.
func TestSizerConvergesWithBoundedGrowth(t *testing.T) {
	s := newSizer(AdaptiveOptions{TargetJobDuration: 200 * time.Millisecond, MaxBatchSize: 100_000}.withDefaults())
	m := &Migration{ID: 1, BatchSize: 100}
	const rate = 10_000.0 // keys per second
	prev := s.size(m)
	require.Equal(t, 100, prev)
	for range 20 {
		d := time.Duration(float64(prev) / rate * float64(time.Second))
		next := s.observe(m, int64(prev), d, false)
		require.LessOrEqual(t, next, 2*prev, "grew more than MaxGrowth")
		require.Equal(t, next, s.size(m))
		prev = next
	}
	require.InDelta(t, 2000, prev, 1)
}

func TestSizerShrinksWhenSlowAndClamps(t *testing.T) {
	s := newSizer(AdaptiveOptions{TargetJobDuration: 100 * time.Millisecond}.withDefaults())
	m := &Migration{ID: 7, BatchSize: 1000} // default bounds: 100 .. 10,000
	// 1000 keys in 10s: 100 keys/s wants 10 keys, but shrinking is bounded
	// by MaxGrowth² per job and clamped at MinBatchSize.
	require.Equal(t, 250, s.observe(m, 1000, 10*time.Second, false))
	require.Equal(t, 100, s.observe(m, 250, 10*time.Second, false))
	require.Equal(t, 100, s.observe(m, 100, 10*time.Second, false))
	// Very fast jobs: growth is bounded per job and clamped at the max.
	for range 20 {
		s.observe(m, int64(s.size(m)), time.Microsecond, false)
	}
	require.Equal(t, 10_000, s.size(m))
	// A timeout halves.
	require.Equal(t, 5000, s.observe(m, 10_000, time.Minute, true))
	s.forget(7)
	require.Equal(t, 1000, s.size(m))
}

func TestSizerSmoothsOutliers(t *testing.T) {
	s := newSizer(AdaptiveOptions{TargetJobDuration: time.Second, Smoothing: 0.2}.withDefaults())
	m := &Migration{ID: 1, BatchSize: 1000}
	for range 10 {
		s.observe(m, 1000, time.Second, false) // 1000 keys/s: on target
	}
	require.Equal(t, 1000, s.size(m))
	// One job 10× slower moves the size by far less than 10×.
	next := s.observe(m, 1000, 10*time.Second, false)
	require.Greater(t, next, 700)
}
