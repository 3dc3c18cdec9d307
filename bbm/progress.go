package bbm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Progress is a migration's status with how far it got.
type Progress struct {
	Migration *Migration
	Jobs      JobStats
	// RowsTotal is the rows the migration covers: exact once every range
	// has been cut (Exact), before that the larger of the planner's
	// estimate at registration and the rows cut so far.
	RowsTotal int64
	Exact     bool
	// Percent is the share of RowsTotal in finished jobs; below 100 until
	// the migration is finished.
	Percent float64
	// Rate is rows per second, measured from the first job's start to the
	// last finished job (pauses and throttling included).
	Rate float64
	// ETA is the remaining rows at Rate: 0 when finished, -1 when not
	// known (no job finished yet, or the migration is paused or failed).
	ETA time.Duration
	// FailedJobs are the migration's failed jobs (up to maxFailedJobs, in
	// key order), each with its last error.
	FailedJobs []*Job
}

const maxFailedJobs = 20

// String is a one-line summary for logs and command-line tools.
func (p *Progress) String() string {
	eta := "unknown"
	if p.ETA >= 0 {
		eta = p.ETA.Round(time.Second).String()
	}
	approx := "~"
	if p.Exact {
		approx = ""
	}
	s := fmt.Sprintf("%s: %s %.1f%% (%d/%s%d rows, %d jobs, %d failed) %.0f rows/s ETA %s",
		p.Migration.Name, p.Migration.Status, p.Percent, p.Jobs.RowsDone, approx, p.RowsTotal,
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
	p := &Progress{Migration: m, Jobs: st, ETA: -1, Exact: st.AllCut, RowsTotal: max(m.EstimatedRows, st.RowsCut)}
	if st.AllCut {
		p.RowsTotal = st.RowsCut
	}
	switch {
	case m.Status == StatusFinished:
		p.Percent, p.ETA, p.Exact, p.RowsTotal = 100, 0, true, st.RowsDone
	case p.RowsTotal > 0:
		p.Percent = min(100*float64(st.RowsDone)/float64(p.RowsTotal), 99.9)
	}
	if span := st.LastFinished.Sub(st.FirstStarted); st.RowsDone > 0 && span > 0 {
		p.Rate = float64(st.RowsDone) / span.Seconds()
		if m.Status == StatusActive || m.Status == StatusRunning {
			left := max(p.RowsTotal-st.RowsDone, 0)
			p.ETA = time.Duration(float64(left) / p.Rate * float64(time.Second))
		}
	}
	if st.Failed > 0 {
		jobs, err := a.e.store.UnfinishedJobs(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			if j.Status == JobFailed && len(p.FailedJobs) < maxFailedJobs {
				p.FailedJobs = append(p.FailedJobs, j)
			}
		}
	}
	return p, nil
}

// ErrNotFinished is returned by RequireFinished when a migration it names
// is not finished.
var ErrNotFinished = errors.New("bbm: migrations not finished")

// RequireFinished is a start-up or deploy gate: it returns nil when every
// named migration is finished, else an error wrapping ErrNotFinished that
// lists each unfinished one with its status, progress and ETA (and
// ErrMigrationNotFound for a name that does not exist, which a deploy
// that skipped the registration step would otherwise pass).
func (a *Admin) RequireFinished(ctx context.Context, names ...string) error {
	var lines []string
	var errs []error
	for _, n := range names {
		p, err := a.Status(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.Migration.Status != StatusFinished {
			lines = append(lines, p.String())
		}
	}
	if len(lines) > 0 {
		errs = append(errs, fmt.Errorf("%w (%d of %d):\n  %s", ErrNotFinished, len(lines), len(names), strings.Join(lines, "\n  ")))
	}
	return errors.Join(errs...)
}
