package bbm

import (
	"math"
	"sync"
	"time"
)

// AdaptiveOptions tunes the batch size of new jobs toward a target job
// duration, from the measured rate of the jobs before: the rate (keys per
// second, smoothed with an exponentially weighted moving average so one slow
// job does not swing it) times TargetJobDuration gives the next size, which
// may change by at most MaxGrowth per job and stays within
// [MinBatchSize, MaxBatchSize]. A job that times out halves the size. Sizes
// are kept per migration in the worker's memory; a new worker starts again
// from the migration's BatchSize.
type AdaptiveOptions struct {
	// Off keeps every job at the migration's BatchSize.
	Off bool
	// TargetJobDuration is the job duration sizes aim at. Something well
	// below JobTimeout, like 200-500ms, keeps each job's transaction short
	// while the per-job overhead stays negligible. Default
	// DefaultTargetJobDuration (500ms).
	TargetJobDuration time.Duration
	// MinBatchSize and MaxBatchSize bound the size. Defaults: the
	// migration's BatchSize divided by 10 (at least 1), and times 10.
	MinBatchSize int
	MaxBatchSize int
	// MaxGrowth bounds the change per job: the size grows by at most this
	// factor and shrinks by at most its square (shrinking is the safe
	// direction). Default 2.
	MaxGrowth float64
	// Smoothing is the weight of the newest job in the rate average, in
	// (0, 1]. Default 0.5.
	Smoothing float64
}

func (a AdaptiveOptions) withDefaults() AdaptiveOptions {
	switch {
	case a.Off:
		a.TargetJobDuration = 0
	case a.TargetJobDuration <= 0:
		a.TargetJobDuration = DefaultTargetJobDuration
	}
	if a.MaxGrowth <= 1 {
		a.MaxGrowth = 2
	}
	if a.Smoothing <= 0 || a.Smoothing > 1 {
		a.Smoothing = 0.5
	}
	return a
}

// sizer keeps the adaptive size of each migration a worker runs. Entries
// are dropped when a migration finishes or fails, and the map is bounded.
type sizer struct {
	o  AdaptiveOptions
	mu sync.Mutex
	m  map[int64]*sizeState
}

type sizeState struct {
	size int
	rate float64 // keys per second, smoothed; 0 before the first sample
}

// maxSizerEntries bounds the map should migrations never finish.
const maxSizerEntries = 1024

func newSizer(o AdaptiveOptions) *sizer { return &sizer{o: o, m: map[int64]*sizeState{}} }

func (s *sizer) enabled() bool { return s.o.TargetJobDuration > 0 }

func (s *sizer) bounds(m *Migration) (lo, hi int) {
	lo, hi = s.o.MinBatchSize, s.o.MaxBatchSize
	if lo <= 0 {
		lo = max(1, m.BatchSize/10)
	}
	if hi <= 0 {
		hi = m.BatchSize * 10
		if hi/10 != m.BatchSize { // overflow
			hi = math.MaxInt32
		}
	}
	return lo, max(lo, hi)
}

// size is the batch size of the migration's next new job.
func (s *sizer) size(m *Migration) int {
	if !s.enabled() {
		return m.BatchSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked(m).size
}

func (s *sizer) stateLocked(m *Migration) *sizeState {
	st, ok := s.m[m.ID]
	if !ok {
		if len(s.m) >= maxSizerEntries {
			clear(s.m)
		}
		lo, hi := s.bounds(m)
		st = &sizeState{size: min(max(m.BatchSize, lo), hi)}
		s.m[m.ID] = st
	}
	return st
}

// observe records that a job of keys rows took d (timedOut: it was cut
// short by the job timeout) and returns the next size.
func (s *sizer) observe(m *Migration, keys int64, d time.Duration, timedOut bool) int {
	if !s.enabled() {
		return m.BatchSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stateLocked(m)
	lo, hi := s.bounds(m)
	if timedOut {
		st.size = max(lo, st.size/2)
		st.rate /= 2
		return st.size
	}
	if keys <= 0 || d <= 0 {
		return st.size
	}
	rate := float64(keys) / d.Seconds()
	if st.rate == 0 {
		st.rate = rate
	} else {
		st.rate = s.o.Smoothing*rate + (1-s.o.Smoothing)*st.rate
	}
	want := st.rate * s.o.TargetJobDuration.Seconds()
	cur := float64(st.size)
	want = math.Min(want, cur*s.o.MaxGrowth)
	want = math.Max(want, cur/(s.o.MaxGrowth*s.o.MaxGrowth))
	want = math.Min(math.Max(want, float64(lo)), float64(hi))
	st.size = int(math.Round(want))
	return st.size
}

func (s *sizer) forget(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}
