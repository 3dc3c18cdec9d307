package bbmtest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/bbm"
)

// StoreOptions tunes NewStore. The zero value is ready to use.
type StoreOptions struct {
	// Clock gives the current time (for leases and timestamps). Default
	// time.Now.
	Clock func() time.Time
}

// Store is an in-memory bbm.Store. It behaves like bbm.PostgresStore (it
// passes TestStore), keeps times at microsecond precision as Postgres
// does, and is safe for concurrent use.
type Store struct {
	clock func() time.Time

	mu         sync.Mutex
	migrations map[int64]*bbm.Migration
	jobs       map[int64]*bbm.Job
	lastID     int64
}

var _ bbm.Store = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore(opts StoreOptions) *Store {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Store{clock: opts.Clock,
		migrations: map[int64]*bbm.Migration{}, jobs: map[int64]*bbm.Job{}}
}

func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

func (s *Store) nextID() int64 {
	s.lastID++
	return s.lastID
}

func cloneM(m *bbm.Migration) *bbm.Migration {
	c := *m
	c.KeyColumns, c.KeyTypes = slices.Clone(m.KeyColumns), slices.Clone(m.KeyTypes)
	c.Lower, c.Upper, c.Args = slices.Clone(m.Lower), slices.Clone(m.Upper), slices.Clone(m.Args)
	return &c
}

func cloneJ(j *bbm.Job) *bbm.Job {
	c := *j
	c.Start, c.End, c.After, c.Migration = slices.Clone(j.Start), slices.Clone(j.End), nil, nil
	return &c
}

// CreateMigration implements bbm.Store.
func (s *Store) CreateMigration(ctx context.Context, m *bbm.Migration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.migrations {
		if o.Name == m.Name {
			return fmt.Errorf("%w: %q", bbm.ErrDuplicateMigration, m.Name)
		}
	}
	n := len(m.KeyColumns)
	if n == 0 || len(m.KeyTypes) != n || len(m.Lower) != n || len(m.Upper) != n || m.BatchSize <= 0 {
		return fmt.Errorf("bbm: creating migration %q: invalid key %v %v [%s, %s] or batch size %d", m.Name,
			m.KeyColumns, m.KeyTypes, m.Lower, m.Upper, m.BatchSize)
	}
	c := cloneM(m)
	if c.Status == "" {
		c.Status = bbm.StatusActive
	}
	if c.Strategy == "" {
		c.Strategy = bbm.Keyset
	}
	if c.Delivery == "" {
		c.Delivery = bbm.DeliveryExactlyOnce
	}
	if c.OnFailure == "" {
		c.OnFailure = bbm.FinishOthers
	}
	if !c.Status.Valid() || !c.Strategy.Valid() || !c.Delivery.Valid() || !c.OnFailure.Valid() {
		return fmt.Errorf("bbm: creating migration %q: invalid status %q, strategy %q, delivery %q or failure policy %q",
			m.Name, c.Status, c.Strategy, c.Delivery, c.OnFailure)
	}
	if len(c.Args) > 0 && !json.Valid(c.Args) {
		return fmt.Errorf("%w: migration %q", bbm.ErrInvalidArgs, m.Name)
	}
	now := s.now()
	c.ID, c.CreatedAt, c.UpdatedAt = s.nextID(), now, now
	c.ErrorMessage = bbm.TruncateMessage(c.ErrorMessage)
	c.StartedAt, c.FinishedAt = time.Time{}, time.Time{}
	if c.Status == bbm.StatusFinished {
		c.FinishedAt = now
	}
	s.migrations[c.ID] = c
	*m = *cloneM(c)
	return nil
}

// Migration implements bbm.Store.
func (s *Store) Migration(ctx context.Context, id int64) (*bbm.Migration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.migrations[id]
	if !ok {
		return nil, fmt.Errorf("%w: id %d", bbm.ErrMigrationNotFound, id)
	}
	return cloneM(m), nil
}

// MigrationByName implements bbm.Store.
func (s *Store) MigrationByName(ctx context.Context, name string) (*bbm.Migration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.migrations {
		if m.Name == name {
			return cloneM(m), nil
		}
	}
	return nil, fmt.Errorf("%w: %q", bbm.ErrMigrationNotFound, name)
}

