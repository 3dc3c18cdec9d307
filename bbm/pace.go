package bbm

import (
	"sync"
	"time"
)

// pacer spaces jobs by how their duration moves: when jobs process their
// rows markedly slower than the migration's usual rate, the database has
// got busier (locks, I/O, other load), so the next job waits in
// proportion, giving the rest of the database that room. On a healthy
// database the rate stays near its usual and there is no pause.
//
// The usual rate is a slow moving average (paceReference), the current one
// a fast one (paceSmoothing): a sudden slowdown shows within a job or two,
// and one that lasts becomes the new usual within about a dozen jobs, so
// the pauses stop. Comparing with the best rate ever seen instead spaced
// out every job after one fast spell (a cached table, a quiet minute) on a
// database merely as busy as usual, and jitter on a shared machine looked
// like a slowdown every few jobs; the HealthThrottler, not the pacer,
// holds for conditions that last (replica lag, lock waits, WAL rate).
type pacer struct {
	mu sync.Mutex
	m  map[int64]*paceState
}

type paceState struct {
	usual float64       // slowly smoothed rate, rows per second
	cur   float64       // quickly smoothed rate
	last  time.Duration // last job's duration
}

const (
	// paceSlowdown is the slowdown (usual rate / current rate) from which
	// jobs are spaced out.
	paceSlowdown = 1.5
	// paceMaxRatio bounds the pause to this many times the job's duration.
	paceMaxRatio = 4
	// paceSmoothing is the weight of the newest job in the current rate.
	paceSmoothing = 0.5
	// paceReference is the weight of the newest job in the usual rate.
	paceReference = 0.1
)

func newPacer() *pacer { return &pacer{m: map[int64]*paceState{}} }

// observe records a finished job of rows rows that took d.
func (p *pacer) observe(id int64, rows int64, d time.Duration) {
	if rows <= 0 || d <= 0 {
		return
	}
	rate := float64(rows) / d.Seconds()
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.m[id]
	if !ok {
		if len(p.m) >= maxSizerEntries {
			clear(p.m)
		}
		st = &paceState{usual: rate, cur: rate}
		p.m[id] = st
	}
	st.cur = paceSmoothing*rate + (1-paceSmoothing)*st.cur
	st.usual = paceReference*rate + (1-paceReference)*st.usual
	st.last = d
}

// pause is how long to wait before the next job of the migration.
func (p *pacer) pause(id int64) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.m[id]
	if !ok || st.cur <= 0 {
		return 0
	}
	slow := st.usual / st.cur
	if slow < paceSlowdown {
		return 0
	}
	return time.Duration(float64(st.last) * min(slow-1, paceMaxRatio))
}

func (p *pacer) forget(id int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, id)
}
