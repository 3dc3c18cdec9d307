package bbm

import (
	"sync"
	"time"
)

// pacer spaces jobs by how their duration moves: a job that processes its
// rows markedly slower than the migration's best rate so far means the
// database is busier than it was (locks, I/O, other load), so the next job
// waits in proportion, giving the rest of the database that room. On a
// healthy database the rate stays near its best and there is no pause.
type pacer struct {
	mu sync.Mutex
	m  map[int64]*paceState
}

type paceState struct {
	best float64       // best smoothed rate, rows per second
	cur  float64       // smoothed rate
	last time.Duration // last job's duration
}

const (
	// paceSlowdown is the slowdown (best rate / current rate) from which
	// jobs are spaced out.
	paceSlowdown = 1.5
	// paceMaxRatio bounds the pause to this many times the job's duration.
	paceMaxRatio = 4
	// paceSmoothing is the weight of the newest job in the rate.
	paceSmoothing = 0.3
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
		st = &paceState{cur: rate}
		p.m[id] = st
	}
	st.cur = paceSmoothing*rate + (1-paceSmoothing)*st.cur
	st.best = max(st.best, st.cur)
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
	slow := st.best / st.cur
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