// Migrations implements bbm.Store.
func (s *Store) Migrations(ctx context.Context, statuses ...bbm.Status) ([]*bbm.Migration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*bbm.Migration
	for _, m := range s.migrations {
		if len(statuses) == 0 || slices.Contains(statuses, m.Status) {
			out = append(out, cloneM(m))
		}
	}
	slices.SortFunc(out, func(a, b *bbm.Migration) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// SetMigrationStatus implements bbm.Store.
func (s *Store) SetMigrationStatus(ctx context.Context, id int64, c bbm.StatusChange) (*bbm.Migration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.To.Valid() {
		return nil, fmt.Errorf("%w: unknown status %q", bbm.ErrInvalidTransition, c.To)
	}
	m, ok := s.migrations[id]
	if !ok {
		return nil, fmt.Errorf("%w: id %d", bbm.ErrMigrationNotFound, id)
	}
	if len(c.From) > 0 && !slices.Contains(c.From, m.Status) {
		return nil, fmt.Errorf("%w: migration %q is %s, not %v", bbm.ErrInvalidTransition, m.Name, m.Status, c.From)
	}
	s.setLocked(m, c.To, c.Code, c.Message)
	return cloneM(m), nil
}

func (s *Store) setLocked(m *bbm.Migration, to bbm.Status, code bbm.ErrorCode, msg string) {
	now := s.now()
	m.Status, m.ErrorCode, m.ErrorMessage, m.UpdatedAt = to, code, bbm.TruncateMessage(msg), now
	if to == bbm.StatusRunning && m.StartedAt.IsZero() {
		m.StartedAt = now
	}
	if to == bbm.StatusFinished {
		m.FinishedAt = now
	}
}

// ResumePaused implements bbm.Store.
func (s *Store) ResumePaused(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.migrations {
		if m.Status == bbm.StatusPaused {
			m.Status, m.UpdatedAt = bbm.StatusActive, s.now()
			n++
		}
	}
	return n, nil
}

// RetryMigration implements bbm.Store.
func (s *Store) RetryMigration(ctx context.Context, id int64) (*bbm.Migration, error) {
	m, err := s.SetMigrationStatus(ctx, id, bbm.StatusChange{To: bbm.StatusRunning, From: []bbm.Status{bbm.StatusFailed}})
	if err != nil {
		return nil, fmt.Errorf("bbm: retrying migration %d: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.MigrationID == id && j.Status == bbm.JobFailed {
			j.Attempts = 0
		}
	}
	return m, nil
}

// FinishMigration implements bbm.Store.
func (s *Store) FinishMigration(ctx context.Context, id int64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.migrations[id]
	if !ok || (m.Status != bbm.StatusActive && m.Status != bbm.StatusRunning) {
		return false, nil
	}
	for _, j := range s.jobs {
		if j.MigrationID == id && j.Status != bbm.JobFinished {
			return false, nil
		}
	}
	s.setLocked(m, bbm.StatusFinished, bbm.CodeNone, "")
	return true, nil
}

// ClaimJob implements bbm.Store.
func (s *Store) ClaimJob(ctx context.Context, c bbm.Claim) (*bbm.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.Lease <= 0 {
		return nil, fmt.Errorf("bbm: claim of migration %d: lease must be positive", c.MigrationID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.migrations[c.MigrationID]
	if !ok {
		return nil, fmt.Errorf("bbm: claiming a job: %w: id %d", bbm.ErrMigrationNotFound, c.MigrationID)
	}
	if m.Status != bbm.StatusActive && m.Status != bbm.StatusRunning && m.Status != bbm.StatusFailed {
		return nil, fmt.Errorf("bbm: claiming a job: %w: migration %q is %s", bbm.ErrInvalidTransition, m.Name, m.Status)
	}
	now := s.now()
	if c.Limit > 0 {
		running := 0
		for _, j := range s.jobs {
			if j.Status == bbm.JobRunning && j.LeaseExpiresAt.After(now) && slices.Contains(c.Works, s.migrations[j.MigrationID].WorkName) {
				running++
			}
		}
		if running >= c.Limit {
			return nil, fmt.Errorf("bbm: claiming a job: %w: %d of %d", bbm.ErrBusy, running, c.Limit)
		}
	}
	var j *bbm.Job
	if c.JobID == 0 {
		n := len(c.Start)
		if n == 0 || len(c.End) != n || (c.After != nil && len(c.After) != n) || c.BatchSize <= 0 || c.Rows < 0 {
			return nil, fmt.Errorf("bbm: claiming a job: %w: new job [%s, %s] after %v, batch %d, rows %d",
				bbm.ErrInvalidRange, c.Start, c.End, c.After, c.BatchSize, c.Rows)
		}
		var lastEnd bbm.Key
		if last := s.lastLocked(c.MigrationID); last != nil {
			lastEnd = last.End
		}
		if !lastEnd.Equal(c.After) {
			return nil, fmt.Errorf("bbm: claiming a job: %w: range [%s, %s] was cut after %v, but the last job now ends at %v",
				bbm.ErrJobConflict, c.Start, c.End, c.After, lastEnd)
		}
		j = &bbm.Job{ID: s.nextID(), MigrationID: c.MigrationID, Start: slices.Clone(c.Start), End: slices.Clone(c.End),
			BatchSize: c.BatchSize, Rows: c.Rows, CreatedAt: now}
		s.jobs[j.ID] = j
	} else {
		j, ok = s.jobs[c.JobID]
		if !ok || j.MigrationID != c.MigrationID || j.Status != bbm.JobFailed || j.Attempts != c.Attempts {
			return nil, fmt.Errorf("bbm: claiming a job: %w: job %d is no longer failed with %d attempts", bbm.ErrJobConflict, c.JobID, c.Attempts)
		}
	}
	j.Status, j.Attempts, j.ErrorCode, j.ErrorMessage = bbm.JobRunning, j.Attempts+1, bbm.CodeNone, ""
	j.StartedAt, j.FinishedAt = now, time.Time{}
	j.LeaseExpiresAt = now.Add(c.Lease).Truncate(time.Microsecond)
	s.setLocked(m, bbm.StatusRunning, bbm.CodeNone, "")
	return cloneJ(j), nil
}

// RenewLease implements bbm.Store.
func (s *Store) RenewLease(ctx context.Context, jobID int64, attempt int, lease time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if lease <= 0 {
		return fmt.Errorf("bbm: renewing job %d: lease must be positive", jobID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.current(jobID, attempt)
	if err != nil {
		return err
	}
	j.LeaseExpiresAt = s.now().Add(lease).Truncate(time.Microsecond)
	return nil
}

// lastLocked is the migration's last job: jobs are cut in key order, so the
// one with the highest ID.
func (s *Store) lastLocked(migrationID int64) *bbm.Job {
	var last *bbm.Job
	for _, j := range s.jobs {
		if j.MigrationID == migrationID && (last == nil || j.ID > last.ID) {
			last = j
		}
	}
	return last
}

func (s *Store) current(id int64, attempt int) (*bbm.Job, error) {
	j, ok := s.jobs[id]
	if !ok || j.Status != bbm.JobRunning || j.Attempts != attempt {
		return nil, fmt.Errorf("%w: job %d attempt %d", bbm.ErrJobLost, id, attempt)
	}
	return j, nil
}

// FinishJob implements bbm.Store. The fake has no database, so it cannot
// join a Work's transaction: a non-nil tx is bbm.ErrNotTransactional.
func (s *Store) FinishJob(ctx context.Context, tx pgx.Tx, r bbm.JobResult) (*bbm.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if tx != nil {
		return nil, fmt.Errorf("%w: bbmtest.Store keeps jobs in memory; build the worker without a database", bbm.ErrNotTransactional)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.current(r.JobID, r.Attempt)
	if err != nil {
		return nil, err
	}
	j.Status, j.FinishedAt, j.LeaseExpiresAt = bbm.JobFinished, s.now(), time.Time{}
	j.Duration = r.Duration.Truncate(time.Microsecond)
	j.ErrorCode, j.ErrorMessage = bbm.CodeNone, ""
	return cloneJ(j), nil
}

// FailJob implements bbm.Store.
func (s *Store) FailJob(ctx context.Context, f bbm.JobFailure) (*bbm.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.current(f.JobID, f.Attempt)
	if err != nil {
		return nil, err
	}
	j.Status, j.FinishedAt, j.LeaseExpiresAt = bbm.JobFailed, s.now(), time.Time{}
	j.Duration = f.Duration.Truncate(time.Microsecond)
	j.ErrorCode, j.ErrorMessage = f.Code, bbm.TruncateMessage(f.Message)
	if f.Refund {
		j.Attempts--
	}
	if f.MigrationCode != bbm.CodeNone {
		s.failMigrationLocked(j.MigrationID, f.MigrationCode, f.Message)
	}
	return cloneJ(j), nil
}

func (s *Store) failMigrationLocked(id int64, code bbm.ErrorCode, msg string) {
	if m := s.migrations[id]; m != nil && (m.Status == bbm.StatusActive || m.Status == bbm.StatusRunning) {
		s.setLocked(m, bbm.StatusFailed, code, msg)
	}
}

// ReapExpiredJobs implements bbm.Store.
func (s *Store) ReapExpiredJobs(ctx context.Context, maxAttempts int) ([]*bbm.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []*bbm.Job
	for _, j := range s.jobs {
		if j.Status != bbm.JobRunning || !j.LeaseExpiresAt.Before(now) {
			continue
		}
		j.Status, j.FinishedAt, j.LeaseExpiresAt = bbm.JobFailed, now, time.Time{}
		j.ErrorCode = bbm.CodeJobAbandoned
		j.ErrorMessage = "lease expired: the worker running this job died or stopped renewing its lease"
		if m := s.migrations[j.MigrationID]; j.Attempts >= maxAttempts && m != nil && m.OnFailure == bbm.FailFast {
			s.failMigrationLocked(j.MigrationID, bbm.CodeMaxJobAttemptsReached,
				fmt.Sprintf("job %d [%s, %s] abandoned on its last attempt (%d)", j.ID, j.Start, j.End, j.Attempts))
		}
		out = append(out, cloneJ(j))
	}
	slices.SortFunc(out, func(a, b *bbm.Job) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// LastJob implements bbm.Store.
func (s *Store) LastJob(ctx context.Context, migrationID int64) (*bbm.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.lastLocked(migrationID); j != nil {
		return cloneJ(j), nil
	}
	return nil, nil
}

func (s *Store) list(ctx context.Context, migrationID int64, keep func(*bbm.Job) bool) ([]*bbm.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*bbm.Job
	for _, j := range s.jobs {
		if j.MigrationID == migrationID && keep(j) {
			out = append(out, cloneJ(j))
		}
	}
	slices.SortFunc(out, func(a, b *bbm.Job) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// UnfinishedJobs implements bbm.Store.
func (s *Store) UnfinishedJobs(ctx context.Context, migrationID int64) ([]*bbm.Job, error) {
	return s.list(ctx, migrationID, func(j *bbm.Job) bool { return j.Status != bbm.JobFinished })
}

// Jobs implements bbm.Store.
func (s *Store) Jobs(ctx context.Context, migrationID int64) ([]*bbm.Job, error) {
	return s.list(ctx, migrationID, func(*bbm.Job) bool { return true })
}

// ListJobs implements bbm.Store.
func (s *Store) ListJobs(ctx context.Context, migrationID int64, opts bbm.JobListOptions) ([]*bbm.Job, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	jobs, err := s.list(ctx, migrationID, func(j *bbm.Job) bool {
		return j.ID > opts.After && (opts.Status == "" || j.Status == opts.Status)
	})
	if len(jobs) > opts.Limit {
		jobs = jobs[:opts.Limit]
	}
	return jobs, err
}

// JobStats implements bbm.Store.
func (s *Store) JobStats(ctx context.Context, migrationID int64) (bbm.JobStats, error) {
	m, err := s.Migration(ctx, migrationID)
	if err != nil {
		return bbm.JobStats{}, err
	}
	jobs, err := s.Jobs(ctx, migrationID)
	if err != nil {
		return bbm.JobStats{}, err
	}
	var st bbm.JobStats
	for _, j := range jobs {
		st.Total++
		st.RowsCut += int64(j.Rows)
		switch j.Status {
		case bbm.JobRunning:
			st.Running++
		case bbm.JobFailed:
			st.Failed++
		case bbm.JobFinished:
			st.Finished++
			st.RowsDone += int64(j.Rows)
			if j.FinishedAt.After(st.LastFinished) {
				st.LastFinished = j.FinishedAt
			}
		}
		if !j.StartedAt.IsZero() && (st.FirstStarted.IsZero() || j.StartedAt.Before(st.FirstStarted)) {
			st.FirstStarted = j.StartedAt
		}
	}
	if len(jobs) > 0 {
		st.AllCut = jobs[len(jobs)-1].End.Equal(m.Upper)
	}
	return st, nil
}
