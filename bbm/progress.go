package bbm

import (
	"context"
	"fmt"
	"time"
)

// Progress is a migration's status with how far it got.
type Progress struct {
	Migration *Migration
	Jobs      JobStats
	// KeysTotal is the size of the key range.
	KeysTotal int64
	// Percent is the share of the key range covered by finished jobs.
	Percent float64
	// Rate is keys per second, measured from the first job's start to the
	// last finished job (pauses and throttling included).
	Rate float64
	// ETA is the remaining keys at Rate: 0 when finished, -1 when not
	// known yet.
	ETA time.Duration
}

// String is a one-line summary for logs and command-line tools.
func (p *Progress) String() string {
	eta := "unknown"
	if p.ETA >= 0 {
		eta = p.ETA.Round(time.Second).String()
	}
	s := fmt.Sprintf("%s: %s %.1f%% (%d/%d keys, %d jobs, %d failed) %.0f keys/s ETA %s",
		p.Migration.Name, p.Migration.Status, p.Percent, p.Jobs.KeysDone, p.KeysTotal,
		p.Jobs.Finished, p.Jobs.Failed, p.Rate, eta)
	if p.Migration.ErrorCode != CodeNone {
		s += fmt.Sprintf(" error %s: %s", p.Migration.ErrorCode, p.Migration.ErrorMessage)
	}
	return s
}

// Status returns the named migration's progress.
func (a *Admin) Status(ctx context.Context, name string) (*Progress, error) {
	m, err := a.get(ctx, name)
	if err != nil {
		return nil, err
	}
	return a.progress(ctx, m)
}

// StatusAll returns the progress of every migration, by ID.
func (a *Admin) StatusAll(ctx context.Context) ([]*Progress, error) {
	if a.e.err != nil {
		return nil, a.e.err
	}
	ms, err := a.e.store.Migrations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Progress, 0, len(ms))
	for _, m := range ms {
		p, err := a.progress(ctx, m)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (a *Admin) progress(ctx context.Context, m *Migration) (*Progress, error) {
	st, err := a.e.store.JobStats(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	p := &Progress{Migration: m, Jobs: st, KeysTotal: m.MaxKey - m.MinKey + 1, ETA: -1}
	switch {
	case m.Status == StatusFinished:
		p.Percent, p.ETA = 100, 0
	case p.KeysTotal > 0:
		p.Percent = 100 * float64(st.KeysDone) / float64(p.KeysTotal)
	}
	if span := st.LastFinished.Sub(st.FirstStarted); st.KeysDone > 0 && span > 0 {
		p.Rate = float64(st.KeysDone) / span.Seconds()
		if m.Status != StatusFinished {
			left := max(p.KeysTotal-st.KeysDone, 0)
			p.ETA = time.Duration(float64(left) / p.Rate * float64(time.Second))
		}
	}
	return p, nil
}
