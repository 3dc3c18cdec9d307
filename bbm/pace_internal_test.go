package bbm

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// job feeds the pacer a job of 10,000 rows at rate rows per second and
// returns the pause it asks for before the next one.
func paceJob(p *pacer, rate float64) time.Duration {
	const rows = 10_000
	p.observe(1, rows, time.Duration(rows/rate*float64(time.Second)))
	return p.pause(1)
}

func TestPacerNoPauseAtASteadyRate(t *testing.T) {
	p := newPacer()
	for range 50 {
		require.Zero(t, paceJob(p, 20_000))
	}
}

// A sudden 3x slowdown (the database got busier) spaces the next jobs out
// at once, in proportion to the slowdown and at most paceMaxRatio times a
// job's duration; when it lasts, the best rate fades and the pauses stop
// within some jobs instead of spacing out the rest of the migration.
func TestPacerBacksOffOnASlowdownThenSettles(t *testing.T) {
	p := newPacer()
	for range 10 {
		require.Zero(t, paceJob(p, 30_000))
	}
	var paused []time.Duration
	for range 40 {
		paused = append(paused, paceJob(p, 10_000))
	}
	require.Positive(t, paused[1], "no back-off within two jobs of a 3x slowdown")
	for _, d := range paused {
		require.LessOrEqual(t, d, time.Duration(paceMaxRatio)*time.Second, "pause beyond paceMaxRatio job durations")
	}
	require.Zero(t, paused[len(paused)-1], "a lasting slowdown still paused every job: %v", paused)
	n := 0
	for _, d := range paused {
		if d > 0 {
			n++
		}
	}
	require.Less(t, n, 20, "paused %d of 40 jobs: %v", n, paused)

	// And back at the old rate, no pause.
	for range 5 {
		require.Zero(t, paceJob(p, 30_000))
	}
}

// One fast spell early on (a cached table, a quiet minute) does not
// space out every later job on a database as busy as usual.
func TestPacerForgetsAnEarlyFastSpell(t *testing.T) {
	p := newPacer()
	paceJob(p, 100_000)
	paceJob(p, 100_000)
	var last time.Duration
	for range 30 {
		last = paceJob(p, 20_000)
	}
	require.Zero(t, last)
}

// Jobs whose rate jitters around a steady mean (a shared machine) are
// rarely spaced out.
func TestPacerRidesOutJitter(t *testing.T) {
	p := newPacer()
	r := rand.New(rand.NewPCG(1, 2))
	var paused int
	var total time.Duration
	for range 1000 {
		d := paceJob(p, 20_000*(0.5+r.Float64())) // 10k-30k rows/s
		if d > 0 {
			paused++
		}
		total += d
	}
	t.Logf("paused %d of 1000 jobs, %s in all", paused, total)
	require.Less(t, paused, 50, "jitter paused %d of 1000 jobs", paused)
}
